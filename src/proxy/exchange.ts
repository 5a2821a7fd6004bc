// One exchange from end to end: read the request, forward it, relay the answer, then hand one record to the bus.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import type { Config } from '../config.ts';
import { dialect as dialectOf, type Dialect, type RequestInfo } from '../dialects/index.ts';
import type { BodyRewrite } from '../dialects/types.ts';
import { describeCause, LlmtapError } from '../errors.ts';
import type { ExchangeBus } from '../exchange/bus.ts';
import type { ExchangeRecord, FailedAttempt, Outcome, Timings, TokenUsage } from '../exchange/record.ts';
import type { TraceHandle } from '../exchange/tracing.ts';
import { sendError } from './error-response.ts';
import { headerRecord, upstreamRequestHeaders } from './headers.ts';
import { exchangeId, isoNow } from './ids.ts';
import { relay, type RelayResult } from './relay.ts';
import { readRequestBody } from './request-body.ts';
import { readRequestJson } from './request-json.ts';
import { clientKey, type RateLimiter } from '../limits/rate-limit.ts';
import { addUpstreamKey } from '../upstreams/credentials.ts';
import type { AttemptResult, Lease, UpstreamPool } from '../upstreams/pool.ts';
import { jsonError, modelOf, needsModel } from '../upstreams/request-model.ts';
import { routeTo, type Route } from './route.ts';
import { noUsage, settleUsage } from './usage.ts';

export interface ExchangeDeps {
  config: Config;
  agent: Dispatcher;
  bus: ExchangeBus;
  /** several upstreams (config file `upstreams:`): picks one per request; null for the single upstream per dialect */
  pool: UpstreamPool | null;
  /** LLMTAP_RATE_LIMIT's per-client buckets; null when there is no limit */
  rateLimiter: RateLimiter | null;
  /** reports a failure of llmtap's own code; the exchange is still recorded */
  onInternalError(err: unknown, record: Pick<ExchangeRecord, 'id' | 'url'>): void;
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || req.headers['content-length'] !== undefined;
}

function parseWhole(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined;
  }
}

type Base = Pick<ExchangeRecord, 'id' | 'startedAt' | 'method' | 'url' | 'dialect' | 'upstream'>;

/** One exchange's request, read once, and what every upstream attempt needs of it. */
interface Exchange {
  deps: ExchangeDeps;
  base: Base;
  t0: number;
  req: IncomingMessage;
  res: ServerResponse;
  trace: TraceHandle | null;
  dialect: Dialect;
  info: RequestInfo;
  raw: Buffer | null;
  bodyOut: Buffer | null;
  rewrite: BodyRewrite | null;
  /** bus.start went out (once, with the first attempt) */
  started: boolean;
}

/** Runs one exchange; resolves with its record once the client has its last byte (or is gone). */
export async function runExchange(deps: ExchangeDeps, route: Route, req: IncomingMessage, res: ServerResponse, trace: TraceHandle | null = null): Promise<ExchangeRecord> {
  const t0 = performance.now();
  const { config } = deps;
  const dialect = dialectOf(route.dialect);
  const method = req.method ?? 'GET';
  const url = req.url ?? route.path;

  const base: Base = {
    id: exchangeId(),
    startedAt: isoNow(),
    method,
    url,
    dialect: route.dialect,
    upstream: { name: route.upstream.name, url: route.upstream.url },
  };

  let raw: Buffer | null = null;
  if (hasBody(req)) {
    try {
      raw = await readRequestBody(req, Math.floor(config.maxBodyMb * 1024 * 1024), config.maxBodyMb);
    } catch (err) {
      return finishEarly(deps, base, route.path, req, res, err, t0, trace);
    }
  }
  const tBody = performance.now();

  const json = readRequestJson(raw, req.headers['content-type']);
  const info = dialect.inspectRequest(route.path, json.value);
  let rewrite: BodyRewrite | null = null;
  const scannedOptions = json.partial && (json.value as Record<string, unknown>).stream_options !== undefined;
  if (raw && json.value !== undefined && dialect.rewriteRequest && !scannedOptions) {
    rewrite = dialect.rewriteRequest(route.path, json.value, raw, { streamUsage: config.streamUsage });
  }
  const x: Exchange = { deps, base, t0, req, res, trace, dialect, info, raw, bodyOut: rewrite ? rewrite.body : raw, rewrite, started: false };
  const requestJson = () => (json.partial && raw ? parseWhole(raw) : json.value);

  if (deps.rateLimiter) {
    const limiter = deps.rateLimiter;
    const verdict = limiter.take(clientKey(req.headers, req.socket.remoteAddress), performance.now());
    if (!verdict.ok) {
      const wait = Math.max(1, Math.ceil(verdict.retryAfterMs / 1000));
      const err = new LlmtapError('LLMTAP_RATE_LIMITED', `this client passed the rate limit of ${limiter.limit.text} (LLMTAP_RATE_LIMIT); retry in ${wait} s`, { retryAfterS: wait });
      return answerItself(x, 'rate_limited', err, tBody);
    }
  }
  if (deps.pool) return runRouted(x, deps.pool, route, json.value, requestJson, tBody);

  const preForward = performance.now() - tBody;
  const result = await attempt(x, route, null, false);
  return complete(x, result, requestJson, preForward, null);
}

/** Several upstreams: pick one serving the model, wait for a slot if need be, fail over until one answers. */
async function runRouted(x: Exchange, pool: UpstreamPool, routed: Route, body: unknown, requestJson: () => unknown, tBody: number): Promise<ExchangeRecord> {
  const { base, res } = x;
  const dialect = routed.dialect;
  const model = modelOf(dialect, body);
  if (model === null && needsModel(dialect, base.method, routed.path)) {
    const err =
      body === undefined
        ? new LlmtapError('LLMTAP_BAD_JSON', `the request body is not valid JSON (${jsonError(x.raw)}); llmtap needs its "model" to pick an upstream`)
        : new LlmtapError('LLMTAP_MODEL_MISSING', `the request body has no "model" field; llmtap needs it to pick an upstream for ${routed.path}`);
    return answerItself(x, 'bad_request', err, tBody);
  }
  const gone = new AbortController();
  const onGone = () => gone.abort();
  res.once('close', onGone);
  const exclude = new Set<string>();
  const failover: FailedAttempt[] = [];
  const deadline = performance.now() + x.deps.config.queueTimeoutMs;
  let waited = 0;
  let preForward = -1;
  try {
    for (;;) {
      let lease: Lease;
      try {
        const got = pool.acquire({ dialect, model, exclude, deadline, signal: gone.signal });
        lease = got instanceof Promise ? await got : got;
      } catch (err) {
        if (!(err instanceof LlmtapError)) throw err;
        return await answerItself(x, outcomeOfRefusal(err), err, tBody, failover, waited);
      }
      waited += lease.waitedMs;
      const m = lease.member;
      base.upstream = { name: m.name, url: m.spec.url };
      exclude.add(m.name);
      if (preForward < 0) preForward = performance.now() - tBody - waited;
      const route = routeTo(routed, m.upstream, base.url);
      let result: RelayResult;
      try {
        result = await attempt(x, route, m.spec.apiKey, pool.hasAlternative(dialect, model, exclude));
      } catch (err) {
        // A relay that throws (a bug) must not keep the slot; the breaker learns nothing from it.
        lease.release({ kind: 'neutral' });
        throw err;
      }
      lease.release(attemptResult(result));
      if (!result.retry) return await complete(x, result, requestJson, preForward, failover.length > 0 ? failover : null, waited);
      failover.push({
        upstream: m.name,
        url: m.spec.url,
        outcome: result.outcome,
        status: result.status,
        error: result.errorMessage ?? `answered ${result.status}`,
      });
    }
  } finally {
    res.off('close', onGone);
  }
}

/** What an attempt tells the upstream's circuit breaker. */
function attemptResult(r: RelayResult): AttemptResult {
  switch (r.outcome) {
    case 'upstream_unreachable':
    case 'upstream_timeout':
    case 'upstream_idle':
    case 'upstream_aborted':
      return { kind: 'failure', error: r.errorMessage ?? r.outcome };
    case 'client_aborted':
      return { kind: 'neutral' };
    default:
      return r.status !== null && r.status >= 500 ? { kind: 'failure', error: `answered ${r.status}` } : { kind: 'success' };
  }
}

function outcomeOfRefusal(err: LlmtapError): Outcome {
  switch (err.code) {
    case 'LLMTAP_CLIENT_ABORTED':
      return 'client_aborted';
    case 'LLMTAP_QUEUE_FULL':
    case 'LLMTAP_QUEUE_TIMEOUT':
      return 'overloaded';
    default:
      return 'no_upstream';
  }
}

/** Forwards the request to one upstream and relays its answer. */
async function attempt(x: Exchange, route: Route, apiKey: string | null, retryable: boolean): Promise<RelayResult> {
  const { deps, base, req, bodyOut, info } = x;
  const { bus, config } = deps;
  const headers = upstreamRequestHeaders(req.rawHeaders, req.headers.connection, bodyOut ? bodyOut.length : null);
  if (apiKey) addUpstreamKey(headers, route.dialect, apiKey);
  if (x.trace) {
    try {
      // The upstream call carries the trace; a client's own traceparent was continued by the SERVER span.
      const carried = x.trace.upstream({
        id: base.id,
        dialect: route.dialect,
        operation: info.operation,
        model: info.model,
        stream: info.stream,
        params: info.params,
        method: base.method,
        upstream: { name: route.upstream.name, url: route.upstream.url, origin: route.upstream.origin },
        path: route.path,
      });
      // The client's own traceparent/tracestate, if any, give way to the ones naming llmtap's CLIENT span.
      const incoming = req.headers.traceparent !== undefined || req.headers.tracestate !== undefined;
      for (const [name, value] of carried) {
        if (incoming) removeHeader(headers, name);
        headers.push(name, value);
      }
    } catch (err) {
      deps.onInternalError(err, base);
    }
  }

  if (!x.started) {
    x.started = true;
    if (bus.wantsStart) {
      bus.start({
        id: base.id,
        startedAt: base.startedAt,
        method: base.method,
        url: base.url,
        dialect: route.dialect,
        upstream: base.upstream,
        model: info.model,
        stream: info.stream,
        operation: info.operation,
        requestHeaders: headerRecord(headers),
        requestBody: bodyOut,
      });
    }
    if (bodyOut && bus.wantsChunks) bus.chunk(base.id, 'request', bodyOut, performance.now() - x.t0);
  }

  return relay(
    { id: base.id, t0: x.t0, method: base.method, route, headers, body: bodyOut, dialect: x.dialect, stream: info.stream, rewrite: x.rewrite, res: x.res, retryable, traceId: x.trace?.traceId ?? null },
    { agent: deps.agent, bus, upstreamTimeoutMs: config.upstreamTimeoutMs, streamIdleMs: config.streamIdleMs },
  );
}

/** The upstream answered (or failed for good): settle usage, build the record, end the trace, hand it to the bus. */
async function complete(
  x: Exchange,
  result: RelayResult,
  requestJson: () => unknown,
  preForward: number,
  failover: FailedAttempt[] | null,
  queuedMs?: number,
): Promise<ExchangeRecord> {
  const { deps, base, info } = x;
  let usage: TokenUsage | Promise<TokenUsage>;
  try {
    usage = settleUsage({ info, observation: result.observation, status: result.status, outcome: result.outcome, requestJson });
  } catch (err) {
    deps.onInternalError(err, base);
    usage = noUsage();
  }
  // Only an estimate is asynchronous: reported usage builds the record without another promise hop.
  if (usage instanceof Promise) {
    usage = await usage.catch((err: unknown) => {
      deps.onInternalError(err, base);
      return noUsage();
    });
  }
  const record = buildRecord(base, result, info, usage, {
    t0: x.t0,
    preForward,
    requestIn: x.raw?.length ?? 0,
    requestOut: x.bodyOut?.length ?? 0,
    usageInjected: x.rewrite !== null,
  });
  if (failover) record.failover = failover;
  if (queuedMs !== undefined) record.queuedMs = queuedMs;
  endTrace(deps, x.trace, record);
  deps.bus.end(record);
  return record;
}

/** llmtap answers the request itself, without an upstream call: rate limit, bad request, no upstream, queue. */
async function answerItself(x: Exchange, outcome: Outcome, err: LlmtapError, tBody: number, failover: FailedAttempt[] = [], queuedMs?: number): Promise<ExchangeRecord> {
  const { deps, base, info, res } = x;
  if (outcome === 'client_aborted') res.destroy();
  else if (!res.headersSent && !res.writableEnded) {
    await new Promise<void>((done) => {
      res.once('close', done);
      sendError(res, x.dialect, err, { traceId: x.trace?.traceId ?? null });
    });
  }
  const now = performance.now();
  const record = unansweredRecord(base, info, {
    status: outcome === 'client_aborted' ? null : err.status,
    outcome,
    err,
    duration: now - x.t0,
    overhead: Math.max(0, now - tBody - (queuedMs ?? 0)),
    requestIn: x.raw?.length ?? 0,
  });
  if (failover.length > 0) record.failover = failover;
  if (queuedMs !== undefined) record.queuedMs = queuedMs;
  endTrace(deps, x.trace, record);
  deps.bus.end(record);
  return record;
}

/** The record of an exchange no upstream answered: llmtap refused it, or it never got that far. */
function unansweredRecord(
  base: Base,
  info: RequestInfo,
  a: { status: number | null; outcome: Outcome; err: LlmtapError; duration: number; overhead: number; requestIn: number },
): ExchangeRecord {
  return {
    id: base.id,
    startedAt: base.startedAt,
    method: base.method,
    url: base.url,
    dialect: base.dialect,
    upstream: base.upstream,
    operation: info.operation,
    model: info.model,
    responseModel: null,
    responseId: null,
    stream: info.stream,
    params: info.params,
    status: a.status,
    outcome: a.outcome,
    errorType: a.err.code,
    errorMessage: a.err.message,
    finishReasons: [],
    streamComplete: false,
    timings: { ttfb: null, ttft: null, duration: a.duration, timePerOutputToken: null, overhead: a.overhead },
    usage: noUsage(),
    bytes: { requestIn: a.requestIn, requestOut: 0, responseIn: 0, responseOut: 0 },
    traceId: null,
    usageInjected: false,
    notes: [],
  };
}

function endTrace(deps: ExchangeDeps, trace: TraceHandle | null, record: ExchangeRecord): void {
  if (!trace) return;
  record.traceId = trace.traceId;
  try {
    trace.end(record);
  } catch (err) {
    deps.onInternalError(err, record);
  }
}

/** Drops every value of a header (any case) from flat [name, value, ...] pairs. */
function removeHeader(pairs: string[], name: string): void {
  const lower = name.toLowerCase();
  for (let i = pairs.length - 2; i >= 0; i -= 2) if (pairs[i]!.toLowerCase() === lower) pairs.splice(i, 2);
}

function buildRecord(
  base: Base,
  r: RelayResult,
  info: RequestInfo,
  usage: TokenUsage,
  x: { t0: number; preForward: number; requestIn: number; requestOut: number; usageInjected: boolean },
): ExchangeRecord {
  const obs = r.observation;
  const duration = r.endedAt - x.t0;
  const ttft = info.stream && obs?.firstContentAt != null ? obs.firstContentAt - r.forwardedAt : null;
  const timings: Timings = {
    ttfb: r.headAt !== null ? r.headAt - r.forwardedAt : null,
    ttft,
    duration,
    timePerOutputToken: ttft !== null && usage.output !== null && usage.output > 1 ? (duration - ttft) / (usage.output - 1) : null,
    overhead: x.preForward + r.overhead,
  };
  // Fields spelled out: a spread into this many-field literal costs ~20 µs per call in V8.
  return {
    id: base.id,
    startedAt: base.startedAt,
    method: base.method,
    url: base.url,
    dialect: base.dialect,
    upstream: base.upstream,
    operation: info.operation,
    model: info.model,
    responseModel: obs?.responseModel ?? null,
    responseId: obs?.responseId ?? null,
    stream: info.stream,
    params: info.params,
    status: r.status,
    outcome: r.outcome,
    errorType: r.errorType,
    errorMessage: r.errorMessage,
    finishReasons: obs?.finishReasons ?? [],
    streamComplete: obs?.complete ?? false,
    timings,
    usage,
    bytes: { requestIn: x.requestIn, requestOut: x.requestOut, responseIn: r.bytesIn, responseOut: r.bytesOut },
    traceId: null,
    usageInjected: x.usageInjected,
    notes: obs?.notes ?? [],
  };
}

/** The request never reached the upstream: too large, or the client left while sending it. */
async function finishEarly(
  deps: ExchangeDeps,
  base: Base,
  path: string,
  req: IncomingMessage,
  res: ServerResponse,
  err: unknown,
  t0: number,
  trace: TraceHandle | null,
): Promise<ExchangeRecord> {
  const dialect = dialectOf(base.dialect);
  let outcome: Outcome;
  let error: LlmtapError;
  if (err instanceof LlmtapError && err.code === 'LLMTAP_BODY_TOO_LARGE') {
    outcome = 'body_too_large';
    error = err;
    await new Promise<void>((done) => {
      res.once('close', done);
      sendError(res, dialect, err, { closeConnection: true, traceId: trace?.traceId ?? null });
    });
  } else {
    outcome = 'client_aborted';
    error = new LlmtapError('LLMTAP_CLIENT_ABORTED', `the client went away while sending its request: ${describeCause(err)}`);
    res.destroy();
  }
  // No body was read: the dialect's defaults (model 'unknown', not a stream).
  const record = unansweredRecord(base, dialect.inspectRequest(path, undefined), {
    status: outcome === 'body_too_large' ? error.status : null,
    outcome,
    err: error,
    duration: performance.now() - t0,
    overhead: 0,
    requestIn: Number(req.headers['content-length']) || 0,
  });
  endTrace(deps, trace, record);
  deps.bus.end(record);
  return record;
}
