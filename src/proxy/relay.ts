// Forwards one request with undici and relays the response to the client chunk by chunk, observing it as it passes.
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import zlib from 'node:zlib';
import type { Dispatcher } from 'undici';
import type { Dialect, Observation, ResponseObserver, ResponseTransform } from '../dialects/index.ts';
import type { BodyRewrite } from '../dialects/types.ts';
import type { ExchangeBus } from '../exchange/bus.ts';
import type { Outcome } from '../exchange/record.ts';
import { describeCause, LlmtapError } from '../errors.ts';
import { clientResponseHeaders } from './headers.ts';
import type { Route } from './route.ts';
import { sendError } from './error-response.ts';

export interface RelayRequest {
  id: string;
  /** performance.now() when the request arrived */
  t0: number;
  method: string;
  route: Route;
  headers: string[];
  body: Buffer | null;
  dialect: Dialect;
  stream: boolean;
  rewrite: BodyRewrite | null;
  res: ServerResponse;
}

export interface RelaySettings {
  agent: Dispatcher;
  bus: ExchangeBus;
  upstreamTimeoutMs: number;
  streamIdleMs: number;
}

export interface RelayResult {
  outcome: Outcome;
  status: number | null;
  errorType: string | null;
  errorMessage: string | null;
  observation: Observation | null;
  /** performance.now() marks */
  forwardedAt: number;
  headAt: number | null;
  endedAt: number;
  bytesIn: number;
  bytesOut: number;
  /** ms spent in llmtap's own handlers during the relay */
  overhead: number;
}

const DECODERS: Record<string, () => zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress> = {
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
};

const STREAMING_TYPES = /text\/event-stream|ndjson|jsonl/i;

export function relay(rq: RelayRequest, s: RelaySettings): Promise<RelayResult> {
  const { res, route, dialect } = rq;
  const upstreamName = `${route.upstream.url} (${route.upstream.name})`;

  return new Promise<RelayResult>((resolve) => {
    let controller: Dispatcher.DispatchController | null = null;
    let pendingAbort: Error | null = null;
    let settled = false;
    let outcome: Outcome | null = null;
    let errorType: string | null = null;
    let errorMessage: string | null = null;
    let status: number | null = null;
    let headAt: number | null = null;
    let observer: ResponseObserver | null = null;
    let transform: ResponseTransform | null = null;
    let decoder: zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | null = null;
    let decoded: Promise<void> = Promise.resolve();
    let bytesIn = 0;
    let bytesOut = 0;
    let overhead = 0;
    let idleTimer: NodeJS.Timeout | null = null;
    let lastActivity = 0;
    const forwardedAt = performance.now();

    const abortUpstream = (reason: Error): void => {
      if (controller) {
        if (!controller.aborted) controller.abort(reason);
      } else {
        pendingAbort = reason;
      }
    };

    const fail = (o: Outcome, err: LlmtapError): void => {
      if (outcome !== null) return;
      outcome = o;
      errorType = err.code;
      errorMessage = err.message;
      if (!res.headersSent && !res.writableEnded) {
        status = err.status;
        sendError(res, dialect, err);
      } else {
        // The head is out: the only honest signal left is a cut connection, so the client sees a truncated stream.
        res.destroy();
      }
    };

    const headTimer = setTimeout(() => {
      const err = new LlmtapError(
        'LLMTAP_UPSTREAM_TIMEOUT',
        `upstream ${upstreamName} sent no response head within ${s.upstreamTimeoutMs} ms (LLMTAP_UPSTREAM_TIMEOUT_MS)`,
      );
      fail('upstream_timeout', err);
      abortUpstream(err);
    }, s.upstreamTimeoutMs);

    // Chunks only stamp lastActivity; the one timer checks it when it fires and re-arms for the rest.
    const onIdleTimer = (): void => {
      const quiet = performance.now() - lastActivity;
      if (quiet < s.streamIdleMs) {
        idleTimer = setTimeout(onIdleTimer, s.streamIdleMs - quiet);
        return;
      }
      idleTimer = null;
      const err = new LlmtapError(
        'LLMTAP_UPSTREAM_IDLE',
        `upstream ${upstreamName} sent nothing for ${s.streamIdleMs} ms mid-response (LLMTAP_STREAM_IDLE_MS); the stream was ended`,
      );
      fail('upstream_idle', err);
      abortUpstream(err);
    };
    const armIdle = (): void => {
      lastActivity = performance.now();
      idleTimer ??= setTimeout(onIdleTimer, s.streamIdleMs);
    };
    const disarmIdle = (): void => {
      if (idleTimer) clearTimeout(idleTimer);
      idleTimer = null;
    };

    const settle = async (): Promise<void> => {
      if (settled) return;
      settled = true;
      const endedAt = performance.now();
      clearTimeout(headTimer);
      disarmIdle();
      res.off('close', onClientClose);
      if (outcome === null) {
        if (res.writableFinished) outcome = 'ok';
        else {
          outcome = 'client_aborted';
          errorType = 'LLMTAP_CLIENT_ABORTED';
          errorMessage = 'the client closed the connection before the response was complete';
          abortUpstream(new LlmtapError('LLMTAP_CLIENT_ABORTED', errorMessage));
        }
      }
      if (decoder) {
        decoder.end();
        await decoded;
      }
      let observation: Observation | null = null;
      try {
        observation = observer ? observer.end() : null;
      } catch {
        // An observer bug must never cost the record: keep what the relay itself knows.
        observation = null;
      }
      if (outcome === 'ok' && status !== null && status >= 400) {
        errorType = String(status);
        errorMessage = observation?.streamError ?? null;
      } else if (outcome === 'ok' && observation?.streamError) {
        errorMessage = observation.streamError;
      }
      resolve({ outcome, status, errorType, errorMessage, observation, forwardedAt, headAt, endedAt, bytesIn, bytesOut, overhead });
    };

    // 'close' comes after the last byte was handed to the OS, or when the client went away: either way the end.
    const onClientClose = (): void => {
      void settle();
    };
    res.on('close', onClientClose);

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (pendingAbort) c.abort(pendingAbort);
      },
      onResponseStart(c, statusCode, headers: IncomingHttpHeaders, statusMessage) {
        if (statusCode < 200) return;
        const t = performance.now();
        clearTimeout(headTimer);
        if (outcome !== null || settled) {
          c.abort(new LlmtapError('LLMTAP_CLIENT_ABORTED', 'the exchange already ended'));
          return;
        }
        headAt = t;
        status = statusCode;
        const contentType = String(headers['content-type'] ?? '');
        const encoding = String(headers['content-encoding'] ?? '').trim().toLowerCase();
        observer = dialect.createObserver({ path: route.path, contentType, status: statusCode, stream: rq.stream });
        if (encoding && encoding !== 'identity') {
          const make = DECODERS[encoding];
          if (make) {
            // Usage sits inside compressed bytes: decode a copy for the observer, relay the original.
            const d = make();
            const obs = observer;
            decoder = d;
            d.on('data', (chunk: Buffer) => obs.write(chunk, performance.now()));
            decoded = new Promise<void>((done) => {
              d.once('end', done);
              d.once('error', () => done());
            });
          }
        }
        if (rq.rewrite && !decoder && statusCode < 300 && /text\/event-stream/i.test(contentType)) transform = rq.rewrite.createResponseTransform();
        const out = clientResponseHeaders(headers, { dropContentLength: transform !== null });
        try {
          res.writeHead(statusCode, statusMessage || undefined, out);
          // A stream's head should reach the client now, not with the first token; but when body bytes came in
          // the same read (they usually do), they carry the head in one write: a separate one costs ~20 µs.
          if (STREAMING_TYPES.test(contentType)) {
            setImmediate(() => {
              if (bytesOut === 0 && !res.writableEnded && !res.destroyed) res.flushHeaders();
            });
          }
        } catch (err) {
          fail('proxy_error', new LlmtapError('LLMTAP_INTERNAL', `cannot relay the upstream's response head: ${describeCause(err)}`));
          c.abort(err as Error);
          return;
        }
        s.bus.responseHead(rq.id, statusCode, out as Record<string, string | string[]>);
        armIdle();
        overhead += performance.now() - t;
      },
      onResponseData(c, chunk) {
        const t = performance.now();
        if (outcome !== null) return;
        bytesIn += chunk.length;
        lastActivity = t;
        if (decoder) decoder.write(chunk);
        else observer?.write(chunk, t);
        const out = transform ? transform.push(chunk) : chunk;
        if (out.length > 0) {
          bytesOut += out.length;
          if (s.bus.wantsChunks) s.bus.chunk(rq.id, 'response', out, t - rq.t0);
          if (!res.write(out)) {
            // The client reads slower than the upstream writes: hold the upstream, and its silence is not idleness.
            c.pause();
            disarmIdle();
            res.once('drain', () => {
              if (outcome === null) armIdle();
              c.resume();
            });
          }
        }
        overhead += performance.now() - t;
      },
      onResponseEnd() {
        const t = performance.now();
        disarmIdle();
        if (outcome !== null) return;
        if (transform) {
          const tail = transform.end();
          if (tail.length > 0) {
            bytesOut += tail.length;
            if (s.bus.wantsChunks) s.bus.chunk(rq.id, 'response', tail, t - rq.t0);
            res.write(tail);
          }
        }
        res.end();
        overhead += performance.now() - t;
      },
      onResponseError(_c, err) {
        if (outcome !== null || settled) return;
        if (err instanceof LlmtapError) {
          fail(err.code === 'LLMTAP_UPSTREAM_IDLE' ? 'upstream_idle' : 'upstream_timeout', err);
        } else if (headAt === null && (err as { code?: string }).code === 'UND_ERR_SOCKET') {
          // Connected, request sent, then the socket closed: the upstream was reached but did not answer.
          fail('upstream_aborted', new LlmtapError('LLMTAP_UPSTREAM_ABORTED', `upstream ${upstreamName} closed the connection without answering: ${describeCause(err)}`, { cause: err }));
        } else if (headAt === null) {
          fail('upstream_unreachable', new LlmtapError('LLMTAP_UPSTREAM_UNREACHABLE', `upstream ${upstreamName} is unreachable: ${describeCause(err)}`, { cause: err }));
        } else {
          fail('upstream_aborted', new LlmtapError('LLMTAP_UPSTREAM_ABORTED', `upstream ${upstreamName} failed mid-response: ${describeCause(err)}`, { cause: err }));
        }
      },
    };

    try {
      s.agent.dispatch(
        {
          origin: route.upstream.origin,
          path: route.upstreamPath,
          method: rq.method as Dispatcher.HttpMethod,
          headers: rq.headers,
          body: rq.body,
          // llmtap keeps its own clocks (head timeout, idle that pauses under backpressure); undici's would double them.
          headersTimeout: 0,
          bodyTimeout: 0,
        },
        handler,
      );
    } catch (err) {
      fail('upstream_unreachable', new LlmtapError('LLMTAP_UPSTREAM_UNREACHABLE', `upstream ${upstreamName} cannot be called: ${describeCause(err)}`, { cause: err }));
    }
  });
}
