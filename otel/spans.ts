// A SERVER span per request (continuing an incoming traceparent) and a CLIENT span per upstream call under it.
import { performance } from 'node:perf_hooks';
import type { ContentCapture } from './settings.ts';
import type { TelemetryCall, TelemetryExchange } from './exchange.ts';
import { createServerOf } from './metrics.ts';
import type { SpanGate } from './sdk.ts';
import { ATTR, EVENT } from './semconv.ts';
import { KIND, STATUS, newSpanId, newTraceId, parseTraceparent, type ParentContext, type SpanAttrs, type SpanData, type SpanEventData } from './span-data.ts';

export type IncomingHeaders = Readonly<Record<string, string | string[] | undefined>>;

/** Message content for the CLIENT span (JSON strings, already bounded), when capture is on. */
export interface CapturedContent {
  input: string | null;
  output: string | null;
}

export interface RequestSpans {
  /** 32 hex digits */
  readonly traceId: string;
  /** ms from the request's arrival to the upstream call; null until upstream() */
  readonly forwardedAfterMs: number | null;
  /** the upstream call starts now: opens the CLIENT span and returns the headers that carry it (traceparent, tracestate) */
  upstream(call: TelemetryCall): Array<[string, string]>;
  /**
   * the exchange ended: both spans are filled from the record and ended at the times it gives, in a moment (see
   * SpanRecorder.flush); the record must not change after
   */
  end(x: TelemetryExchange, content?: CapturedContent | null): void;
  /** a request llmtap answered itself: ends the SERVER span now */
  endRequest(status: number): void;
}

export interface SpanRecorder {
  begin(method: string, path: string, incoming: IncomingHeaders): RequestSpans;
  /**
   * Builds the spans of every exchange ended since the last time, now. They are otherwise built together once the
   * current turn of the event loop has done its I/O: a few dozen exchanges' spans in one go run far faster than one
   * exchange's between two requests, when the encoder's code and data have left the CPU's caches.
   */
  flush(): void;
}

/** `{gen_ai.operation.name} {gen_ai.request.model}`; HTTP's `{method} {path}` for calls that generate nothing. */
export function clientSpanName(call: Pick<TelemetryCall, 'operation' | 'model' | 'method' | 'path'>): string {
  if (!call.operation) return `${call.method} ${call.path}`;
  return call.model && call.model !== 'unknown' ? `${call.operation} ${call.model}` : call.operation;
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

export interface SpanRecorderOptions {
  content: ContentCapture;
  /** where finished sampled spans go; null when no trace exporter is on (ids and traceparent still flow) */
  emit: ((span: SpanData) => void) | null;
  /** asked before building an exchange's spans: no exporter would keep them now (see SpanGate) */
  gate?: SpanGate | null;
  /** OTEL_TRACES_SAMPLER's decision for a new trace or a continued one */
  sample(traceId: string, parent: ParentContext | null): boolean;
  /** the upstream call started this many ms after the request arrived (the metrics tap reads it back at the end) */
  onUpstream?(id: string, forwardedAfterMs: number): void;
  /** message content for the CLIENT span, asked for at the end when end() is given none */
  takeContent?(id: string, stream: boolean): CapturedContent | null;
  /** an exchange's spans could not be built (a bug): they are left out */
  onError?(err: unknown): void;
}

/**
 * The CLIENT span's attributes: the call's, then the exchange's outcome. Built once, at the end, as one list. Values
 * that repeat from one exchange to the next come first and those that rarely do (ids, token counts, sizes) last: the
 * encoder copies a run of pairs equal to the last span's in one go.
 */
function clientAttributes(call: TelemetryCall, x: TelemetryExchange, serverOf: ReturnType<typeof createServerOf>): SpanAttrs {
  const upstream = serverOf(call.upstream.origin);
  const a: SpanAttrs = [
    ATTR.providerName, call.dialect,
    ATTR.requestStream, call.stream,
    ATTR.serverAddress, upstream.address,
    ATTR.serverPort, upstream.port,
    ATTR.httpRequestMethod, call.method,
    ATTR.llmtapUpstream, call.upstream.name,
  ];
  if (call.operation) a.push(ATTR.operationName, call.operation);
  if (call.model !== 'unknown') a.push(ATTR.requestModel, call.model);
  // Field by field rather than a loop over names: a lookup by a varying key is megamorphic, on every request.
  // Arrays go on as they are: the record is final, and spans are encoded or handed on before anything else runs.
  const p = call.params;
  if (p.maxTokens !== undefined) a.push(ATTR.requestMaxTokens, p.maxTokens);
  if (p.temperature !== undefined) a.push(ATTR.requestTemperature, p.temperature);
  if (p.topP !== undefined) a.push(ATTR.requestTopP, p.topP);
  if (p.topK !== undefined) a.push(ATTR.requestTopK, p.topK);
  if (p.frequencyPenalty !== undefined) a.push(ATTR.requestFrequencyPenalty, p.frequencyPenalty);
  if (p.presencePenalty !== undefined) a.push(ATTR.requestPresencePenalty, p.presencePenalty);
  if (p.seed !== undefined) a.push(ATTR.requestSeed, p.seed);
  if (p.stopSequences !== undefined) a.push(ATTR.requestStopSequences, p.stopSequences);
  if (p.choiceCount !== undefined) a.push(ATTR.requestChoiceCount, p.choiceCount);
  if (x.responseModel) a.push(ATTR.responseModel, x.responseModel);
  if (x.finishReasons.length > 0) a.push(ATTR.responseFinishReasons, x.finishReasons);
  const u = x.usage;
  if (u.input !== null || u.output !== null) a.push(ATTR.llmtapUsageSource, u.source);
  if (x.status !== null) a.push(ATTR.httpResponseStatusCode, x.status);
  a.push(ATTR.llmtapOutcome, x.outcome);
  a.push(ATTR.llmtapExchangeId, call.id);
  if (x.responseId) a.push(ATTR.responseId, x.responseId);
  if (u.input !== null) a.push(ATTR.usageInputTokens, u.input);
  if (u.output !== null) a.push(ATTR.usageOutputTokens, u.output);
  if (u.cacheRead !== null) a.push(ATTR.usageCacheReadInputTokens, u.cacheRead);
  if (u.cacheWrite !== null) a.push(ATTR.usageCacheCreationInputTokens, u.cacheWrite);
  if (u.reasoning !== null) a.push(ATTR.usageReasoningOutputTokens, u.reasoning);
  a.push(ATTR.httpRequestBodySize, x.bytes.requestOut);
  a.push(ATTR.httpResponseBodySize, x.bytes.responseIn);
  return a;
}

interface Shared {
  /** ended exchanges whose spans are not built yet */
  ended: ExchangeSpans[];
  scheduled: boolean;
  flush(): void;
  emit: ((span: SpanData) => void) | null;
  gate: SpanGate | null;
  serverOf: ReturnType<typeof createServerOf>;
  contentOnSpan: boolean;
  contentAsEvent: boolean;
  onUpstream: SpanRecorderOptions['onUpstream'];
  takeContent: SpanRecorderOptions['takeContent'];
}

/**
 * One request's spans, as plain state until the end. A class rather than closures: this runs for every request, and
 * shared methods make a request cost one object here instead of half a dozen closures.
 */
class ExchangeSpans implements RequestSpans {
  forwardedAfterMs: number | null = null;
  private call: TelemetryCall | null = null;
  private clientSpanId = '';
  private clientStartedAt = 0;
  private ended = false;
  /** set by end(), read by build() */
  private record: TelemetryExchange | null = null;
  private given: CapturedContent | null | undefined = undefined;

  constructor(
    private readonly shared: Shared,
    readonly traceId: string,
    private readonly parent: ParentContext | null,
    private readonly sampled: boolean,
    private readonly serverSpanId: string,
    private readonly method: string,
    private readonly path: string,
    private readonly startedAt: number,
  ) {}

  upstream(c: TelemetryCall): Array<[string, string]> {
    this.clientStartedAt = performance.now();
    this.forwardedAfterMs = this.clientStartedAt - this.startedAt;
    this.call = c;
    this.clientSpanId = newSpanId();
    this.shared.onUpstream?.(c.id, this.forwardedAfterMs);
    const headers: Array<[string, string]> = [['traceparent', `00-${this.traceId}-${this.clientSpanId}-${this.sampled ? '01' : '00'}`]];
    if (this.parent?.traceState) headers.push(['tracestate', this.parent.traceState]);
    return headers;
  }

  private serverSpan(name: string, end: number, attributes: SpanAttrs, statusCode: number, statusMessage: string | null, events: SpanEventData[] = []): SpanData {
    const p = this.parent;
    return {
      traceId: this.traceId,
      spanId: this.serverSpanId,
      parentSpanId: p ? p.spanId : null,
      parentRemote: p !== null,
      traceState: p ? p.traceState : null,
      name,
      kind: KIND.server,
      start: this.startedAt,
      end,
      attributes,
      events,
      statusCode,
      statusMessage,
    };
  }

  end(x: TelemetryExchange, given?: CapturedContent | null): void {
    if (this.ended) return;
    this.ended = true;
    const sh = this.shared;
    // Recording: sampled, with an exporter to send to (serverSpanId is only made then), that would keep the spans now.
    const recording = sh.emit !== null && this.serverSpanId !== '';
    if (!recording || (sh.gate && !sh.gate.wants())) {
      if (recording) sh.gate!.skip(this.call ? 2 : 1);
      // Nothing to build; content collected for the exchange is let go all the same.
      if (given === undefined) sh.takeContent?.(x.id, x.stream);
      return;
    }
    this.record = x;
    this.given = given;
    sh.ended.push(this);
    if (!sh.scheduled) {
      sh.scheduled = true;
      setImmediate(sh.flush);
    }
  }

  build(): void {
    const sh = this.shared;
    const x = this.record!;
    const given = this.given;
    const content = given !== undefined ? given : (sh.takeContent?.(x.id, x.stream) ?? null);
    const emit = sh.emit!;
    const call = this.call;
    const clientStartedAt = this.clientStartedAt;
    const endAt = Math.max(this.startedAt + x.timings.duration, clientStartedAt);
    if (call) {
      const a = clientAttributes(call, x, sh.serverOf);
      const events: SpanEventData[] = [];
      let statusCode: number = STATUS.unset;
      let statusMessage: string | null = null;
      if (x.stream && x.timings.ttft !== null) {
        a.push(ATTR.responseTimeToFirstChunk, x.timings.ttft / 1000);
        events.push({ name: EVENT.firstChunk, at: clientStartedAt + x.timings.ttft, attributes: [ATTR.responseTimeToFirstChunk, x.timings.ttft / 1000] });
      }
      if (content && (content.input !== null || content.output !== null)) {
        if (sh.contentOnSpan) {
          if (content.input !== null) a.push(ATTR.inputMessages, content.input);
          if (content.output !== null) a.push(ATTR.outputMessages, content.output);
        }
        if (sh.contentAsEvent) {
          const ev: SpanAttrs = [ATTR.operationName, x.operation ?? undefined];
          if (content.input !== null) ev.push(ATTR.inputMessages, content.input);
          if (content.output !== null) ev.push(ATTR.outputMessages, content.output);
          events.push({ name: EVENT.operationDetails, at: endAt, attributes: ev });
        }
      }
      if (x.outcome !== 'ok' || (x.status !== null && x.status >= 400)) {
        a.push(ATTR.errorType, x.errorType ?? String(x.status ?? x.outcome));
        statusCode = STATUS.error;
        statusMessage = x.errorMessage ?? `${x.outcome}${x.status !== null ? ` (status ${x.status})` : ''}`;
      }
      emit({
        traceId: this.traceId,
        spanId: this.clientSpanId,
        parentSpanId: this.serverSpanId,
        parentRemote: false,
        traceState: this.parent ? this.parent.traceState : null,
        name: clientSpanName(call),
        kind: KIND.client,
        start: clientStartedAt,
        end: endAt,
        attributes: a,
        events,
        statusCode,
        statusMessage,
      });
    }
    // As for the CLIENT span: what repeats first, then what does not.
    const sa: SpanAttrs = [ATTR.httpRequestMethod, this.method, ATTR.urlPath, this.path];
    if (x.status !== null) sa.push(ATTR.httpResponseStatusCode, x.status);
    sa.push(ATTR.llmtapOutcome, x.outcome, ATTR.llmtapExchangeId, x.id, ATTR.httpRequestBodySize, x.bytes.requestIn, ATTR.httpResponseBodySize, x.bytes.responseOut);
    const serverEvents: SpanEventData[] = [];
    if (x.failover && x.failover.length > 0) {
      // The CLIENT span is the call that answered; the SERVER span tells which upstreams failed before it.
      sa.push(ATTR.llmtapFailoverFrom, x.failover.map((f) => f.upstream), ATTR.llmtapUpstream, x.upstream.name);
      for (const f of x.failover) {
        serverEvents.push({ name: EVENT.failover, at: clientStartedAt, attributes: [ATTR.llmtapUpstream, f.upstream, ATTR.errorType, f.status !== null ? String(f.status) : f.outcome, ATTR.errorMessage, f.error] });
      }
    }
    let statusCode: number = STATUS.unset;
    let statusMessage: string | null = null;
    // A server span is in error for 5xx and for exchanges that broke, not for the client's own 4xx.
    if (x.outcome !== 'ok' || (x.status !== null && x.status >= 500)) {
      sa.push(ATTR.errorType, x.errorType ?? String(x.status ?? x.outcome));
      statusCode = STATUS.error;
      statusMessage = x.errorMessage ?? x.outcome;
    }
    const name = call ? `${call.method} ${call.path}` : `${x.method} ${pathOf(x.url)}`;
    emit(this.serverSpan(name, endAt, sa, statusCode, statusMessage, serverEvents));
  }

  endRequest(status: number): void {
    if (this.ended) return;
    this.ended = true;
    const emit = this.shared.emit;
    if (!emit || this.serverSpanId === '') return;
    const gate = this.shared.gate;
    if (gate && !gate.wants()) {
      gate.skip(1);
      return;
    }
    const sa: SpanAttrs = [ATTR.httpRequestMethod, this.method, ATTR.urlPath, this.path, ATTR.httpResponseStatusCode, status];
    let statusCode: number = STATUS.unset;
    if (status >= 500) {
      sa.push(ATTR.errorType, String(status));
      statusCode = STATUS.error;
    }
    // Unknown paths keep the bare method as their name: a name per random path would be unbounded.
    emit(this.serverSpan(status !== 404 ? `${this.method} ${this.path}` : this.method, performance.now(), sa, statusCode, null));
  }
}

export function createSpanRecorder(opts: SpanRecorderOptions): SpanRecorder {
  const onError = opts.onError;
  const shared: Shared = {
    ended: [],
    scheduled: false,
    flush() {
      shared.scheduled = false;
      const list = shared.ended;
      if (list.length === 0) return;
      shared.ended = [];
      for (const spans of list) {
        try {
          spans.build();
        } catch (err) {
          onError?.(err);
        }
      }
    },
    emit: opts.emit,
    gate: opts.gate ?? null,
    serverOf: createServerOf(),
    contentOnSpan: opts.content === 'SPAN_ONLY' || opts.content === 'SPAN_AND_EVENT',
    contentAsEvent: opts.content === 'EVENT_ONLY' || opts.content === 'SPAN_AND_EVENT',
    onUpstream: opts.onUpstream,
    takeContent: opts.takeContent,
  };
  const sample = opts.sample;
  return {
    begin(method, path, incoming) {
      const startedAt = performance.now();
      const parent = parseTraceparent(incoming.traceparent, incoming.tracestate);
      const traceId = parent ? parent.traceId : newTraceId();
      const sampled = sample(traceId, parent);
      return new ExchangeSpans(shared, traceId, parent, sampled, sampled && shared.emit ? newSpanId() : '', method, path, startedAt);
    },
    flush: () => shared.flush(),
  };
}
