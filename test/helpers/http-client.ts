// A raw HTTP client for the e2e tests: exact bytes, per-chunk arrival times, and a way to abort mid-stream.
import http from 'node:http';
import { performance } from 'node:perf_hooks';

export interface ReceivedChunk {
  /** performance.now() when the chunk arrived */
  at: number;
  bytes: Buffer;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  chunks: ReceivedChunk[];
  /** the whole message arrived (a truncated chunked body, a destroyed connection or our own abort leave it false) */
  complete: boolean;
  error: Error | null;
  /** performance.now() when the head arrived and when the response ended or broke */
  headAt: number;
  endedAt: number;
}

export interface SendOptions {
  method?: string;
  /** header values as given; an array repeats the header */
  headers?: Record<string, string | string[]>;
  body?: string | Uint8Array;
  /** called with each body chunk; may call abort() to disconnect like a client giving up */
  onChunk?: (chunk: ReceivedChunk, abort: () => void, soFar: Buffer[]) => void;
  /** reject when no end arrives within this long (default 15 s) */
  timeoutMs?: number;
  /** pause this long after each `everyBytes` received, to read like a slow client */
  throttle?: { everyBytes: number; pauseMs: number };
  /** keep no body (for huge responses: count them in onChunk instead) */
  discardBody?: boolean;
}

/** One request on a fresh connection (no pooling, so a test's sockets are its own). */
export function send(url: string, opts: SendOptions = {}): Promise<RawResponse> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  return new Promise<RawResponse>((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'), headers: opts.headers, agent: false });
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(new Error(`no response end from ${url} within ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = (r: RawResponse | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (r instanceof Error) reject(r);
      else resolve(r);
    };
    req.on('error', (err) => {
      // An error after the head belongs to the response (truncation), handled below.
      if (!gotResponse) finish(err);
    });
    let gotResponse = false;
    req.on('response', (res) => {
      gotResponse = true;
      const chunks: ReceivedChunk[] = [];
      const parts: Buffer[] = [];
      const headAt = performance.now();
      let error: Error | null = null;
      let sinceThrottle = 0;
      const abort = (): void => {
        req.destroy();
      };
      res.on('data', (b: Buffer) => {
        const chunk = { at: performance.now(), bytes: b };
        if (!opts.discardBody) {
          chunks.push(chunk);
          parts.push(b);
        }
        opts.onChunk?.(chunk, abort, parts);
        if (opts.throttle) {
          sinceThrottle += b.length;
          if (sinceThrottle >= opts.throttle.everyBytes) {
            sinceThrottle = 0;
            res.pause();
            setTimeout(() => res.resume(), opts.throttle.pauseMs);
          }
        }
      });
      res.on('error', (err) => {
        error = err;
      });
      res.on('close', () => {
        finish({
          status: res.statusCode ?? 0,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: Buffer.concat(parts),
          chunks,
          complete: res.complete,
          error,
          headAt,
          endedAt: performance.now(),
        });
      });
    });
    if (opts.body !== undefined) req.end(opts.body);
    else req.end();
  });
}

/** POST a JSON value (serialized once, so the exact bytes are known to the caller too). */
export function postJson(url: string, value: unknown, headers: Record<string, string> = {}, extra: Omit<SendOptions, 'body' | 'headers'> = {}): Promise<RawResponse> {
  return send(url, { ...extra, method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(value) });
}

/** The parsed JSON body, or a failure that shows what came instead. */
export function jsonOf(r: RawResponse): unknown {
  try {
    return JSON.parse(r.body.toString('utf8'));
  } catch {
    throw new Error(`expected a JSON body, got status ${r.status}: ${r.body.toString('utf8').slice(0, 300)}`);
  }
}
