// End to end: 1,000 concurrent requests through llmtap with the usage store on: exactly 1,000 records, and totals equal to what the upstream reported.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { configWith } from '../../src/config.ts';
import { startLlmtap, type RunningLlmtap } from '../../src/start.ts';
import { usageFeature } from '../../src/usage/feature.ts';
import type { UsageRecord } from '../../src/usage/record.ts';
import type { Stats } from '../../src/usage/stats.ts';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.ts';
import { jsonOf, postJson, send } from '../helpers/http-client.ts';

const N = 1000;
let dir: string;
let mock: MockUpstream;
let proxy: RunningLlmtap;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'llmtap-usage-load-'));
  mock = await startMockUpstream();
  proxy = await startLlmtap(
    configWith({ port: 0, openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: mock.url, logLevel: 'silent', usageFile: join(dir, 'usage.json'), usageFlushMs: 250 }),
    { features: [usageFeature] },
  );
});

after(async () => {
  await proxy?.close();
  await mock?.close();
  rmSync(dir, { recursive: true, force: true });
});

const KINDS = [
  { path: '/v1/chat/completions', model: 'gpt-4o', stream: false },
  { path: '/v1/chat/completions', model: 'gpt-4o-mini', stream: true },
  { path: '/v1/messages', model: 'claude-sonnet-4-5', stream: true },
  { path: '/api/chat', model: 'llama3:latest', stream: true },
] as const;

it(`${N} concurrent requests: exactly ${N} records, totals equal the sum of what the mock reported`, { timeout: 60_000 }, async () => {
  // The mock reports different usage for every request and remembers what it reported.
  const reported = new Map<string, { input: number; output: number; requests: number }>();
  mock.handle((req) => {
    const model = (req.json as { model: string }).model;
    const usage = { input: 10 + (req.seq % 97), output: 1 + (req.seq % 31) };
    const r = reported.get(model) ?? { input: 0, output: 0, requests: 0 };
    r.input += usage.input;
    r.output += usage.output;
    r.requests++;
    reported.set(model, r);
    return { kind: 'chat', usage, pieces: ['a', 'b', 'c'] };
  });

  const t0 = Date.now();
  const results = await Promise.all(
    Array.from({ length: N }, (_, i) => {
      const k = KINDS[i % KINDS.length]!;
      const headers: Record<string, string> = k.path === '/v1/messages' ? { 'x-api-key': 'k', 'anthropic-version': '2023-06-01' } : { authorization: 'Bearer k' };
      const body = k.path === '/v1/messages' ? { model: k.model, max_tokens: 16, stream: k.stream, messages: [{ role: 'user', content: `hi ${i}` }] } : { model: k.model, stream: k.stream, messages: [{ role: 'user', content: `hi ${i}` }] };
      return postJson(`${proxy.url}${k.path}`, body, headers, { timeoutMs: 45_000 });
    }),
  );
  const elapsed = Date.now() - t0;
  assert.equal(results.filter((r) => r.status === 200 && r.complete).length, N, 'every client got its whole answer');
  assert.equal(mock.requests.length, N);

  let stats: Stats | null = null;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    stats = jsonOf(await send(`${proxy.url}/v1/usage/stats`)) as Stats;
    if (stats.totals.requests >= N) break;
    await sleep(50);
  }
  assert.equal(stats!.totals.requests, N);
  assert.equal(stats!.totals.errors, 0);
  let input = 0;
  let output = 0;
  for (const [model, r] of reported) {
    input += r.input;
    output += r.output;
    const m = stats!.byModel.find((x) => x.model === model)!;
    assert.equal(m.requests, r.requests, model);
    // Anthropic's input counts cache reads too; the mock reports none here.
    assert.equal(m.inputTokens, r.input, `${model} input`);
    assert.equal(m.outputTokens, r.output, `${model} output`);
  }
  assert.equal(stats!.totals.inputTokens, input);
  assert.equal(stats!.totals.outputTokens, output);
  assert.equal(stats!.totals.totalTokens, input + output);
  assert.equal(stats!.totals.estimatedRequests, 0, 'all usage as reported');

  await proxy.close();
  const file = JSON.parse(readFileSync(join(dir, 'usage.json'), 'utf8')) as { records: UsageRecord[] };
  assert.equal(file.records.length, N, 'exactly one record per request in the file');
  assert.equal(new Set(file.records.map((r) => r.id)).size, N);
  assert.equal(file.records.reduce((a, r) => a + (r.inputTokens ?? 0), 0), input);
  assert.equal(file.records.reduce((a, r) => a + (r.outputTokens ?? 0), 0), output);
  console.log(`# ${N} concurrent requests through llmtap with the usage store in ${elapsed} ms`);
});
