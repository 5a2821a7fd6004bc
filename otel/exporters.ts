// The exporter registry: trace and metric exporters by name (Map<name, factory>), plus user modules loaded from module:<path>.
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConsoleSpanExporter, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { ConsoleMetricExporter, type MetricProducer, type MetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { OTLPMetricExporter as OtlpProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPMetricExporter as OtlpJsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import type { Env, ExporterRef, OtlpSignalSettings, TelemetrySettings } from './settings.ts';
import { TelemetrySettingError } from './settings.ts';
import type { EncodeContext } from './otlp-encode.ts';
import { createOtlpSpanExporter, type OtlpSpanExporter } from './otlp-trace-exporter.ts';
import { INSTRUMENTATION_SCOPE } from './semconv.ts';

/**
 * A span exporter and where it sends, for the one log line its first failure gets. `otlp` sinks take spans as plain
 * data (llmtap's own encoder); `sdk` sinks take the SDK's ReadableSpans.
 */
export type TraceSink = { kind: 'otlp'; name: string; endpoint: string; exporter: OtlpSpanExporter } | { kind: 'sdk'; name: string; endpoint: string; exporter: SpanExporter };

/** Push: exported every OTEL_METRIC_EXPORT_INTERVAL. Pull: read on request (Prometheus), `serve` answers a scrape. */
export type MetricSink =
  | { kind: 'push'; name: string; endpoint: string; exporter: PushMetricExporter }
  | { kind: 'pull'; name: string; endpoint: string; reader: MetricReader; serve?: (req: IncomingMessage, res: ServerResponse) => void; listen?: { host: string; port: number } };

type TraceFactory = (s: TelemetrySettings, encode: EncodeContext) => TraceSink;
/** `producers` feed a pull reader beside the SDK's own instruments (push exporters get theirs from the reader sdk.ts builds). */
type MetricFactory = (s: TelemetrySettings, producers: MetricProducer[]) => MetricSink;

function otlpOptions(o: OtlpSignalSettings) {
  // The exporters' own types spell compression as an enum of these same strings.
  return { url: o.url, headers: o.headers, timeoutMillis: o.timeoutMs, compression: o.compression as never };
}

function otlpTrace(name: string, pick: (s: TelemetrySettings) => OtlpSignalSettings): TraceFactory {
  return (s, encode) => {
    const o = pick(s);
    return { kind: 'otlp', name, endpoint: o.url, exporter: createOtlpSpanExporter(o, encode) };
  };
}

export const TRACE_EXPORTERS: ReadonlyMap<string, TraceFactory | null> = new Map<string, TraceFactory | null>([
  ['otlp', otlpTrace('otlp', (s) => s.otlp.traces)],
  ['jaeger', otlpTrace('jaeger', (s) => s.jaeger)],
  ['zipkin', (s) => ({ kind: 'sdk', name: 'zipkin', endpoint: s.zipkin.url, exporter: new ZipkinExporter({ url: s.zipkin.url, serviceName: s.serviceName }) })],
  ['console', () => ({ kind: 'sdk', name: 'console', endpoint: 'stdout', exporter: new ConsoleSpanExporter() })],
  ['none', null],
]);

export const METRIC_EXPORTERS: ReadonlyMap<string, MetricFactory | null> = new Map<string, MetricFactory | null>([
  [
    'prometheus',
    (s, producers) => {
      // Its own listener is started by sdk.ts (unref'd, port 0 allowed); the same reader also answers on llmtap's port.
      const reader = new PrometheusExporter({ preventServerStart: true, host: s.prometheus.host, port: s.prometheus.port, metricProducers: producers });
      return {
        kind: 'pull',
        name: 'prometheus',
        endpoint: `http://${s.prometheus.host.includes(':') ? `[${s.prometheus.host}]` : s.prometheus.host}:${s.prometheus.port}/metrics`,
        reader,
        serve: (req, res) => reader.getMetricsRequestHandler(req, res),
        listen: s.prometheus,
      };
    },
  ],
  [
    'otlp',
    (s) => {
      const o = s.otlp.metrics;
      const exporter = o.protocol === 'http/json' ? new OtlpJsonMetricExporter(otlpOptions(o)) : new OtlpProtoMetricExporter(otlpOptions(o));
      return { kind: 'push', name: 'otlp', endpoint: o.url, exporter };
    },
  ],
  ['console', () => ({ kind: 'push', name: 'console', endpoint: 'stdout', exporter: new ConsoleMetricExporter() })],
  ['none', null],
]);

export const TRACE_EXPORTER_NAMES: readonly string[] = [...TRACE_EXPORTERS.keys()];
export const METRIC_EXPORTER_NAMES: readonly string[] = [...METRIC_EXPORTERS.keys()];

/** What a user module's default export is called with. */
export interface ModuleExporterContext {
  signal: 'traces' | 'metrics';
  settings: TelemetrySettings;
  env: Env;
}

/**
 * A user module: its default export is a function (sync or async) that builds the exporter, given a
 * ModuleExporterContext. For traces it returns a SpanExporter; for metrics a PushMetricExporter (exported
 * periodically) or a MetricReader.
 */
export type ModuleExporterFactory = (ctx: ModuleExporterContext) => unknown;

function hasFunctions(v: unknown, ...names: string[]): boolean {
  return typeof v === 'object' && v !== null && names.every((n) => typeof (v as Record<string, unknown>)[n] === 'function');
}

async function loadModule(path: string, ctx: ModuleExporterContext, variable: string): Promise<unknown> {
  const spec = `module:${path}`;
  const file = isAbsolute(path) ? path : resolve(process.cwd(), path);
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (err) {
    throw new TelemetrySettingError(variable, spec, `a module that loads (${file}: ${(err as Error).message.split('\n')[0]})`);
  }
  const made = mod.default;
  if (typeof made !== 'function') throw new TelemetrySettingError(variable, spec, `a module whose default export is a function building an exporter (${file} has none)`);
  try {
    return await (made as ModuleExporterFactory)(ctx);
  } catch (err) {
    throw new TelemetrySettingError(variable, spec, `a module whose default export builds an exporter (it threw: ${(err as Error).message.split('\n')[0]})`);
  }
}

/**
 * Builds every trace exporter a settings object names, user modules included. `encode` is the resource and scope
 * the otlp/jaeger exporters write once per batch (sdk.ts passes the full resource).
 */
export async function buildTraceSinks(settings: TelemetrySettings, env: Env, encode?: EncodeContext): Promise<TraceSink[]> {
  const ctx = encode ?? { resource: { ...settings.resourceAttributes, 'service.name': settings.serviceName }, scope: { name: INSTRUMENTATION_SCOPE, version: '' } };
  const sinks: TraceSink[] = [];
  for (const ref of settings.traceExporters) sinks.push(await traceSink(ref, settings, env, ctx));
  return sinks;
}

async function traceSink(ref: ExporterRef, settings: TelemetrySettings, env: Env, encode: EncodeContext): Promise<TraceSink> {
  if (ref.kind === 'named') return TRACE_EXPORTERS.get(ref.name)!(settings, encode);
  const exporter = await loadModule(ref.path, { signal: 'traces', settings, env }, 'OTEL_TRACES_EXPORTER');
  if (!hasFunctions(exporter, 'export', 'shutdown')) {
    throw new TelemetrySettingError('OTEL_TRACES_EXPORTER', `module:${ref.path}`, 'a module whose default export returns a SpanExporter (export and shutdown methods)');
  }
  return { kind: 'sdk', name: `module:${ref.path}`, endpoint: ref.path, exporter: exporter as SpanExporter };
}

/** Builds every metric exporter or reader a settings object names, user modules included. */
export async function buildMetricSinks(settings: TelemetrySettings, env: Env, producers: MetricProducer[] = []): Promise<MetricSink[]> {
  const sinks: MetricSink[] = [];
  for (const ref of settings.metricExporters) {
    if (ref.kind === 'named') {
      sinks.push(METRIC_EXPORTERS.get(ref.name)!(settings, producers));
      continue;
    }
    const name = `module:${ref.path}`;
    const made = await loadModule(ref.path, { signal: 'metrics', settings, env }, 'OTEL_METRICS_EXPORTER');
    // Duck-typed: the module may carry its own copy of @opentelemetry/sdk-metrics. A reader the module builds
    // itself sees only the SDK's instruments: llmtap's aggregated GenAI metrics need a push exporter.
    if (hasFunctions(made, 'setMetricProducer', 'collect', 'shutdown')) sinks.push({ kind: 'pull', name, endpoint: ref.path, reader: made as MetricReader });
    else if (hasFunctions(made, 'export', 'shutdown', 'forceFlush')) sinks.push({ kind: 'push', name, endpoint: ref.path, exporter: made as PushMetricExporter });
    else throw new TelemetrySettingError('OTEL_METRICS_EXPORTER', name, 'a module whose default export returns a PushMetricExporter (export, forceFlush, shutdown) or a MetricReader');
  }
  return sinks;
}
