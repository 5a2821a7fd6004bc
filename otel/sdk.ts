// Starts a tracer and a meter provider for one llmtap instance, without touching OpenTelemetry's globals.
import http from 'node:http';
import { hostname, arch } from 'node:os';
import type { AddressInfo } from 'node:net';
import type { Meter } from '@opentelemetry/api';
import { SDK_INFO } from '@opentelemetry/core';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { MeterProvider, PeriodicExportingMetricReader, type IMetricReader, type MetricProducer, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { buildMetricSinks, buildTraceSinks, type MetricSink } from './exporters.ts';
import { createFailureTracker, guardMetricExporter, guardSpanExporter, guardSpanSend, type ExportFailure, type FailureTracker } from './failures.ts';
import { createOtlpSpanExporter, createSpanQueue, type SpanQueue } from './otlp-trace-exporter.ts';
import { toReadableSpan } from './readable-span.ts';
import { createSampler, type ParentContext, type SpanData } from './span-data.ts';
import { INSTRUMENTATION_SCOPE } from './semconv.ts';
import type { Env, TelemetrySettings } from './settings.ts';

export interface SdkOptions {
  env: Env;
  serviceVersion: string;
  /** the first failure of each exporter, with a one-line message naming the endpoint and the cause */
  onExportFailure(f: ExportFailure, message: string): void;
  /** something worth one warning (the Prometheus listener could not bind) */
  warn(message: string): void;
  /** more span exporters beside the configured ones (tests: InMemorySpanExporter) */
  extraSpanExporters?: SpanExporter[];
  /** more metric exporters beside the configured ones (tests: InMemoryMetricExporter), exported on forceFlush */
  extraMetricExporters?: PushMetricExporter[];
  /** metrics aggregated outside the SDK's instruments, handed to every reader (llmtap's exchange metrics) */
  metricProducers?: MetricProducer[];
}

export interface SpanGate {
  /** some exporter would keep a span now */
  wants(): boolean;
  /** spans left unbuilt: counted where each exporter counts the spans it drops while backing off */
  skip(count: number): void;
}

export interface TelemetrySdk {
  /** hands a finished sampled span to every trace exporter's queue; null when no trace exporter is on */
  emitSpan: ((span: SpanData) => void) | null;
  /**
   * Asked before an exchange's spans are built: while every exporter backs off after a failure (a collector that is
   * down) or has a full queue (one that cannot keep up), building spans only for them to be dropped would cost each
   * request for nothing.
   */
  spanGate: SpanGate | null;
  /** OTEL_TRACES_SAMPLER's decision (with no trace exporter: only a sampled incoming trace stays sampled) */
  sample(traceId: string, parent: ParentContext | null): boolean;
  meter: Meter;
  /** some span exporter is configured: spans are worth recording */
  tracing: boolean;
  failures: FailureTracker;
  /** answers a Prometheus scrape (GET /metrics) when the prometheus exporter is on */
  serveMetrics: ((req: http.IncomingMessage, res: http.ServerResponse) => void) | null;
  /** where the Prometheus exporter's own listener really listens (port 0 resolved), null when it is off or could not bind */
  prometheusUrl: string | null;
  /** `fn` runs first whenever spans are flushed (forceFlush, shutdown): spans still to be built are built then */
  beforeFlush(fn: () => void): void;
  forceFlush(): Promise<void>;
  /** flushes and stops, bounded in time so a dead collector cannot hold shutdown */
  shutdown(): Promise<void>;
}

const SHUTDOWN_LIMIT_MS = 5000;

export function buildResource(settings: TelemetrySettings, serviceVersion: string): Resource {
  return resourceFromAttributes({
    ...SDK_INFO,
    'host.name': hostname(),
    'host.arch': arch(),
    'process.pid': process.pid,
    'process.runtime.name': 'nodejs',
    'process.runtime.version': process.versions.node,
    'service.version': serviceVersion,
    ...settings.resourceAttributes,
    'service.name': settings.serviceName,
  });
}

function withLimit<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([p, new Promise<undefined>((r) => setTimeout(() => r(undefined), ms).unref())]);
}

/** The Prometheus exporter's own scrape listener: unref'd so it never holds the process open; a busy port is a warning. */
async function listenForScrapes(sink: Extract<MetricSink, { kind: 'pull' }>, warn: (m: string) => void): Promise<{ server: http.Server; url: string } | null> {
  const { host, port } = sink.listen!;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') return sink.serve!(req, res);
    res.statusCode = 404;
    res.end('llmtap: this listener only serves GET /metrics\n');
  });
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      warn(
        `telemetry: the Prometheus listener cannot listen on ${host}:${port}: ${err.code ?? err.message} (set OTEL_EXPORTER_PROMETHEUS_HOST / OTEL_EXPORTER_PROMETHEUS_PORT); /metrics is still served on llmtap's own port`,
      );
      resolve(false);
    });
    server.listen(port, host, () => resolve(true));
  });
  if (!ok) return null;
  server.unref();
  const a = server.address() as AddressInfo;
  const shownHost = a.address.includes(':') ? `[${a.address}]` : a.address;
  return { server, url: `http://${shownHost}:${a.port}/metrics` };
}

export async function startTelemetrySdk(settings: TelemetrySettings, opts: SdkOptions): Promise<TelemetrySdk> {
  const resource = buildResource(settings, opts.serviceVersion);
  const failures = createFailureTracker(opts.onExportFailure);

  const traceSinks = await buildTraceSinks(settings, opts.env, { resource: resource.attributes, scope: { name: INSTRUMENTATION_SCOPE, version: opts.serviceVersion } });
  const producers = opts.metricProducers ?? [];
  const metricSinks = await buildMetricSinks(settings, opts.env, producers);

  // otlp and jaeger: spans stay plain data up to llmtap's own encoder. Other exporters get ReadableSpan-shaped
  // objects through the SDK's BatchSpanProcessor, built only for them.
  const batch = settings.batch;
  const queues: SpanQueue[] = [];
  const processors: SpanProcessor[] = [];
  const scope = { name: INSTRUMENTATION_SCOPE, version: opts.serviceVersion };
  for (const sink of traceSinks) {
    if (sink.kind === 'otlp') {
      queues.push(createSpanQueue(sink.exporter.encoder(), guardSpanSend(sink.exporter.send, sink.name, sink.endpoint, failures), batch));
      continue;
    }
    const exporter = guardSpanExporter(sink.exporter, sink.name, sink.endpoint, failures);
    processors.push(
      new BatchSpanProcessor(exporter, {
        maxQueueSize: batch.maxQueueSize,
        maxExportBatchSize: Math.min(batch.maxExportBatchSize, batch.maxQueueSize),
        scheduledDelayMillis: batch.scheduledDelayMs,
        exportTimeoutMillis: batch.exportTimeoutMs,
      }),
    );
  }
  for (const exporter of opts.extraSpanExporters ?? []) {
    processors.push(new BatchSpanProcessor(exporter, { maxQueueSize: batch.maxQueueSize, scheduledDelayMillis: batch.scheduledDelayMs }));
  }
  const tracing = queues.length + processors.length > 0;
  const emitSpan = !tracing
    ? null
    : (span: SpanData) => {
        for (const q of queues) q.add(span);
        if (processors.length === 0) return;
        const readable = toReadableSpan(span, resource, scope);
        for (const p of processors) p.onEnd(readable);
      };
  // SDK processors buffer and retry on their own: with one of them on, spans are always built.
  const spanGate: SpanGate | null =
    tracing && processors.length === 0
      ? {
          wants: () => {
            for (const q of queues) if (q.accepting()) return true;
            return false;
          },
          skip: (count) => {
            for (const q of queues) q.skip(count);
          },
        }
      : null;
  // With no exporter, spans only carry ids (x-llmtap-trace-id, traceparent): a client's sampled trace stays sampled upstream.
  const sample = createSampler(tracing ? settings.sampler : { name: 'parentbased_always_off', ratio: 0 });
  const flushTraces = () => Promise.allSettled([...queues.map((q) => q.forceFlush()), ...processors.map((p) => p.forceFlush())]);
  const stopTraces = () =>
    Promise.allSettled([
      ...queues.map((q) => q.shutdown()),
      ...processors.map((p) => p.shutdown()),
      ...traceSinks.map((t) => (t.kind === 'otlp' ? t.exporter.shutdown() : Promise.resolve())),
    ]);

  const readers: IMetricReader[] = [];
  let serveMetrics: TelemetrySdk['serveMetrics'] = null;
  const listeners: http.Server[] = [];
  let prometheusUrl: string | null = null;
  const interval = settings.metricExportIntervalMs;
  for (const sink of metricSinks) {
    if (sink.kind === 'push') {
      readers.push(
        new PeriodicExportingMetricReader({
          exporter: guardMetricExporter(sink.exporter, sink.name, sink.endpoint, failures),
          exportIntervalMillis: interval,
          exportTimeoutMillis: Math.min(settings.metricExportTimeoutMs, interval),
          metricProducers: producers,
        }),
      );
      continue;
    }
    readers.push(sink.reader);
    if (sink.serve && !serveMetrics) serveMetrics = sink.serve;
    if (sink.serve && sink.listen) {
      const l = await listenForScrapes(sink, opts.warn);
      if (l) {
        listeners.push(l.server);
        prometheusUrl ??= l.url;
      }
    }
  }
  for (const exporter of opts.extraMetricExporters ?? []) {
    readers.push(new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000, metricProducers: producers }));
  }
  const meterProvider = new MeterProvider({ resource, readers });

  let stopped: Promise<void> | null = null;
  const before: Array<() => void> = [];
  const runBefore = (): void => {
    for (const fn of before) {
      try {
        fn();
      } catch (err) {
        opts.warn(`telemetry: spans still to be built before a flush could not be: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  };
  return {
    emitSpan,
    spanGate,
    sample,
    meter: meterProvider.getMeter(INSTRUMENTATION_SCOPE, opts.serviceVersion),
    tracing,
    failures,
    serveMetrics,
    prometheusUrl,
    beforeFlush(fn) {
      before.push(fn);
    },
    async forceFlush() {
      runBefore();
      await withLimit(Promise.allSettled([flushTraces(), meterProvider.forceFlush()]), SHUTDOWN_LIMIT_MS);
    },
    shutdown() {
      if (!stopped) runBefore();
      stopped ??= (async () => {
        for (const s of listeners) {
          s.close();
          s.closeAllConnections();
        }
        await withLimit(Promise.allSettled([stopTraces(), meterProvider.shutdown()]), SHUTDOWN_LIMIT_MS);
      })();
      return stopped;
    },
  };
}
