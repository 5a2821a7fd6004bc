// OTEL_* settings: defaults, the spec's endpoint rules, validation messages, the exporter registry and module: loading.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { METRIC_EXPORTER_NAMES, TRACE_EXPORTER_NAMES, buildMetricSinks, buildTraceSinks, readTelemetrySettings, TelemetrySettingError } from '../../otel/index.ts';
import { configWith, ConfigError } from '../../src/config.ts';
import { createExchangeBus } from '../../src/exchange/bus.ts';
import { telemetryFeature } from '../../src/telemetry/feature.ts';
import type { FeatureContext } from '../../src/features.ts';
import pino from 'pino';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

function errorOf(env: Record<string, string>): TelemetrySettingError {
  try {
    readTelemetrySettings(env);
  } catch (err) {
    assert.ok(err instanceof TelemetrySettingError, `a TelemetrySettingError, got ${String(err)}`);
    return err;
  }
  assert.fail(`no error for ${JSON.stringify(env)}`);
}

function ctxWith(env: Record<string, string>): FeatureContext {
  return { config: configWith({ logLevel: 'silent' }), log: pino({ level: 'silent' }), bus: createExchangeBus(() => {}), env, inFlight: () => 0, upstreams: null, rateLimited: () => 0 };
}

describe('telemetry settings', () => {
  it('defaults: service llmtap, traces none without an endpoint, metrics prometheus on 127.0.0.1:9464, http/protobuf, no content', () => {
    const s = readTelemetrySettings({});
    assert.equal(s.serviceName, 'llmtap');
    assert.equal(s.disabled, false);
    assert.deepEqual(s.traceExporters, []);
    assert.deepEqual(s.metricExporters, [{ kind: 'named', name: 'prometheus' }]);
    assert.deepEqual(s.prometheus, { host: '127.0.0.1', port: 9464 });
    assert.equal(s.otlp.traces.url, 'http://localhost:4318/v1/traces');
    assert.equal(s.otlp.metrics.url, 'http://localhost:4318/v1/metrics');
    assert.equal(s.otlp.traces.protocol, 'http/protobuf');
    assert.equal(s.otlp.traces.timeoutMs, 10_000);
    assert.equal(s.jaeger.url, 'http://localhost:4318/v1/traces');
    assert.equal(s.content, 'NO_CONTENT');
    assert.deepEqual(s.sampler, { name: 'parentbased_always_on', ratio: 1 });
    assert.equal(s.metricExportIntervalMs, 60_000);
  });

  it('an OTLP endpoint turns traces on by default; the generic endpoint gets /v1/<signal>, a per-signal one is used as is', () => {
    const s = readTelemetrySettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://metrics:9000/custom' });
    assert.deepEqual(s.traceExporters, [{ kind: 'named', name: 'otlp' }]);
    assert.equal(s.otlp.traces.url, 'http://collector:4318/v1/traces');
    assert.equal(s.otlp.metrics.url, 'http://metrics:9000/custom');
    assert.equal(s.jaeger.url, 'http://collector:4318/v1/traces', 'jaeger follows a set endpoint');
    const own = readTelemetrySettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:1/x' });
    assert.deepEqual(own.traceExporters, [{ kind: 'named', name: 'otlp' }]);
    assert.equal(own.otlp.traces.url, 'http://t:1/x');
  });

  it('headers (generic merged under per-signal, values percent-decoded), protocol, timeout, compression per signal', () => {
    const s = readTelemetrySettings({
      OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20abc,x-team=a',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-team=b',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_TIMEOUT: '2500',
      OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'gzip',
    });
    assert.deepEqual(s.otlp.traces.headers, { authorization: 'Bearer abc', 'x-team': 'b' });
    assert.deepEqual(s.otlp.metrics.headers, { authorization: 'Bearer abc', 'x-team': 'a' });
    assert.equal(s.otlp.traces.protocol, 'http/json');
    assert.equal(s.otlp.metrics.protocol, 'http/protobuf');
    assert.equal(s.otlp.traces.timeoutMs, 2500);
    assert.equal(s.otlp.traces.compression, 'gzip');
    assert.equal(s.otlp.metrics.compression, 'none');
  });

  it('lists combine, none alone turns a signal off, names are case-insensitive, module: keeps its path', () => {
    const s = readTelemetrySettings({ OTEL_TRACES_EXPORTER: 'OTLP, console,module:./x.mjs', OTEL_METRICS_EXPORTER: 'none' });
    assert.deepEqual(s.traceExporters, [{ kind: 'named', name: 'otlp' }, { kind: 'named', name: 'console' }, { kind: 'module', path: './x.mjs' }]);
    assert.deepEqual(s.metricExporters, []);
  });

  it('resource attributes, service name, sampler, SDK switch, Prometheus host/port, content capture', () => {
    const s = readTelemetrySettings({
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,team=ml%2Cops',
      OTEL_SERVICE_NAME: 'gateway',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_SDK_DISABLED: 'TRUE',
      OTEL_EXPORTER_PROMETHEUS_HOST: '0.0.0.0',
      OTEL_EXPORTER_PROMETHEUS_PORT: '0',
      OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: 'span_only',
    });
    assert.deepEqual(s.resourceAttributes, { 'deployment.environment': 'prod', team: 'ml,ops' });
    assert.equal(s.serviceName, 'gateway');
    assert.deepEqual(s.sampler, { name: 'parentbased_traceidratio', ratio: 0.25 });
    assert.equal(s.disabled, true);
    assert.deepEqual(s.prometheus, { host: '0.0.0.0', port: 0 });
    assert.equal(s.content, 'SPAN_ONLY');
    assert.equal(readTelemetrySettings({ OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: 'true' }).content, 'SPAN_AND_EVENT');
    assert.equal(readTelemetrySettings({ OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attrs' }).serviceName, 'from-attrs');
  });

  it('bad values name the variable, the value and what is allowed, on one line', () => {
    const cases: Array<[Record<string, string>, string, RegExp]> = [
      [{ OTEL_TRACES_EXPORTER: 'otlp,jaegr' }, 'OTEL_TRACES_EXPORTER', /expected otlp, jaeger, zipkin, console, none, module:<path>/],
      [{ OTEL_METRICS_EXPORTER: 'statsd' }, 'OTEL_METRICS_EXPORTER', /expected prometheus, otlp, console, none, module:<path>/],
      [{ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, 'OTEL_EXPORTER_OTLP_PROTOCOL', /http\/protobuf or http\/json/],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, 'OTEL_EXPORTER_OTLP_ENDPOINT', /an http\(s\) URL/],
      [{ OTEL_EXPORTER_PROMETHEUS_PORT: '70000' }, 'OTEL_EXPORTER_PROMETHEUS_PORT', /integer from 0 to 65535/],
      [{ OTEL_TRACES_SAMPLER: 'sometimes' }, 'OTEL_TRACES_SAMPLER', /always_on, always_off, traceidratio/],
      [{ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' }, 'OTEL_TRACES_SAMPLER_ARG', /from 0 to 1/],
      [{ OTEL_SDK_DISABLED: 'yes' }, 'OTEL_SDK_DISABLED', /true or false/],
      [{ OTEL_METRIC_EXPORT_INTERVAL: 'soon' }, 'OTEL_METRIC_EXPORT_INTERVAL', /an integer/],
      [{ OTEL_EXPORTER_OTLP_HEADERS: 'novalue' }, 'OTEL_EXPORTER_OTLP_HEADERS', /key=value/],
      [{ OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: 'ALL' }, 'OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT', /NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT/],
    ];
    for (const [env, variable, allowed] of cases) {
      const err = errorOf(env);
      assert.equal(err.variable, variable);
      assert.equal(err.value, env[variable]);
      assert.ok(err.message.startsWith(`invalid setting ${variable}=${JSON.stringify(env[variable])}: expected`), err.message);
      assert.match(err.message, allowed);
      assert.ok(!err.message.includes('\n'), 'one line');
    }
  });

  it('the feature turns a bad value into a ConfigError (main prints it and exits 1) and returns null when everything is off', async () => {
    await assert.rejects(telemetryFeature(ctxWith({ OTEL_TRACES_EXPORTER: 'jaegerr' })), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /^llmtap: invalid setting OTEL_TRACES_EXPORTER="jaegerr": expected otlp, jaeger, zipkin, console, none, module:<path>/);
      return true;
    });
    assert.equal(await telemetryFeature(ctxWith({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'console' })), null);
    assert.equal(await telemetryFeature(ctxWith({ OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none' })), null);
  });
});

describe('exporter registry', () => {
  it('names the exporters the contract lists', () => {
    assert.deepEqual([...TRACE_EXPORTER_NAMES].sort(), ['console', 'jaeger', 'none', 'otlp', 'zipkin']);
    assert.deepEqual([...METRIC_EXPORTER_NAMES].sort(), ['console', 'none', 'otlp', 'prometheus']);
  });

  it('builds each named exporter with its endpoint: jaeger is OTLP/HTTP to localhost:4318, zipkin its own URL', async () => {
    const s = readTelemetrySettings({ OTEL_TRACES_EXPORTER: 'otlp,jaeger,zipkin,console', OTEL_METRICS_EXPORTER: 'prometheus,otlp,console', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:1/t' });
    const traces = await buildTraceSinks(s, {});
    assert.deepEqual(traces.map((t) => [t.name, t.endpoint]), [
      ['otlp', 'http://127.0.0.1:1/t'],
      ['jaeger', 'http://127.0.0.1:1/t'],
      ['zipkin', 'http://localhost:9411/api/v2/spans'],
      ['console', 'stdout'],
    ]);
    const jaegerDefault = await buildTraceSinks(readTelemetrySettings({ OTEL_TRACES_EXPORTER: 'jaeger' }), {});
    assert.equal(jaegerDefault[0]!.endpoint, 'http://localhost:4318/v1/traces');
    const metrics = await buildMetricSinks(s, {});
    assert.deepEqual(metrics.map((m) => [m.kind, m.name]), [['pull', 'prometheus'], ['push', 'otlp'], ['push', 'console']]);
    await Promise.all([...traces.map((t) => t.exporter.shutdown()), ...metrics.map((m) => (m.kind === 'push' ? m.exporter.shutdown() : m.reader.shutdown()))]);
  });

  it('module:<path> loads a user module whose default export builds the exporter, for traces and metrics', async () => {
    const path = join(FIXTURES, 'otel-unit-exporter.mjs');
    const s = readTelemetrySettings({ OTEL_TRACES_EXPORTER: `module:${path}`, OTEL_METRICS_EXPORTER: `module:${path}`, OTEL_SERVICE_NAME: 'svc' });
    const [trace] = await buildTraceSinks(s, {});
    const [metric] = await buildMetricSinks(s, {});
    assert.equal(trace!.name, `module:${path}`);
    assert.equal(metric!.kind, 'push');
    const state = (globalThis as Record<symbol, { contexts: unknown[] }>)[Symbol.for('llmtap.unit.exporter')]!;
    assert.deepEqual(state.contexts.slice(-2), [{ signal: 'traces', serviceName: 'svc' }, { signal: 'metrics', serviceName: 'svc' }]);
  });

  it('module:<path> that is missing or builds nothing stops start-up with the variable and the reason', async () => {
    const missing = readTelemetrySettings({ OTEL_TRACES_EXPORTER: 'module:./no/such/exporter.mjs' });
    await assert.rejects(buildTraceSinks(missing, {}), (err: unknown) => {
      assert.ok(err instanceof TelemetrySettingError);
      assert.match(err.message, /^invalid setting OTEL_TRACES_EXPORTER="module:.\/no\/such\/exporter.mjs": expected a module that loads/);
      return true;
    });
    const broken = join(FIXTURES, 'otel-broken-exporter.mjs');
    await assert.rejects(telemetryFeature(ctxWith({ OTEL_METRICS_EXPORTER: `module:${broken}` })), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /OTEL_METRICS_EXPORTER=.*default export is a function/);
      return true;
    });
  });
});
