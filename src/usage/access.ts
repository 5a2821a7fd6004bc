// Who may read llmtap's admin endpoints: loopback clients, or with LLMTAP_ADMIN_TOKEN set, whoever presents that bearer token.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';

export type Access = { ok: true } | { ok: false; status: 401 | 403; code: string; message: string };

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  if (address === '::1') return true;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Compares digests, so neither the token's length nor its leading characters can be learnt from timings. */
export function sameToken(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

export function checkAccess(ctx: Context, adminToken: string): Access {
  if (!adminToken) {
    if (isLoopback(ctx.req.socket.remoteAddress)) return { ok: true };
    return {
      ok: false,
      status: 403,
      code: 'LLMTAP_FORBIDDEN',
      message: `llmtap's admin endpoints answer loopback clients only; set LLMTAP_ADMIN_TOKEN to let other clients in with Authorization: Bearer <token>`,
    };
  }
  const header = ctx.get('authorization');
  const m = /^Bearer\s+(.+)$/i.exec(header.trim());
  if (!m) {
    return { ok: false, status: 401, code: 'LLMTAP_UNAUTHORIZED', message: 'this endpoint needs Authorization: Bearer <LLMTAP_ADMIN_TOKEN>' };
  }
  if (!sameToken(m[1]!.trim(), adminToken)) {
    return { ok: false, status: 401, code: 'LLMTAP_UNAUTHORIZED', message: 'the bearer token is not the admin token (LLMTAP_ADMIN_TOKEN)' };
  }
  return { ok: true };
}
