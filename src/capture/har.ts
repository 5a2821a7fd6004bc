// Exports captured exchanges as HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/), which browsers' network panels open.
import type { CapturedExchange } from './exchanges.ts';
import type { Headers } from './format.ts';
import { decodedBody, responseBytes } from './reassemble.ts';

interface HarHeader {
  name: string;
  value: string;
}

function harHeaders(h: Headers | undefined): HarHeader[] {
  const out: HarHeader[] = [];
  for (const [name, v] of Object.entries(h ?? {})) for (const value of Array.isArray(v) ? v : [v]) out.push({ name, value });
  return out;
}

function first(h: Headers | undefined, name: string): string {
  const v = h?.[name];
  return (Array.isArray(v) ? v[0] : v) ?? '';
}

/** Text when the bytes are UTF-8, else base64 (HAR's `encoding`). */
function content(bytes: Buffer): { text: string; encoding?: 'base64' } {
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? { text } : { text: bytes.toString('base64'), encoding: 'base64' };
}

const STATUS_TEXT: Record<number, string> = { 200: 'OK', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 413: 'Payload Too Large', 429: 'Too Many Requests', 499: 'Client Closed Request', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' };

export function harEntry(ex: CapturedExchange): Record<string, unknown> {
  const req = ex.request;
  const end = ex.end;
  const upstream = end?.upstream.url ?? req?.upstream.url ?? 'http://llmtap.invalid';
  const path = end?.url ?? req?.url ?? '/';
  const url = new URL(path, upstream.endsWith('/') ? upstream : `${upstream}/`);
  // Keep the upstream's own base path (http://host/prefix) in front of the client's path.
  const full = `${upstream.replace(/\/+$/, '')}${path.startsWith('/') ? path : `/${path}`}`;
  const time = end?.time ?? req?.time ?? new Date(0).toISOString();
  const status = end?.status ?? ex.response?.status ?? 0;
  const ttfb = end?.timings.ttfb ?? null;
  const duration = end?.timings.duration ?? 0;
  const headAt = ex.response?.at ?? null;
  const wait = Math.max(0, ttfb ?? 0);
  const send = Math.max(0, headAt !== null && ttfb !== null ? headAt - ttfb : 0);
  const receive = Math.max(0, duration - send - wait);
  const body = responseBytes(ex);
  const respType = first(ex.response?.headers, 'content-type') || 'application/octet-stream';
  const reqType = first(req?.headers, 'content-type') || 'application/octet-stream';
  const decoded = body ? decodedBody(body, ex.response?.headers) : null;
  const entry: Record<string, unknown> = {
    startedDateTime: time,
    time: duration,
    request: {
      method: end?.method ?? req?.method ?? 'GET',
      url: full,
      httpVersion: 'HTTP/1.1',
      cookies: [],
      headers: harHeaders(req?.headers),
      queryString: [...url.searchParams].map(([name, value]) => ({ name, value })),
      ...(req?.body ? { postData: { mimeType: reqType, ...content(Buffer.from(req.body)) } } : {}),
      headersSize: -1,
      bodySize: req?.bodySize ?? end?.bytes.requestOut ?? 0,
    },
    response: {
      status,
      statusText: STATUS_TEXT[status] ?? '',
      httpVersion: 'HTTP/1.1',
      cookies: [],
      headers: harHeaders(ex.response?.headers),
      content: { size: decoded?.length ?? end?.bytes.responseOut ?? 0, mimeType: respType, ...(decoded ? content(decoded) : {}) },
      redirectURL: '',
      headersSize: -1,
      bodySize: end?.bytes.responseOut ?? body?.length ?? -1,
    },
    cache: {},
    timings: { blocked: -1, dns: -1, connect: -1, ssl: -1, send, wait, receive },
    _llmtap: { id: ex.id, outcome: end?.outcome ?? 'unfinished', model: end?.model ?? req?.model ?? null, ttft: end?.timings.ttft ?? null, usage: end?.usage ?? null, traceId: end?.traceId ?? null },
  };
  return entry;
}

export function toHar(exchanges: readonly CapturedExchange[], creatorVersion: string): Record<string, unknown> {
  return {
    log: {
      version: '1.2',
      creator: { name: 'llmtap-inspect', version: creatorVersion },
      pages: [],
      entries: exchanges.map(harEntry),
    },
  };
}
