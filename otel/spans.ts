// A SERVER span per request (continuing an incoming traceparent) and a CLIENT span per upstream call under it.
import { performance } from 'node:perf_hooks';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, defaultTextMapGetter, defaultTextMapSetter, trace, type Attributes, type HrTime, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { ContentCapture } from './settings.ts';
import type { TelemetryCall, TelemetryExchange, TelemetryParams } from './exchange.ts';
import { createServerOf } from './metrics.ts';
import { ATTR, EVENT } from './semconv.ts';

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
  /** the exchange ended: fills both spans from the record and ends them at the times the record gives */
  end(x: TelemetryExchange, content?: CapturedContent | null): void;
  /** a request llmtap answered itself: ends the SERVER span now */
  endRequest(status: number): void;
}

export interface SpanRecorder {
  begin(method: string, path: string, incoming: IncomingHeaders): RequestSpans;
}

const propagator = new W3CTraceContextPropagator();
const ORIGIN = performance.timeOrigin;

/** A performance.now() reading as an absolute HrTime, from one anchor so spans of one trace line up to the microsecond. */
function hr(perfMs: number): HrTime {
  const ms = ORIGIN + perfMs;
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

const PARAM_ATTRS: ReadonlyArray<readonly [keyof TelemetryParams, string]> = [
  ['maxTokens', ATTR.requestMaxTokens],
  ['temperature', ATTR.requestTemperature],
  ['topP', ATTR.requestTopP],
  ['topK', ATTR.requestTopK],
  ['frequencyPenalty', ATTR.requestFrequencyPenalty],
  ['presencePenalty', ATTR.requestPresencePenalty],
  ['seed', ATTR.requestSeed],
  ['stopSequences', ATTR.requestStopSequences],
  ['choiceCount', ATTR.requestChoiceCount],
];

/** `{gen_ai.operation.name} {gen_ai.request.model}`; HTTP's `{method} {path}` for calls that generate nothing. */
export function clientSpanName(call: Pick<TelemetryCall, 'operation' | 'model' | 'method' | 'path'>): string {
  if (!call.operation) return `${call.method} ${call.path}`;
  return call.model && call.model !== 'unknown' ? `${call.operation} ${call.model}` : call.operation;
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

export function createSpanRecorder(tracer: Tracer, opts: { content: ContentCapture }): SpanRecorder {
  const serverOf = createServerOf();
  const contentOnSpan = opts.content === 'SPAN_ONLY' || opts.content === 'SPAN_AND_EVENT';
  const contentAsEvent = opts.content === 'EVENT_ONLY' || opts.content === 'SPAN_AND_EVENT';

  return {
    begin(method, path, incoming) {
      const startedAt = performance.now();
      const parent = propagator.extract(ROOT_CONTEXT, incoming, defaultTextMapGetter);
      const server: Span = tracer.startSpan(
        method,
        { kind: SpanKind.SERVER, startTime: hr(startedAt), attributes: { [ATTR.httpRequestMethod]: method, [ATTR.urlPath]: path } },
        parent,
      );
      const traceId = server.spanContext().traceId;
      let client: Span | null = null;
      let clientStartedAt = 0;
      let forwardedAfterMs: number | null = null;
      let ended = false;

      return {
        traceId,
        get forwardedAfterMs() {
          return forwardedAfterMs;
        },
        upstream(call) {
          clientStartedAt = performance.now();
          forwardedAfterMs = clientStartedAt - startedAt;
          const upstream = serverOf(call.upstream.origin);
          const attributes: Attributes = {
            [ATTR.providerName]: call.dialect,
            [ATTR.requestStream]: call.stream,
            [ATTR.serverAddress]: upstream.address,
            [ATTR.serverPort]: upstream.port,
            [ATTR.httpRequestMethod]: call.method,
            [ATTR.llmtapUpstream]: call.upstream.name,
            [ATTR.llmtapExchangeId]: call.id,
          };
          if (call.operation) attributes[ATTR.operationName] = call.operation;
          if (call.model !== 'unknown') attributes[ATTR.requestModel] = call.model;
          for (const [key, attr] of PARAM_ATTRS) {
            const v = call.params[key];
            if (v !== undefined) attributes[attr] = Array.isArray(v) ? [...v] : (v as number);
          }
          client = tracer.startSpan(
            clientSpanName(call),
            { kind: SpanKind.CLIENT, startTime: hr(clientStartedAt), attributes },
            trace.setSpan(ROOT_CONTEXT, server),
          );
          if (server.isRecording()) server.updateName(`${call.method} ${call.path}`);
          const carrier: Record<string, string> = {};
          propagator.inject(trace.setSpan(ROOT_CONTEXT, client), carrier, defaultTextMapSetter);
          return Object.entries(carrier);
        },
        end(x, content) {
          if (ended) return;
          ended = true;
          const endAt = hr(Math.max(startedAt + x.timings.duration, clientStartedAt));
          const failed = x.outcome !== 'ok' || (x.status !== null && x.status >= 400);
          if (client && client.isRecording()) {
            const c = client;
            if (x.responseId) c.setAttribute(ATTR.responseId, x.responseId);
            if (x.responseModel) c.setAttribute(ATTR.responseModel, x.responseModel);
            if (x.finishReasons.length > 0) c.setAttribute(ATTR.responseFinishReasons, [...x.finishReasons]);
            const u = x.usage;
            if (u.input !== null) c.setAttribute(ATTR.usageInputTokens, u.input);
            if (u.output !== null) c.setAttribute(ATTR.usageOutputTokens, u.output);
            if (u.cacheRead !== null) c.setAttribute(ATTR.usageCacheReadInputTokens, u.cacheRead);
            if (u.cacheWrite !== null) c.setAttribute(ATTR.usageCacheCreationInputTokens, u.cacheWrite);
            if (u.reasoning !== null) c.setAttribute(ATTR.usageReasoningOutputTokens, u.reasoning);
            if (u.input !== null || u.output !== null) c.setAttribute(ATTR.llmtapUsageSource, u.source);
            if (x.status !== null) c.setAttribute(ATTR.httpResponseStatusCode, x.status);
            c.setAttribute(ATTR.httpRequestBodySize, x.bytes.requestOut);
            c.setAttribute(ATTR.httpResponseBodySize, x.bytes.responseIn);
            c.setAttribute(ATTR.llmtapOutcome, x.outcome);
            if (x.stream && x.timings.ttft !== null) {
              c.setAttribute(ATTR.responseTimeToFirstChunk, x.timings.ttft / 1000);
              c.addEvent(EVENT.firstChunk, { [ATTR.responseTimeToFirstChunk]: x.timings.ttft / 1000 }, hr(clientStartedAt + x.timings.ttft));
            }
            if (content && (content.input !== null || content.output !== null)) {
              if (contentOnSpan) {
                if (content.input !== null) c.setAttribute(ATTR.inputMessages, content.input);
                if (content.output !== null) c.setAttribute(ATTR.outputMessages, content.output);
              }
              if (contentAsEvent) {
                const ev: Attributes = { [ATTR.operationName]: x.operation ?? undefined };
                if (content.input !== null) ev[ATTR.inputMessages] = content.input;
                if (content.output !== null) ev[ATTR.outputMessages] = content.output;
                c.addEvent(EVENT.operationDetails, ev, endAt);
              }
            }
            if (failed) {
              c.setAttribute(ATTR.errorType, x.errorType ?? String(x.status ?? x.outcome));
              c.setStatus({ code: SpanStatusCode.ERROR, message: x.errorMessage ?? `${x.outcome}${x.status !== null ? ` (status ${x.status})` : ''}` });
            }
          }
          client?.end(endAt);
          if (server.isRecording()) {
            if (!client) server.updateName(`${x.method} ${pathOf(x.url)}`);
            if (x.status !== null) server.setAttribute(ATTR.httpResponseStatusCode, x.status);
            server.setAttribute(ATTR.httpRequestBodySize, x.bytes.requestIn);
            server.setAttribute(ATTR.httpResponseBodySize, x.bytes.responseOut);
            server.setAttribute(ATTR.llmtapExchangeId, x.id);
            server.setAttribute(ATTR.llmtapOutcome, x.outcome);
            // A server span is in error for 5xx and for exchanges that broke, not for the client's own 4xx.
            if (x.outcome !== 'ok' || (x.status !== null && x.status >= 500)) {
              server.setAttribute(ATTR.errorType, x.errorType ?? String(x.status ?? x.outcome));
              server.setStatus({ code: SpanStatusCode.ERROR, message: x.errorMessage ?? x.outcome });
            }
          }
          server.end(endAt);
        },
        endRequest(status) {
          if (ended) return;
          ended = true;
          if (server.isRecording()) {
            // Unknown paths keep the bare method as their name: a name per random path would be unbounded.
            if (status !== 404) server.updateName(`${method} ${path}`);
            server.setAttribute(ATTR.httpResponseStatusCode, status);
            if (status >= 500) {
              server.setAttribute(ATTR.errorType, String(status));
              server.setStatus({ code: SpanStatusCode.ERROR });
            }
          }
          server.end(hr(performance.now()));
        },
      };
    },
  };
}
