// The telemetry feature: OTEL_* settings → otel/'s SDK, a request tracer, a metrics tap and GET /metrics on llmtap's port.
import { readFileSync } from 'node:fs';
import type { Middleware } from 'koa';
import { readTelemetrySettings, startTelemetry, telemetryOff, TelemetrySettingError, type Telemetry } from '../../otel/index.ts';
import { ConfigError } from '../config.ts';
import type { ExchangeTap } from '../exchange/bus.ts';
import { TRACE_HEADER, type TraceHandle, type RequestTracer } from '../exchange/tracing.ts';
import type { Feature, FeatureContext, FeatureFactory } from '../features.ts';
import { hostCounters } from './host-counters.ts';

/** Test hooks: extra exporters beside the configured ones (InMemorySpanExporter, InMemoryMetricExporter). */
export type TelemetryExtras = Pick<Parameters<typeof startTelemetry>[1], 'extraSpanExporters' | 'extraMetricExporters'>;

const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

/** Exchanges between their upstream call and their end; bounded in case an end never comes. */
const MAX_PENDING = 10_000;

/** The recorder's per-request spans are the TraceHandle itself: no wrapper object per request. */
function tracerOf(t: Telemetry): RequestTracer {
  return { begin: (method, path, incoming): TraceHandle => t.spans.begin(method, path, incoming) };
}

function metricsTap(t: Telemetry, forwarded: Map<string, number>): ExchangeTap {
  const content = t.content;
  const tap: ExchangeTap = {
    name: 'telemetry',
    onEnd(record) {
      const after = forwarded.get(record.id);
      if (after !== undefined) forwarded.delete(record.id);
      t.metrics.record(record, after ?? null);
    },
  };
  // Only when message content is asked for: otherwise no per-exchange start and no per-chunk call at all.
  if (content) {
    tap.onStart = (start) => content.onStart(start);
    tap.onChunk = (id, direction, chunk) => content.onChunk(id, direction, chunk);
  }
  return tap;
}

function metricsRoute(serve: NonNullable<Telemetry['sdk']['serveMetrics']>): Middleware {
  // Not async: every proxied request passes through here, and an async function costs it one more promise.
  return (ctx, next) => {
    if (ctx.path !== '/metrics' || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
    ctx.respond = false;
    // The exporter writes the raw response: the trace id goes on before it (app.ts sets it for Koa's responses).
    const trace = ctx.state.trace as TraceHandle | null | undefined;
    if (trace) ctx.res.setHeader(TRACE_HEADER, trace.traceId);
    serve(ctx.req, ctx.res);
    return Promise.resolve();
  };
}

export async function startTelemetryFeature(ctx: FeatureContext, extras: TelemetryExtras = {}): Promise<Feature | null> {
  let settings;
  try {
    settings = readTelemetrySettings(ctx.env);
  } catch (err) {
    if (err instanceof TelemetrySettingError) throw new ConfigError(`llmtap: ${err.message}`);
    throw err;
  }
  const hasExtras = (extras.extraSpanExporters?.length ?? 0) + (extras.extraMetricExporters?.length ?? 0) > 0;
  if (settings.disabled || (telemetryOff(settings) && !hasExtras)) return null;

  const forwarded = new Map<string, number>();
  const host = hostCounters(ctx.config.metricsMaxModels, ctx);
  let t: Telemetry;
  try {
    t = await startTelemetry(settings, {
      env: ctx.env,
      serviceVersion: VERSION,
      maxModels: ctx.config.metricsMaxModels,
      activeRequests: ctx.inFlight,
      observedCounters: host.counters,
      onExportFailure: (f, message) => ctx.log.error({ signal: f.signal, exporter: f.exporter, endpoint: f.endpoint, cause: f.cause }, message),
      warn: (message) => ctx.log.warn(message),
      onUpstream: (id, after) => {
        if (forwarded.size >= MAX_PENDING) forwarded.clear();
        forwarded.set(id, after);
      },
      ...extras,
    });
  } catch (err) {
    host.stop();
    // A module: exporter that does not load is a bad setting, reported like any other.
    if (err instanceof TelemetrySettingError) throw new ConfigError(`llmtap: ${err.message}`);
    throw err;
  }
  const sdk = t.sdk;
  const on = [sdk.tracing ? `traces → ${settings.traceExporters.map((r) => (r.kind === 'named' ? r.name : `module:${r.path}`)).join(', ')}` : null, settings.metricExporters.length ? `metrics → ${settings.metricExporters.map((r) => (r.kind === 'named' ? r.name : `module:${r.path}`)).join(', ')}` : null].filter(Boolean);
  ctx.log.info({ prometheus: sdk.prometheusUrl }, `telemetry: ${on.join('; ') || 'test exporters only'}${sdk.prometheusUrl ? ` (scrape ${sdk.prometheusUrl} or /metrics on llmtap's port)` : ''}`);
  return {
    name: 'telemetry',
    tracer: tracerOf(t),
    taps: [metricsTap(t, forwarded)],
    routes: sdk.serveMetrics ? [metricsRoute(sdk.serveMetrics)] : [],
    close: async () => {
      host.stop();
      await sdk.shutdown();
    },
  };
}

/** The FeatureFactory for src/feature-list.ts: reads OTEL_* from ctx.env; null when telemetry is disabled or every exporter is none. */
export const telemetryFeature: FeatureFactory = (ctx) => startTelemetryFeature(ctx);
