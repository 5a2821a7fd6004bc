// End to end: OTEL_TRACES_EXPORTER=module:<path> loads a user's exporter module, which receives llmtap's spans.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { SpanKind } from '@opentelemetry/api';
import { configWith } from '../../src/config.ts';
import { startLlmtap, type RunningLlmtap } from '../../src/start.ts';
import { telemetryFeature } from '../../src/telemetry/feature.ts';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.ts';
import { testExporterState } from '../fixtures/otel-test-exporter.ts';

const MODULE = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'otel-test-exporter.ts');

let mock: MockUpstream;
let proxy: RunningLlmtap;

before(async () => {
  mock = await startMockUpstream();
  proxy = await startLlmtap(configWith({ port: 0, openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: mock.url, logLevel: 'silent' }), {
    features: [telemetryFeature],
    env: { OTEL_TRACES_EXPORTER: `module:${MODULE}`, OTEL_METRICS_EXPORTER: 'none', OTEL_BSP_SCHEDULE_DELAY: '50' },
  });
});

after(async () => {
  await proxy?.close();
  await mock?.close();
});

describe('module:<path> exporter', () => {
  it('is built once for traces and receives the SERVER and CLIENT spans of a request', async () => {
    const state = testExporterState();
    assert.deepEqual(state.calls, [{ signal: 'traces' }], 'the default export was called once, for traces');
    mock.handle({ kind: 'chat', model: 'module-served', usage: { input: 3, output: 2 } });
    const r = await fetch(`${proxy.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'module-model', messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    const traceId = r.headers.get('x-llmtap-trace-id');
    assert.match(traceId ?? '', /^[0-9a-f]{32}$/);

    const mine = () => state.spans.filter((s) => s.spanContext().traceId === traceId);
    for (let i = 0; i < 100 && mine().length < 2; i++) await sleep(50);
    const spans = mine();
    const server = spans.find((s) => s.kind === SpanKind.SERVER);
    const client = spans.find((s) => s.kind === SpanKind.CLIENT);
    assert.ok(server && client, `the module got both spans (got ${spans.map((s) => s.name).join(', ') || 'none'} of ${state.spans.length})`);
    assert.equal(client.name, 'chat module-model');
    assert.equal(client.parentSpanContext?.spanId, server.spanContext().spanId);
    assert.equal(client.attributes['gen_ai.response.model'], 'module-served');
    assert.equal(client.attributes['gen_ai.usage.output_tokens'], 2);
  });

  it('is shut down when llmtap closes', async () => {
    await proxy.close();
    assert.equal(testExporterState().shutdowns, 1);
  });
});
