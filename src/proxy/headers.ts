// Hop-by-hop header handling per RFC 9110 §7.6.1: what crosses llmtap and what stays on each connection.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Also dropped on the way up: the upstream gets its own Host, and llmtap sets the body length it sends. */
const REQUEST_ONLY_DROP = new Set(['host', 'content-length', 'expect']);

const NONE: ReadonlySet<string> = new Set();

function connectionTokens(value: string | string[] | undefined): ReadonlySet<string> {
  // The usual values name no extra header: skip building a set on every request.
  if (value === undefined || value === 'keep-alive' || value === 'close') return NONE;
  const out = new Set<string>();
  for (const v of Array.isArray(value) ? value : value ? [value] : []) {
    for (const t of v.split(',')) {
      const name = t.trim().toLowerCase();
      if (name) out.add(name);
    }
  }
  return out;
}

/**
 * The client's headers to send upstream, from Node's rawHeaders so that repeated headers and their order
 * survive; as flat [name, value, ...] pairs, which undici sends as given.
 */
export function upstreamRequestHeaders(rawHeaders: readonly string[], connection: string | string[] | undefined, bodyLength: number | null): string[] {
  const named = connectionTokens(connection);
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || REQUEST_ONLY_DROP.has(lower) || named.has(lower)) continue;
    out.push(name, rawHeaders[i + 1]!);
  }
  if (bodyLength !== null) out.push('content-length', String(bodyLength));
  return out;
}

/** The upstream's response headers to send to the client. */
export function clientResponseHeaders(headers: IncomingHttpHeaders, opts: { dropContentLength: boolean }): OutgoingHttpHeaders {
  const named = connectionTokens(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    if (opts.dropContentLength && name === 'content-length') continue;
    out[name] = value;
  }
  return out;
}

/** Flattens headers for subscribers (captures): one value per name, arrays kept. */
export function headerRecord(pairs: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    const k = pairs[i]!.toLowerCase();
    const v = pairs[i + 1]!;
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}
