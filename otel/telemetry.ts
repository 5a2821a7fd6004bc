// One llmtap instance's telemetry, assembled: SDK, instruments, span recorder, exchange metrics, content capture.
import type { ContentCollector } from './content.ts';
import { createContentCollector } from './content.ts';
import { createInstruments, type ObservedCounter } from './instruments.ts';
import { createExchangeMetrics, type ExchangeMetrics } from './metrics.ts';
import { buildResource, startTelemetrySdk, type SdkOptions, type TelemetrySdk } from './sdk.ts';
import type { TelemetrySettings } from './settings.ts';
import { createSpanRecorder, type SpanRecorder } from './spans.ts';

export interface TelemetryOptions extends SdkOptions {
  /** distinct model values kept in metric attributes before the rest count as `other` */
  maxModels: number;
  /** exchanges in flight right now (llmtap.active_requests) */
  activeRequests(): number;
  /** counters the host keeps itself (llmtap.cost, llmtap.capture.dropped), observed at collection */
  observedCounters?: readonly ObservedCounter[];
  /** an exchange's upstream call started, this many ms after its request arrived */
  onUpstream?(id: string, forwardedAfterMs: number): void;
}

export interface Telemetry {
  sdk: TelemetrySdk;
  spans: SpanRecorder;
  metrics: ExchangeMetrics;
  /** null unless OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT asks for content */
  content: ContentCollector | null;
}

/** True when the settings leave nothing to do: the SDK is disabled, or no exporter of either signal is on. */
export function telemetryOff(settings: TelemetrySettings): boolean {
  return settings.disabled || (settings.traceExporters.length === 0 && settings.metricExporters.length === 0);
}

export async function startTelemetry(settings: TelemetrySettings, opts: TelemetryOptions): Promise<Telemetry> {
  const metrics = createExchangeMetrics({ maxModels: opts.maxModels, resource: buildResource(settings, opts.serviceVersion), version: opts.serviceVersion });
  const sdk = await startTelemetrySdk(settings, { ...opts, metricProducers: [...(opts.metricProducers ?? []), metrics.producer] });
  createInstruments(sdk.meter, { activeRequests: opts.activeRequests, failures: sdk.failures, observedCounters: opts.observedCounters });
  const content = sdk.tracing ? createContentCollector(settings.content) : null;
  let spanFailures = 0;
  const spans = createSpanRecorder({
    content: settings.content,
    emit: sdk.emitSpan,
    gate: sdk.spanGate,
    sample: sdk.sample,
    onUpstream: opts.onUpstream,
    takeContent: content ? (id, stream) => content.take(id, stream) : undefined,
    onError: (err) => {
      // A bug, not a collector's failure: the exchange's spans are left out, and said once.
      if (++spanFailures === 1) opts.warn(`telemetry: an exchange's spans could not be built and are left out (not logged again): ${err instanceof Error ? err.message : String(err)}`);
    },
  });
  sdk.beforeFlush(spans.flush);
  return { sdk, spans, metrics, content };
}
