// llmtap.cost and the capture counters reach the Prometheus scrape with the numbers the usage store and captures hold.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configWith } from '../../src/config.ts';
import { ALL_FEATURES } from '../../src/feature-list.ts';
import { startLlmtap, type RunningLlmtap } from '../../src/start.ts';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.ts';

let mock: MockUpstream;
let proxy: RunningLlmtap;
let dir: string;

before(async () => {
  mock = await startMockUpstream();
  dir = mkdtempSync(join(tmpdir(), 'llmtap-host-counters-'));
  proxy = await startLlmtap(
    configWith({ port: 0, openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: mock.url, logLevel: 'silent', usageFile: join(dir, 'usage.json'), capture: true, captureDir: join(dir, 'captures') }),
    { features: ALL_FEATURES, env: { OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_PORT: '0' } },
  );
});

after(async () => {
  await proxy.close();
  await mock.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The value of the first sample of a metric whose labels include every given pair. */
function sample(scrape: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of scrape.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return null;
}

describe('llmtap.* counters kept by other features', () => {
  it('llmtap.cost equals tokens x list price, and the capture counters are exported', async () => {
    // gpt-4o lists at 2.50 USD per million input tokens and 10.00 per million output tokens.
    mock.handle({ kind: 'chat', usage: { input: 1000, output: 500 }, stream: false });
    const res = await fetch(`${proxy.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test' },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(res.status, 200);
    await res.text();
    await proxy.bus.drain();
    const scrape = await (await fetch(`${proxy.url}/metrics`)).text();
    const cost = sample(scrape, 'llmtap_cost_total', { gen_ai_request_model: 'gpt-4o', gen_ai_provider_name: 'openai' });
    assert.ok(cost !== null, `llmtap_cost_total for gpt-4o in the scrape:\n${scrape.split('\n').filter((l) => l.includes('cost')).join('\n')}`);
    assert.ok(Math.abs(cost - (1000 * 2.5 + 500 * 10) / 1e6) < 1e-9, `cost ${cost}`);
    assert.equal(sample(scrape, 'llmtap_capture_dropped_total'), 0);
    assert.equal(sample(scrape, 'llmtap_capture_write_failures_total'), 0);
  });
});
