// One exchange from end to end: read the request, forward it, relay the answer, then hand one record to the bus.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import type { Config } from '../config.ts';
import { dialect as dialectOf, type RequestInfo } from '../dialects/index.ts';
import type { BodyRewrite } from '../dialects/types.ts';
import { describeCause, LlmtapError } from '../errors.ts';
import type { ExchangeBus } from '../exchange/bus.ts';
import type { ExchangeRecord, Outcome, Timings, TokenUsage } from '../exchange/record.ts';
import type { TraceHandle } from '../exchange/tracing.ts';
import { sendError } from './error-response.ts';
import { headerRecord, upstreamRequestHeaders } from './headers.ts';
import { exchangeId } from './ids.ts';
import { relay, type RelayResult } from './relay.ts';
import { readRequestBody } from './request-body.ts';
import { readRequestJson } from './request-json.ts';
import type { Route } from './route.ts';
import { noUsage, settleUsage } from './usage.ts';

export interface ExchangeDeps {
  config: Config;
  agent: Dispatcher;
  bus: ExchangeBus;
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

/** Runs one exchange; resolves with its record once the client has its last byte (or is gone). */
export async function runExchange(deps: ExchangeDeps, route: Route, req: IncomingMessage, res: ServerResponse, trace: TraceHandle | null = null): Promise<ExchangeRecord> {
  const t0 = performance.now();
  const { config, bus } = deps;
  const id = exchangeId();
  const startedAt = new Date().toISOString();
  const dialect = dialectOf(route.dialect);
  const method = req.method ?? 'GET';
  const url = req.url ?? route.path;

  const base = {
    id,
    startedAt,
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
  const bodyOut = rewrite ? rewrite.body : raw;
  const headers = upstreamRequestHeaders(req.rawHeaders, req.headers.connection, bodyOut ? bodyOut.length : null);
  if (trace) {
    try {
      // The upstream call carries the trace; a client's own traceparent was continued by the SERVER span.
      const carried = trace.upstream({
        id,
        dialect: route.dialect,
        operation: info.operation,
        model: info.model,
        stream: info.stream,
        params: info.params,
        method,
        upstream: { name: route.upstream.name, url: route.upstream.url, origin: route.upstream.origin },
        path: route.path,
      });
      for (const [name, value] of carried) {
        removeHeader(headers, name);
        headers.push(name, value);
      }
    } catch (err) {
      deps.onInternalError(err, base);
    }
  }

  if (bus.wantsStart) {
    bus.start({
      id,
      startedAt,
      method,
      url,
      dialect: route.dialect,
      upstream: base.upstream,
      model: info.model,
      stream: info.stream,
      operation: info.operation,
      requestHeaders: headerRecord(headers),
      requestBody: bodyOut,
    });
  }
  if (bodyOut && bus.wantsChunks) bus.chunk(id, 'request', bodyOut, performance.now() - t0);

  const preForward = performance.now() - tBody;
  const result = await relay(
    { id, t0, method, route, headers, body: bodyOut, dialect, stream: info.stream, rewrite, res },
    { agent: deps.agent, bus, upstreamTimeoutMs: config.upstreamTimeoutMs, streamIdleMs: config.streamIdleMs },
  );

  let usage: TokenUsage | Promise<TokenUsage>;
  try {
    usage = settleUsage({
      info,
      observation: result.observation,
      status: result.status,
      outcome: result.outcome,
      requestJson: () => (json.partial && raw ? parseWhole(raw) : json.value),
    });
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
    t0,
    preForward,
    requestIn: raw?.length ?? 0,
    requestOut: bodyOut?.length ?? 0,
    usageInjected: rewrite !== null,
  });
  endTrace(deps, trace, record);
  bus.end(record);
  return record;
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
  base: Pick<ExchangeRecord, 'id' | 'startedAt' | 'method' | 'url' | 'dialect' | 'upstream'>,
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
  base: Pick<ExchangeRecord, 'id' | 'startedAt' | 'method' | 'url' | 'dialect' | 'upstream'>,
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
      sendError(res, dialect, err, { closeConnection: true });
    });
  } else {
    outcome = 'client_aborted';
    error = new LlmtapError('LLMTAP_CLIENT_ABORTED', `the client went away while sending its request: ${describeCause(err)}`);
    res.destroy();
  }
  const record: ExchangeRecord = {
    id: base.id,
    startedAt: base.startedAt,
    method: base.method,
    url: base.url,
    dialect: base.dialect,
    upstream: base.upstream,
    operation: dialect.inspectRequest(path, undefined).operation,
    model: 'unknown',
    responseModel: null,
    responseId: null,
    stream: false,
    params: {},
    status: outcome === 'body_too_large' ? error.status : null,
    outcome,
    errorType: error.code,
    errorMessage: error.message,
    finishReasons: [],
    streamComplete: false,
    timings: { ttfb: null, ttft: null, duration: performance.now() - t0, timePerOutputToken: null, overhead: 0 },
    usage: noUsage(),
    bytes: { requestIn: Number(req.headers['content-length']) || 0, requestOut: 0, responseIn: 0, responseOut: 0 },
    traceId: null,
    usageInjected: false,
    notes: [],
  };
  endTrace(deps, trace, record);
  deps.bus.end(record);
  return record;
}
