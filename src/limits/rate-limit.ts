// A token bucket per client (its API key's hash, else its address): LLMTAP_RATE_LIMIT requests per period, 429 past it.
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { RateLimit } from '../config.ts';

export type RateVerdict = { ok: true } | { ok: false; retryAfterMs: number };

export interface RateLimiter {
  readonly limit: RateLimit;
  /** takes one request from the key's bucket at time now (ms, monotonic) */
  take(key: string, now: number): RateVerdict;
  /** requests refused since start */
  limited(): number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Buckets kept at most; past it the least recently created go (a full bucket is the same as none). */
const MAX_CLIENTS = 100_000;

export function createRateLimiter(limit: RateLimit): RateLimiter {
  const buckets = new Map<string, Bucket>();
  const perMs = limit.requests / limit.perMs;
  let refused = 0;
  return {
    limit,
    take(key, now) {
      let b = buckets.get(key);
      if (!b) {
        if (buckets.size >= MAX_CLIENTS) buckets.delete(buckets.keys().next().value!);
        b = { tokens: limit.requests, at: now };
        buckets.set(key, b);
      } else {
        b.tokens = Math.min(limit.requests, b.tokens + (now - b.at) * perMs);
        b.at = now;
      }
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return { ok: true };
      }
      refused++;
      return { ok: false, retryAfterMs: (1 - b.tokens) / perMs };
    },
    limited: () => refused,
  };
}

const KEY_HEADERS = ['authorization', 'x-api-key', 'api-key'] as const;

/** Who a request is from: a hash of the API key it carries (never the key itself), else its address. */
export function clientKey(headers: IncomingHttpHeaders, address: string | undefined): string {
  for (const name of KEY_HEADERS) {
    const v = headers[name];
    if (typeof v === 'string' && v !== '') return `key:${createHash('sha256').update(v).digest('hex').slice(0, 16)}`;
  }
  return `addr:${address ?? 'unknown'}`;
}
