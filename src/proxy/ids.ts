// Exchange ids: time-ordered and unique, so captures and logs sort by arrival.
import { randomBytes } from 'node:crypto';

let pool = randomBytes(0);
let at = 0;

export function exchangeId(): string {
  if (at + 6 > pool.length) {
    // One syscall for many ids: this runs on every request.
    pool = randomBytes(6 * 1024);
    at = 0;
  }
  const rand = pool.toString('hex', at, at + 6);
  at += 6;
  return `${Date.now().toString(36)}-${rand}`;
}
