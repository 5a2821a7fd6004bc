// Exchange ids: time-ordered and unique, so captures and logs sort by arrival.
import { randomBytes } from 'node:crypto';

const IDS_PER_REFILL = 1024;
/** random hex for IDS_PER_REFILL ids, made in one call: this runs on every request */
let hex = '';
let at = 0;
let lastMs = -1;
let prefix = '';

export function exchangeId(): string {
  if (at >= hex.length) {
    hex = randomBytes(6 * IDS_PER_REFILL).toString('hex');
    at = 0;
  }
  const now = Date.now();
  if (now !== lastMs) {
    // Requests arriving in the same millisecond share the time part.
    lastMs = now;
    prefix = `${now.toString(36)}-`;
  }
  const rand = hex.slice(at, at + 12);
  at += 12;
  return prefix + rand;
}

let isoMs = -1;
let iso = '';

/** The wall-clock time as an ISO 8601 string, formatted once per millisecond. */
export function isoNow(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    iso = new Date(now).toISOString();
  }
  return iso;
}
