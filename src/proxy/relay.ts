// Forwards one request with undici and relays the response to the client chunk by chunk, observing it as it passes.
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import zlib from 'node:zlib';
import type { Dispatcher } from 'undici';
import type { Dialect, Observation, ResponseObserver, ResponseTransform } from '../dialects/index.ts';
import type { BodyRewrite } from '../dialects/types.ts';
import type { ExchangeBus } from '../exchange/bus.ts';
import type { Outcome } from '../exchange/record.ts';
import { TRACE_HEADER } from '../exchange/tracing.ts';
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
  /** another upstream could take the request: a failure before any byte reached the client is handed back, not answered */
  retryable: boolean;
  /** sent to the client as x-llmtap-trace-id, when tracing is on */
  traceId: string | null;
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
  /** the upstream failed before the client got anything and the request may go elsewhere (RelayRequest.retryable) */
  retry: boolean;
}

type Decoder = zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress;

const DECODERS: Record<string, () => Decoder> = {
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
};

const STREAMING_TYPES = /text\/event-stream|ndjson|jsonl/i;

export function relay(rq: RelayRequest, s: RelaySettings): Promise<RelayResult> {
  return new Promise<RelayResult>((resolve) => {
    const r = new Relay(rq, s, resolve);
    try {
      s.agent.dispatch(
        {
          origin: rq.route.upstream.origin,
          path: rq.route.upstreamPath,
          method: rq.method as Dispatcher.HttpMethod,
          headers: rq.headers,
          body: rq.body,
          // llmtap keeps its own clock (head timeout, idle that pauses under backpressure); undici's would double it.
          headersTimeout: 0,
          bodyTimeout: 0,
        },
        r,
      );
    } catch (err) {
      r.fail('upstream_unreachable', new LlmtapError('LLMTAP_UPSTREAM_UNREACHABLE', `upstream ${r.upstreamName()} cannot be called: ${describeCause(err)}`, { cause: err }));
    }
  });
}

function endOfTick(r: Relay): void {
  r.flush();
}

/**
 * One exchange's relay: the undici handler, its state and the result, in one object. A class rather than
 * closures because this runs for every request and every chunk: its methods are shared, so an exchange costs
 * one object here instead of a dozen closures.
 */
class Relay implements Dispatcher.DispatchHandler, RelayResult {
  outcome: Outcome = 'ok';
  status: number | null = null;
  errorType: string | null = null;
  errorMessage: string | null = null;
  observation: Observation | null = null;
  forwardedAt: number;
  headAt: number | null = null;
  endedAt = 0;
  bytesIn = 0;
  bytesOut = 0;
  overhead = 0;
  retry = false;

  /** set once the exchange has ended one way or another (outcome then holds it); until then outcome is a placeholder */
  private ended = false;
  private settled = false;
  private controller: Dispatcher.DispatchController | null = null;
  private pendingAbort: Error | null = null;
  private observer: ResponseObserver | null = null;
  private transform: ResponseTransform | null = null;
  private decoder: Decoder | null = null;
  private decoded: Promise<void> | null = null;
  /** whether a tap wants chunks, read once: the bus getter would otherwise run for every chunk */
  private readonly wantsChunks: boolean;
  /** one timer per exchange for both the head timeout and the idle limit (see onTimer) */
  private timer: NodeJS.Timeout | null;
  private lastActivity = 0;
  /** the client is not reading: the upstream is held, and its silence is not idleness */
  private held = false;
  /** body bytes of the current read, written to the client together at the end of the tick (see queueTick) */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private tickQueued = false;
  /** performance.now() at the current read's first chunk: the arrival time of every chunk of that read */
  private tickAt = 0;
  /** the client socket, corked when a stream's head went out, until the end of the tick */
  private corked: Socket | null = null;
  private readonly onClose = (): void => this.settle();
  private readonly onDrain = (): void => {
    this.held = false;
    if (!this.ended) this.lastActivity = performance.now();
    this.controller?.resume();
  };

  private readonly rq: RelayRequest;
  private readonly s: RelaySettings;
  private readonly resolve: (r: RelayResult) => void;

  constructor(rq: RelayRequest, s: RelaySettings, resolve: (r: RelayResult) => void) {
    this.rq = rq;
    this.s = s;
    this.resolve = resolve;
    this.forwardedAt = performance.now();
    this.wantsChunks = s.bus.wantsChunks;
    this.timer = setTimeout(this.onTimer, Math.min(s.upstreamTimeoutMs, s.streamIdleMs));
    // 'close' comes after the last byte was handed to the OS, or when the client went away: either way the end.
    rq.res.on('close', this.onClose);
  }

  upstreamName(): string {
    return `${this.rq.route.upstream.url} (${this.rq.route.upstream.name})`;
  }

  /**
   * The timer first runs out at the shorter of the two limits, then re-arms itself until whichever limit applies
   * is really reached: the head timeout before the head, the idle limit after it. A fast exchange so pays for one
   * setTimeout and one clearTimeout, and a limit still fires on time.
   */
  private readonly onTimer = (): void => {
    this.timer = null;
    if (this.ended) return;
    const now = performance.now();
    const s = this.s;
    if (this.headAt === null) {
      const left = this.forwardedAt + s.upstreamTimeoutMs - now;
      if (left > 0) {
        this.timer = setTimeout(this.onTimer, left);
        return;
      }
      const err = new LlmtapError('LLMTAP_UPSTREAM_TIMEOUT', `upstream ${this.upstreamName()} sent no response head within ${s.upstreamTimeoutMs} ms (LLMTAP_UPSTREAM_TIMEOUT_MS)`);
      this.fail('upstream_timeout', err);
      this.abortUpstream(err);
      return;
    }
    const left = this.held ? s.streamIdleMs : this.lastActivity + s.streamIdleMs - now;
    if (left > 0) {
      this.timer = setTimeout(this.onTimer, left);
      return;
    }
    const err = new LlmtapError(
      'LLMTAP_UPSTREAM_IDLE',
      `upstream ${this.upstreamName()} sent nothing for ${s.streamIdleMs} ms mid-response (LLMTAP_STREAM_IDLE_MS); the stream was ended`,
    );
    this.fail('upstream_idle', err);
    this.abortUpstream(err);
  };

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private abortUpstream(reason: Error): void {
    const c = this.controller;
    if (c) {
      if (!c.aborted) c.abort(reason);
    } else {
      this.pendingAbort = reason;
    }
  }

  fail(o: Outcome, err: LlmtapError): void {
    if (this.ended) return;
    this.ended = true;
    this.outcome = o;
    this.errorType = err.code;
    this.errorMessage = err.message;
    const res = this.rq.res;
    if (this.rq.retryable && !res.headersSent) {
      // Nothing reached the client: the exchange goes on with another upstream.
      this.retry = true;
      this.settle();
      return;
    }
    if (!res.headersSent && !res.writableEnded) {
      this.status = err.status;
      sendError(res, this.rq.dialect, err, { traceId: this.rq.traceId });
    } else {
      // The head is out: the only honest signal left is a cut connection, so the client sees a truncated stream.
      res.destroy();
    }
  }

  private settle(): void {
    if (this.settled) return;
    this.settled = true;
    this.endedAt = performance.now();
    this.stopTimer();
    const res = this.rq.res;
    res.off('close', this.onClose);
    if (!this.ended) {
      this.ended = true;
      if (!res.writableFinished) {
        this.outcome = 'client_aborted';
        this.errorType = 'LLMTAP_CLIENT_ABORTED';
        this.errorMessage = 'the client closed the connection before the response was complete';
        this.abortUpstream(new LlmtapError('LLMTAP_CLIENT_ABORTED', this.errorMessage));
      }
    }
    if (this.decoder) {
      this.decoder.end();
      void this.decoded!.then(() => this.finish());
    } else this.finish();
  }

  private finish(): void {
    let observation: Observation | null = null;
    try {
      observation = this.observer ? this.observer.end() : null;
    } catch {
      // An observer bug must never cost the record: keep what the relay itself knows.
      observation = null;
    }
    this.observation = observation;
    if (this.outcome === 'ok' && this.status !== null && this.status >= 400) {
      this.errorType = String(this.status);
      this.errorMessage = observation?.streamError ?? null;
    } else if (this.outcome === 'ok' && observation?.streamError) {
      this.errorMessage = observation.streamError;
    }
    this.resolve(this);
  }

  onRequestStart(c: Dispatcher.DispatchController): void {
    this.controller = c;
    if (this.pendingAbort) c.abort(this.pendingAbort);
  }

  onResponseStart(c: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    if (statusCode < 200) return;
    const t = performance.now();
    if (this.ended || this.settled) {
      c.abort(new LlmtapError('LLMTAP_CLIENT_ABORTED', 'the exchange already ended'));
      return;
    }
    const rq = this.rq;
    const res = rq.res;
    this.headAt = t;
    this.lastActivity = t;
    this.status = statusCode;
    if (statusCode >= 500 && rq.retryable) {
      // A failing upstream's error page is not relayed while another upstream could still answer.
      this.fail('ok', new LlmtapError('LLMTAP_UPSTREAM_ABORTED', `upstream ${this.upstreamName()} answered ${statusCode}`));
      this.errorType = String(statusCode);
      c.abort(new LlmtapError('LLMTAP_UPSTREAM_ABORTED', 'failing over to another upstream'));
      return;
    }
    const contentType = String(headers['content-type'] ?? '');
    const rawEncoding = headers['content-encoding'];
    const encoding = rawEncoding === undefined ? '' : String(rawEncoding).trim().toLowerCase();
    const observer = rq.dialect.createObserver({ path: rq.route.path, contentType, status: statusCode, stream: rq.stream });
    this.observer = observer;
    if (encoding && encoding !== 'identity') {
      const make = DECODERS[encoding];
      if (make) {
        // Usage sits inside compressed bytes: decode a copy for the observer, relay the original.
        const d = make();
        this.decoder = d;
        d.on('data', (chunk: Buffer) => observer.write(chunk, performance.now()));
        this.decoded = new Promise<void>((done) => {
          d.once('end', done);
          d.once('error', () => done());
        });
      }
    }
    if (rq.rewrite && !this.decoder && statusCode < 300 && /text\/event-stream/i.test(contentType)) this.transform = rq.rewrite.createResponseTransform();
    const out = clientResponseHeaders(headers, { dropContentLength: this.transform !== null });
    if (rq.traceId) out[TRACE_HEADER] = rq.traceId;
    try {
      res.writeHead(statusCode, statusMessage || undefined, out);
      if (STREAMING_TYPES.test(contentType)) {
        // A stream's head must reach the client now, not with the first token. Corking until the end of this tick
        // lets body bytes that came in the same read (they usually do) share its write: one syscall, not two.
        const socket = res.socket;
        if (socket && !socket.writableCorked) {
          socket.cork();
          this.corked = socket;
          if (!this.tickQueued) this.queueTick(t);
        }
        res.flushHeaders();
      }
    } catch (err) {
      this.fail('proxy_error', new LlmtapError('LLMTAP_INTERNAL', `cannot relay the upstream's response head: ${describeCause(err)}`));
      c.abort(err as Error);
      return;
    }
    this.s.bus.responseHead(rq.id, statusCode, out as Record<string, string | string[]>);
    const end = performance.now();
    this.overhead += end - t;
    // Body bytes that came in the same read arrive after the head: their time, and the tick's overhead, start here.
    if (this.corked) this.tickAt = end;
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.ended) return;
    // Chunks of one read come in one go: the read's first chunk takes the time, and the tick's end counts the overhead.
    if (!this.tickQueued) this.queueTick(performance.now());
    const t = this.tickAt;
    this.bytesIn += chunk.length;
    this.lastActivity = t;
    if (this.decoder) this.decoder.write(chunk);
    else this.observer?.write(chunk, t);
    const out = this.transform ? this.transform.push(chunk) : chunk;
    if (out.length > 0) {
      this.bytesOut += out.length;
      this.pending.push(out);
      this.pendingBytes += out.length;
    }
  }

  onResponseEnd(): void {
    if (this.ended) return;
    // In the tick of the last read (the usual case) the tick's end counts this too.
    const own = !this.tickQueued;
    const t = own ? performance.now() : this.tickAt;
    if (own) this.tickAt = t;
    if (this.transform) {
      const tail = this.transform.end();
      if (tail.length > 0) {
        this.bytesOut += tail.length;
        this.pending.push(tail);
        this.pendingBytes += tail.length;
      }
    }
    // No timer past the last upstream byte: a slow client is not an idle upstream.
    this.stopTimer();
    const rest = this.takePending();
    if (rest) this.rq.res.end(rest);
    else this.rq.res.end();
    if (own) this.overhead += performance.now() - t;
  }

  /**
   * Body bytes wait for the end of the tick, not for more bytes: undici hands over one read as many small chunks
   * (an SSE event each), all in one go, and Node would send them in one write anyway. Writing them to the response
   * as one chunk instead of twenty saves most of the relay's per-chunk cost; the client gets the same bytes at the
   * same moment.
   */
  private queueTick(at: number): void {
    this.tickQueued = true;
    this.tickAt = at;
    process.nextTick(endOfTick, this);
  }

  /**
   * The bytes of the current read, as one buffer. Taps see them here, once per read with the read's arrival time:
   * what came in together is one chunk to a capture too, as it is on the wire to the client.
   */
  private takePending(): Buffer | null {
    const p = this.pending;
    if (p.length === 0) return null;
    const out = p.length === 1 ? p[0]! : Buffer.concat(p, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    if (this.wantsChunks) this.s.bus.chunk(this.rq.id, 'response', out, this.tickAt - this.rq.t0);
    return out;
  }

  flush(): void {
    this.tickQueued = false;
    const out = this.takePending();
    const res = this.rq.res;
    if (out && !this.ended && !res.writableEnded && !res.write(out) && !this.held && this.controller) {
      // The client reads slower than the upstream writes: hold the upstream until the client catches up.
      this.controller.pause();
      this.held = true;
      res.once('drain', this.onDrain);
    }
    const socket = this.corked;
    if (socket) {
      this.corked = null;
      socket.uncork();
    }
    this.overhead += performance.now() - this.tickAt;
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    if (this.ended || this.settled) return;
    const name = this.upstreamName();
    if (err instanceof LlmtapError) {
      this.fail(err.code === 'LLMTAP_UPSTREAM_IDLE' ? 'upstream_idle' : 'upstream_timeout', err);
    } else if (this.headAt === null && (err as { code?: string }).code === 'UND_ERR_SOCKET') {
      // Connected, request sent, then the socket closed: the upstream was reached but did not answer.
      this.fail('upstream_aborted', new LlmtapError('LLMTAP_UPSTREAM_ABORTED', `upstream ${name} closed the connection without answering: ${describeCause(err)}`, { cause: err }));
    } else if (this.headAt === null) {
      this.fail('upstream_unreachable', new LlmtapError('LLMTAP_UPSTREAM_UNREACHABLE', `upstream ${name} is unreachable: ${describeCause(err)}`, { cause: err }));
    } else {
      this.fail('upstream_aborted', new LlmtapError('LLMTAP_UPSTREAM_ABORTED', `upstream ${name} failed mid-response: ${describeCause(err)}`, { cause: err }));
    }
  }
}
