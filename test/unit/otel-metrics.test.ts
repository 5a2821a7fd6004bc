// Metrics from exchange records: values and attributes, the conventions' bucket boundaries, the model cap, export failures.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AggregationTemporality, DataPointType, InMemoryMetricExporter, type HistogramMetricData, type MetricData } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import {
  BUCKETS,
  METRIC,
  OTHER_MODEL,
  createFailureTracker,
  guardSpanExporter,
  readTelemetrySettings,
  startTelemetry,
  type ExportFailure,
  type Telemetry,
  type TelemetryExchange,
} from '../../otel/index.ts';

function record(over: Partial<TelemetryExchange> = {}): TelemetryExchange {
  return {
    id: 'x',
    method: 'POST',
    url: '/v1/chat/completions',
    dialect: 'openai',
    upstream: { name: 'openai', url: 'http://127.0.0.1:8101' },
    operation: 'chat',
    model: 'gpt-test',
    responseModel: 'gpt-test-0001',
    responseId: 'r',
    stream: true,
    params: {},
    status: 200,
    outcome: 'ok',
    errorType: null,
    errorMessage: null,
    finishReasons: ['stop'],
    // 2 ms before forwarding, ttft 30 ms, last byte at 132 ms: 100 ms for 11 output tokens after the first.
    timings: { ttfb: 10, ttft: 30, duration: 132, timePerOutputToken: 9.2, overhead: 0.5 },
    usage: { input: 40, output: 11, cacheRead: null, cacheWrite: null, reasoning: null, source: 'reported' },
    bytes: { requestIn: 300, requestOut: 320, responseIn: 5000, responseOut: 4900 },
    ...over,
  };
}

describe('metrics', () => {
  let t: Telemetry;
  let exporter: InMemoryMetricExporter;
  let active = 0;

  before(async () => {
    exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    t = await startTelemetry(readTelemetrySettings({ OTEL_METRICS_EXPORTER: 'none' }), {
      env: {},
      serviceVersion: '0',
      maxModels: 3,
      activeRequests: () => active,
      onExportFailure: () => {},
      warn: () => {},
      extraMetricExporters: [exporter],
    });
  });
  after(() => t.sdk.shutdown());

  async function collect(): Promise<Map<string, MetricData>> {
    exporter.reset();
    await t.sdk.forceFlush();
    const out = new Map<string, MetricData>();
    for (const rm of exporter.getMetrics()) for (const sm of rm.scopeMetrics) for (const m of sm.metrics) out.set(m.descriptor.name, m);
    return out;
  }

  it('one streamed exchange: every instrument, its unit, value and attributes', async () => {
    active = 2;
    t.metrics.record(record(), 2);
    const m = await collect();
    const base = {
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-test',
      'gen_ai.response.model': 'gpt-test-0001',
      'server.address': '127.0.0.1',
      'server.port': 8101,
      'llmtap.upstream': 'openai',
    };
    const hist = (name: string) => {
      const d = m.get(name) as HistogramMetricData | undefined;
      assert.ok(d, `${name} was recorded`);
      assert.equal(d.dataPointType, DataPointType.HISTOGRAM);
      return d;
    };
    const one = (name: string, value: number, unit: string) => {
      const d = hist(name);
      assert.equal(d.descriptor.unit, unit, `${name} unit`);
      assert.equal(d.dataPoints.length, 1, `${name}: one series`);
      assert.deepEqual(d.dataPoints[0]!.attributes, base, `${name} attributes`);
      assert.ok(Math.abs(d.dataPoints[0]!.value.sum! - value) < 1e-9, `${name} = ${d.dataPoints[0]!.value.sum}, expected ${value}`);
    };
    one(METRIC.operationDuration.name, 0.13, 's');
    one(METRIC.timeToFirstChunk.name, 0.03, 's');
    one(METRIC.serverTimeToFirstToken.name, 0.032, 's');
    one(METRIC.timePerOutputChunk.name, 0.01, 's');
    one(METRIC.serverTimePerOutputToken.name, 0.01, 's');
    one(METRIC.proxyOverhead.name, 0.0005, 's');
    // Inclusive upper bounds: 0.13 s falls in (0.08, 0.16], 0.03 s in (0.02, 0.04], 0.0005 s in (0.00025, 0.0005].
    const counts = (name: string) => hist(name).dataPoints[0]!.value.buckets.counts;
    assert.deepEqual(counts(METRIC.operationDuration.name), [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(counts(METRIC.timeToFirstChunk.name), [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(counts(METRIC.proxyOverhead.name)[3], 1);

    const tokens = hist(METRIC.tokenUsage.name);
    assert.equal(tokens.descriptor.unit, '{token}');
    const byType = Object.fromEntries(tokens.dataPoints.map((p) => [p.attributes['gen_ai.token.type'], p.value.sum]));
    assert.deepEqual(byType, { input: 40, output: 11 });
    for (const p of tokens.dataPoints) assert.deepEqual({ ...p.attributes, 'gen_ai.token.type': undefined }, { ...base, 'gen_ai.token.type': undefined });

    const requests = m.get(METRIC.requests.name)!;
    assert.equal(requests.dataPointType, DataPointType.SUM);
    assert.equal(requests.dataPoints.length, 1);
    assert.deepEqual(requests.dataPoints[0]!.attributes, { ...base, 'http.response.status_code': 200, 'llmtap.outcome': 'ok' });
    assert.equal(requests.dataPoints[0]!.value, 1);

    const bytes = m.get(METRIC.bytes.name)!;
    assert.equal(bytes.descriptor.unit, 'By');
    assert.deepEqual(Object.fromEntries(bytes.dataPoints.map((p) => [p.attributes['llmtap.direction'], p.value])), { request: 300, response: 4900 });

    const activeM = m.get(METRIC.activeRequests.name)!;
    assert.equal(activeM.dataPointType, DataPointType.SUM);
    assert.equal(activeM.dataPoints[0]!.value, 2, 'active requests read from the source at collection');
  });

  it('each histogram has the convention-given explicit bucket boundaries', async () => {
    const m = await collect();
    for (const key of Object.keys(BUCKETS) as (keyof typeof BUCKETS)[]) {
      const boundaries = BUCKETS[key];
      if (!boundaries) continue;
      const d = m.get(METRIC[key].name) as HistogramMetricData;
      assert.ok(d, `${METRIC[key].name} present`);
      assert.deepEqual(d.dataPoints[0]!.value.buckets.boundaries, [...boundaries], `${METRIC[key].name} boundaries`);
    }
    assert.deepEqual(BUCKETS.operationDuration, [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]);
    assert.deepEqual(BUCKETS.tokenUsage, [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]);
    assert.deepEqual(BUCKETS.serverTimeToFirstToken, [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]);
    assert.deepEqual(BUCKETS.serverTimePerOutputToken, [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5]);
    assert.deepEqual(BUCKETS.timeToFirstChunk, BUCKETS.operationDuration);
    assert.deepEqual(BUCKETS.timePerOutputChunk, BUCKETS.operationDuration);
  });

  it('failures carry error.type; non-streamed and never-forwarded exchanges skip what does not apply', async () => {
    t.metrics.record(record({ id: 'e', stream: false, status: 504, outcome: 'upstream_timeout', errorType: 'LLMTAP_UPSTREAM_TIMEOUT', responseModel: null, usage: { input: null, output: null, cacheRead: null, cacheWrite: null, reasoning: null, source: 'none' }, timings: { ttfb: null, ttft: null, duration: 50, timePerOutputToken: null, overhead: 0.1 } }), 1);
    t.metrics.record(record({ id: 'big', stream: false, status: 413, outcome: 'body_too_large', errorType: 'LLMTAP_BODY_TOO_LARGE', model: 'unknown', responseModel: null }), null);
    const m = await collect();
    const failed = (m.get(METRIC.operationDuration.name) as HistogramMetricData).dataPoints.find((p) => p.attributes['error.type'] === 'LLMTAP_UPSTREAM_TIMEOUT');
    assert.ok(failed, 'the failed call is in gen_ai.client.operation.duration with error.type');
    assert.equal(failed.value.count, 1);
    assert.equal((m.get(METRIC.timeToFirstChunk.name) as HistogramMetricData).dataPoints.find((p) => p.attributes['error.type']), undefined, 'no ttfc for a non-streamed call');
    assert.equal(
      (m.get(METRIC.operationDuration.name) as HistogramMetricData).dataPoints.find((p) => p.attributes['error.type'] === 'LLMTAP_BODY_TOO_LARGE'),
      undefined,
      'a request that never went upstream is no GenAI operation',
    );
    const requests = m.get(METRIC.requests.name)!.dataPoints.find((p) => p.attributes['llmtap.outcome'] === 'body_too_large');
    assert.ok(requests, 'but it is counted in llmtap.requests');
    assert.equal(requests.attributes['http.response.status_code'], 413);
  });

  it(`past the cap, model values count as "${OTHER_MODEL}": 50 random models leave at most cap + 1 values`, async () => {
    for (let i = 0; i < 50; i++) t.metrics.record(record({ id: `m${i}`, model: `random-${i}-${Math.random()}`, responseModel: `resp-${i}` }), 1);
    const m = await collect();
    for (const name of [METRIC.requests.name, METRIC.operationDuration.name, METRIC.tokenUsage.name]) {
      const points = m.get(name)!.dataPoints;
      const requested = new Set(points.map((p) => p.attributes['gen_ai.request.model']));
      const responded = new Set(points.map((p) => p.attributes['gen_ai.response.model']).filter((v) => v !== undefined));
      assert.ok(requested.size <= 3 + 1 + 1, `${name}: ${requested.size} request model values (${[...requested].join(', ')})`); // cap 3, other, and unknown (absent)
      assert.ok(requested.has(OTHER_MODEL), `${name}: the rest counted as other`);
      assert.ok(responded.size <= 4, `${name}: ${responded.size} response model values`);
    }
    const other = m.get(METRIC.requests.name)!.dataPoints.filter((p) => p.attributes['gen_ai.request.model'] === OTHER_MODEL).reduce((n, p) => n + (p.value as number), 0);
    assert.ok(other >= 48, `the 48+ capped exchanges are all counted (${other})`);
  });
});

describe('export failures', () => {
  let closed: Server;
  let port: number;
  before(async () => {
    // A port that refuses: listen, note it, close.
    closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
  });

  it('an unreachable OTLP endpoint is logged once with the endpoint and the cause, then only counted', async () => {
    const logged: Array<{ f: ExportFailure; message: string }> = [];
    const tracker = createFailureTracker((f, message) => logged.push({ f, message }));
    const url = `http://127.0.0.1:${port}/v1/traces`;
    const guarded = guardSpanExporter(new OTLPTraceExporter({ url, timeoutMillis: 2000 }), 'otlp', url, tracker);
    const spans = new InMemorySpanExporter();
    // Real spans to export: reuse the SDK to make a few.
    const t = await startTelemetry(readTelemetrySettings({ OTEL_METRICS_EXPORTER: 'none' }), { env: {}, serviceVersion: '0', maxModels: 1, activeRequests: () => 0, onExportFailure: () => {}, warn: () => {}, extraSpanExporters: [spans] });
    t.spans.begin('GET', '/metrics', {}).endRequest(200);
    await t.sdk.forceFlush();
    const made = spans.getFinishedSpans();
    assert.equal(made.length, 1);
    const results: number[] = [];
    for (let i = 0; i < 3; i++) results.push(await new Promise<number>((resolve) => guarded.export(made, (r) => resolve(r.code))));
    assert.deepEqual(results, [1, 1, 1], 'each export reports FAILED to the SDK, none throws');
    assert.equal(logged.length, 1, 'logged once');
    assert.equal(logged[0]!.f.endpoint, url);
    assert.match(logged[0]!.message, new RegExp(`traces export to otlp \\(${url.replace(/[.]/g, '\\.')}\\) failed: .*ECONNREFUSED`));
    assert.deepEqual(tracker.counts(), [{ signal: 'traces', exporter: 'otlp', count: 3 }]);
    await guarded.shutdown();
    await t.sdk.shutdown();
  });

  it('an exporter that throws is contained and counted in llmtap.telemetry.export_failures', async () => {
    const logged: string[] = [];
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const throwing = {
      export() {
        throw new Error('backend exploded');
      },
      shutdown: async () => {},
    };
    const t = await startTelemetry(readTelemetrySettings({ OTEL_METRICS_EXPORTER: 'none', OTEL_BSP_SCHEDULE_DELAY: '1' }), {
      env: {},
      serviceVersion: '0',
      maxModels: 1,
      activeRequests: () => 0,
      onExportFailure: (_f, m) => logged.push(m),
      warn: () => {},
      extraMetricExporters: [exporter],
    });
    const guarded = guardSpanExporter(throwing, 'module:./boom.mjs', './boom.mjs', t.sdk.failures);
    for (let i = 0; i < 4; i++) await new Promise<void>((resolve) => guarded.export([], () => resolve()));
    assert.equal(logged.length, 1);
    assert.match(logged[0]!, /module:\.\/boom\.mjs \(\.\/boom\.mjs\) failed: backend exploded/);
    await t.sdk.forceFlush();
    const m = exporter.getMetrics().flatMap((rm) => rm.scopeMetrics.flatMap((s) => s.metrics)).find((x) => x.descriptor.name === METRIC.exportFailures.name);
    assert.ok(m, 'llmtap.telemetry.export_failures is exported');
    assert.deepEqual(m.dataPoints.map((p) => [p.attributes, p.value]), [[{ 'llmtap.telemetry.signal': 'traces', 'llmtap.telemetry.exporter': 'module:./boom.mjs' }, 4]]);
    await t.sdk.shutdown();
  });
});
