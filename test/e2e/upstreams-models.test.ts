// End to end: with several upstreams, the official clients' model lists show every upstream's models, answered by llmtap.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import { loadConfig } from '../../src/config.ts';
import { startLlmtap, type RunningLlmtap } from '../../src/start.ts';
import type { UpstreamSpec } from '../../src/upstreams/spec.ts';
import { startMockUpstream, defaultScript, type MockUpstream } from '../helpers/mock-upstream.ts';

const spec = (name: string, dialect: UpstreamSpec['dialect'], url: string, models: string[] | null): UpstreamSpec => ({
  name,
  dialect,
  url,
  models,
  apiKeyEnv: null,
  apiKey: null,
  maxConcurrent: null,
  maxQueue: null,
  weight: 1,
});

describe('several upstreams: GET /v1/models and /api/tags list them all', () => {
  let a: MockUpstream;
  let b: MockUpstream;
  let o1: MockUpstream;
  let o2: MockUpstream;
  let llmtap: RunningLlmtap;

  before(async () => {
    [a, b, o1, o2] = await Promise.all([startMockUpstream({ name: 'a' }), startMockUpstream({ name: 'b' }), startMockUpstream({ name: 'o1' }), startMockUpstream({ name: 'o2' })]);
    a.handle((req) =>
      req.path === '/v1/models'
        ? { kind: 'raw', status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ object: 'list', data: [{ id: 'm-a' }, { id: 'shared' }] }) }
        : defaultScript(req),
    );
    const action = loadConfig({
      overrides: { port: 0, logLevel: 'silent', usage: false, healthIntervalMs: 3_600_000 },
      upstreams: [
        spec('a', 'openai', a.url, null),
        spec('b', 'openai', b.url, ['m-b', 'shared', 'gpt-5*']),
        // The mock's /api/tags fixture lists real Ollama models; o2's are configured.
        spec('o1', 'ollama', o1.url, null),
        spec('o2', 'ollama', o2.url, ['phi4']),
      ],
    });
    assert.equal(action.kind, 'run');
    llmtap = await startLlmtap((action as Extract<typeof action, { kind: 'run' }>).config);
  });
  after(async () => {
    await llmtap?.close();
    await Promise.all([a, b, o1, o2].map((m) => m?.close()));
  });

  it('the openai client lists the union of the OpenAI-dialect upstreams, each model once, owned by who serves it (globs left out)', async () => {
    const client = new OpenAI({ baseURL: `${llmtap.url}/v1`, apiKey: 'sk-test', maxRetries: 0 });
    const models = [];
    for await (const m of client.models.list()) models.push(m);
    assert.deepEqual(models.map((m) => [m.id, m.owned_by]).sort(), [['m-a', 'a'], ['m-b', 'b'], ['shared', 'a,b']]);
    assert.equal(a.requests.filter((r) => r.method === 'GET' && r.path === '/v1/models').length, 1, 'only the start-up discovery reached upstream a');
  });

  it('the ollama client lists the union of the Ollama upstreams', async () => {
    const discovered = await (await fetch(`${o1.url}/api/tags`)).json() as { models: { name: string }[] };
    assert.ok(discovered.models.length > 0, 'the mock lists some models');
    const client = new Ollama({ host: llmtap.url });
    const { models } = await client.list();
    assert.deepEqual(models.map((m) => m.name).sort(), [...discovered.models.map((m) => m.name), 'phi4'].sort());
  });
});
