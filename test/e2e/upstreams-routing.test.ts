// End to end: several upstreams — each request goes to one serving its model, the strategies' shares, llmtap's own 404/400s, failover before the first byte (never after), api_key_env.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';
import { loadConfig, type Config, type RawSettings } from '../../src/config.ts';
import { startLlmtap, type RunningLlmtap } from '../../src/start.ts';
import { createUsageFeature } from '../../src/usage/feature.ts';
import { telemetryFeature } from '../../src/telemetry/feature.ts';
import type { UpstreamSpec } from '../../src/upstreams/spec.ts';
import type { ExchangeRecord } from '../../src/exchange/record.ts';
import type { UsageRecord } from '../../src/usage/record.ts';
import { startMockUpstream, defaultScript, DEFAULT_PIECES, type MockUpstream, type ReceivedRequest, type Script } from '../helpers/mock-upstream.ts';
import { collectRecords, type RecordSink } from '../helpers/records.ts';
import { postJson, send, jsonOf, type RawResponse } from '../helpers/http-client.ts';
import { startOtlpReceiver, SPAN_KIND, type OtlpReceiver } from '../helpers/otlp-receiver.ts';

const dir = mkdtempSync(join(tmpdir(), 'llmtap-routing-'));
const KEY_C = 'sk-upstream-c-from-env-0001';
const KEY_ANT = 'sk-ant-upstream-from-env-0002';
const QUIET: RawSettings = { port: 0, logLevel: 'silent', usage: false, healthIntervalMs: 3_600_000, breakerFailures: 100, connectTimeoutMs: 2000 };

type Dialect = 'openai' | 'anthropic' | 'ollama';

// ----- mocks that advertise their models

function modelList(dialect: 'openai' | 'anthropic', ids: readonly string[]): Script {
  const data = ids.map((id) => (dialect === 'openai' ? { id, object: 'model', created: 1_700_000_000, owned_by: 'mock' } : { type: 'model', id, display_name: id, created_at: '2025-01-01T00:00:00Z' }));
  const body = dialect === 'openai' ? { object: 'list', data } : { data, has_more: false, first_id: ids[0], last_id: ids.at(-1) };
  return { kind: 'raw', status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

/** Answers GET /v1/models with `ids` and everything else as `answer` says (the mock's default when it says nothing). */
function serve(mock: MockUpstream, dialect: 'openai' | 'anthropic', ids: readonly string[], answer?: (req: ReceivedRequest) => Script | null): void {
  mock.handle((req) => {
    if (req.method === 'GET' && req.path === '/v1/models') return modelList(dialect, ids);
    return answer?.(req) ?? defaultScript(req);
  });
}

function spec(name: string, dialect: Dialect, url: string, models: string[] | null, extra: Partial<UpstreamSpec> = {}): UpstreamSpec {
  return { name, dialect, url, models, apiKeyEnv: null, apiKey: null, maxConcurrent: null, maxQueue: null, weight: 1, ...extra };
}

function configOf(sources: Parameters<typeof loadConfig>[0]): Config {
  const action = loadConfig(sources);
  assert.equal(action.kind, 'run');
  return (action as { kind: 'run'; config: Config }).config;
}

// ----- requests

const chatBody = (model: string, tag: string, stream = false): Record<string, unknown> => ({ model, stream, messages: [{ role: 'user', content: tag }] });
const chat = (via: RunningLlmtap, model: string, tag = 'hi', stream = false, headers: Record<string, string> = {}): Promise<RawResponse> =>
  postJson(`${via.url}/v1/chat/completions`, chatBody(model, tag, stream), headers);
const messages = (via: RunningLlmtap, model: string, tag = 'hi', headers: Record<string, string> = {}): Promise<RawResponse> =>
  postJson(`${via.url}/v1/messages`, { model, max_tokens: 32, messages: [{ role: 'user', content: tag }] }, { 'anthropic-version': '2023-06-01', ...headers });
const ollamaChat = (via: RunningLlmtap, model: string, tag = 'hi'): Promise<RawResponse> => postJson(`${via.url}/api/chat`, { model, stream: false, messages: [{ role: 'user', content: tag }] });

const isPost = (r: ReceivedRequest): boolean => r.method === 'POST';
const posts = (m: MockUpstream): ReceivedRequest[] => m.requests.filter(isPost);
const carries = (tag: string) => (r: ReceivedRequest): boolean => isPost(r) && r.body.toString('utf8').includes(`"${tag}"`);

/** Which of the mocks received the request tagged `tag` (exactly one must have). */
function landedOn(mocks: readonly MockUpstream[], tag: string): string {
  const got = mocks.filter((m) => m.requests.some(carries(tag)));
  assert.equal(got.length, 1, `request ${tag} reached exactly one upstream (reached: ${got.map((m) => m.name).join(', ') || 'none'})`);
  return got[0]!.name;
}

function counts(names: readonly string[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const n of names) c[n] = (c[n] ?? 0) + 1;
  return c;
}

function ok(res: RawResponse, what: string): void {
  assert.equal(res.status, 200, `${what}: ${res.body.toString('utf8').slice(0, 300)}`);
}

/** Checks status, x-llmtap-error, the dialect's error shape and code; returns the message. */
function llmtapError(res: RawResponse, dialect: Dialect, status: number, code: string): string {
  const text = res.body.toString('utf8');
  assert.equal(res.status, status, `status (body: ${text.slice(0, 300)})`);
  assert.equal(res.headers['x-llmtap-error'], code);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = jsonOf(res) as Record<string, unknown>;
  if (dialect === 'openai') {
    const e = body.error as Record<string, unknown>;
    assert.ok(e && typeof e === 'object', `OpenAI shape {"error":{...}}: ${text}`);
    assert.equal(e.code, code);
    assert.equal(typeof e.type, 'string');
    return String(e.message);
  }
  if (dialect === 'anthropic') {
    assert.equal(body.type, 'error', `Anthropic shape {"type":"error",...}: ${text}`);
    const e = body.error as Record<string, unknown>;
    assert.ok(e && typeof e === 'object');
    assert.equal(e.code, code);
    assert.equal(typeof e.type, 'string');
    return String(e.message);
  }
  assert.equal(typeof body.error, 'string', `Ollama shape {"error":"..."}: ${text}`);
  assert.equal(body.code, code);
  return String(body.error);
}

// ----- the shared set of mocks

let A: MockUpstream;
let B: MockUpstream;
let C: MockUpstream;
let ANT: MockUpstream;
let OLL: MockUpstream;
let openaiMocks: MockUpstream[];
let allMocks: MockUpstream[];

/** What each advertises (C's are configured, with a glob, not discovered). */
const ADVERTISED = { A: ['model-a', 'shared'], B: ['model-b', 'shared'], ANT: ['claude-routing', 'shared'] };

function resetMocks(): void {
  for (const m of allMocks) m.reset();
  serve(A, 'openai', ADVERTISED.A);
  serve(B, 'openai', ADVERTISED.B);
  serve(ANT, 'anthropic', ADVERTISED.ANT);
}

before(async () => {
  const start = (name: string) => startMockUpstream({ name });
  [A, B, C, ANT, OLL] = await Promise.all([start('A'), start('B'), start('C'), start('ANT'), start('OLL')]);
  openaiMocks = [A, B, C];
  allMocks = [A, B, C, ANT, OLL];
  resetMocks();
});

after(async () => {
  await Promise.all((allMocks ?? []).map((m) => m.close()));
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

describe('routing by model (a YAML config file, round_robin)', () => {
  let proxy: RunningLlmtap;
  let records: RecordSink;

  before(async () => {
    const file = join(dir, 'routing.yaml');
    writeFileSync(
      file,
      [
        'routing_strategy: round_robin',
        'upstreams:',
        `  - { name: A, dialect: openai, url: "${A.url}" }`,
        `  - { name: B, dialect: openai, url: "${B.url}/" }`,
        `  - { name: C, dialect: openai, url: "${C.url}", models: ["model-c*", shared], api_key_env: ROUTING_E2E_KEY_C }`,
        `  - { name: ANT, dialect: anthropic, url: "${ANT.url}", api_key_env: ROUTING_E2E_KEY_ANT }`,
        `  - { name: OLL, dialect: ollama, url: "${OLL.url}" }`,
        '',
      ].join('\n'),
    );
    const config = configOf({ env: { LLMTAP_CONFIG: file, ROUTING_E2E_KEY_C: KEY_C, ROUTING_E2E_KEY_ANT: KEY_ANT }, overrides: QUIET });
    assert.equal(config.routingStrategy, 'round_robin', 'from the file');
    proxy = await startLlmtap(config);
    records = collectRecords(proxy.bus);
  });

  after(async () => {
    await proxy?.close();
  });

  beforeEach(() => {
    resetMocks();
    records.clear();
  });

  it('discovered the advertised models at start (GET /v1/models, /api/tags)', () => {
    const st = Object.fromEntries(proxy.upstreams!.status().map((u) => [u.name, u]));
    assert.deepEqual([...st.A!.models].sort(), ADVERTISED.A);
    assert.equal(st.A!.modelsSource, 'discovered');
    assert.deepEqual([...st.B!.models].sort(), ADVERTISED.B);
    assert.deepEqual([...st.C!.models], ['model-c*', 'shared']);
    assert.equal(st.C!.modelsSource, 'configured');
    assert.deepEqual([...st.ANT!.models].sort(), ADVERTISED.ANT);
    assert.deepEqual([...st.OLL!.models].sort(), ['deepseek-r1:latest', 'llama3.2:latest']);
  });

  it('OpenAI: each request lands on the one upstream serving its model; the record names it', async () => {
    const cases: Array<[string, MockUpstream]> = [
      ['model-a', A],
      ['model-b', B],
      ['model-c-large', C],
      ['model-c', C],
    ];
    for (const [model, target] of cases) {
      records.clear();
      const tag = `to-${model}`;
      const res = await chat(proxy, model, tag);
      ok(res, model);
      assert.equal((jsonOf(res) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content, DEFAULT_PIECES.join(''));
      assert.equal(landedOn(allMocks, tag), target.name, `${model} goes to ${target.name}`);
      const r = await records.waitFor((x) => x.model === model);
      assert.deepEqual(r.upstream, { name: target.name, url: target === B ? B.url : target.url }, `${model}: the record names the upstream`);
      assert.equal(r.outcome, 'ok');
      assert.equal(r.failover, undefined, 'no failover');
    }
    assert.equal(posts(ANT).length + posts(OLL).length, 0, 'other dialects untouched');
  });

  it('the official openai client, not streamed and streamed, reaches the upstream serving the model', async () => {
    const client = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: 'sk-client-openai', maxRetries: 0 });
    const plain = await client.chat.completions.create({ model: 'model-b', messages: [{ role: 'user', content: 'sdk-plain' }] });
    assert.equal(plain.choices[0]!.message.content, DEFAULT_PIECES.join(''));
    let text = '';
    for await (const chunk of await client.chat.completions.create({ model: 'model-a', messages: [{ role: 'user', content: 'sdk-stream' }], stream: true })) {
      text += chunk.choices[0]?.delta?.content ?? '';
    }
    assert.equal(text, DEFAULT_PIECES.join(''));
    assert.equal(landedOn(allMocks, 'sdk-plain'), 'B');
    assert.equal(landedOn(allMocks, 'sdk-stream'), 'A');
    const rb = await records.waitFor((x) => x.model === 'model-b');
    const ra = await records.waitFor((x) => x.model === 'model-a');
    assert.equal(rb.upstream.name, 'B');
    assert.equal(rb.stream, false);
    assert.equal(ra.upstream.name, 'A');
    assert.equal(ra.stream, true);
    assert.equal(ra.streamComplete, true);
  });

  it('Anthropic and Ollama requests go to an upstream of their own dialect, even for a model others serve too', async () => {
    ok(await messages(proxy, 'claude-routing', 'ant-1'), 'claude-routing');
    assert.equal(landedOn(allMocks, 'ant-1'), 'ANT');
    // "shared" is served by A, B and C too, but only over the OpenAI dialect.
    ok(await messages(proxy, 'shared', 'ant-shared'), 'shared over /v1/messages');
    assert.equal(landedOn(allMocks, 'ant-shared'), 'ANT');
    const ra = await records.waitFor((x) => x.dialect === 'anthropic' && x.model === 'shared');
    assert.equal(ra.upstream.name, 'ANT');
    // Ollama lists "llama3.2:latest"; clients ask for "llama3.2".
    const res = await ollamaChat(proxy, 'llama3.2', 'oll-1');
    ok(res, 'llama3.2');
    assert.equal(typeof (jsonOf(res) as { message: { content: string } }).message.content, 'string');
    assert.equal(landedOn(allMocks, 'oll-1'), 'OLL');
    ok(await ollamaChat(proxy, 'deepseek-r1:latest', 'oll-2'), 'deepseek-r1:latest');
    assert.equal(landedOn(allMocks, 'oll-2'), 'OLL');
    const ro = await records.waitFor((x) => x.dialect === 'ollama' && x.model === 'llama3.2');
    assert.equal(ro.upstream.name, 'OLL');
    // And the OpenAI dialect never reaches the Anthropic upstream for the model both serve.
    for (let i = 0; i < 6; i++) ok(await chat(proxy, 'shared', `oa-shared-${i}`), 'shared over OpenAI');
    assert.equal(posts(ANT).filter((r) => r.path === '/v1/chat/completions').length, 0, 'no OpenAI request at the Anthropic upstream');
  });

  it('round_robin: the shared model rotates over A, B, C exactly', async () => {
    const landed: string[] = [];
    for (let i = 0; i < 12; i++) {
      const tag = `rr-${i}`;
      ok(await chat(proxy, 'shared', tag), tag);
      landed.push(landedOn(openaiMocks, tag));
    }
    assert.deepEqual(counts(landed), { A: 4, B: 4, C: 4 }, landed.join(','));
    for (let i = 0; i + 3 <= landed.length; i += 3) assert.equal(new Set(landed.slice(i, i + 3)).size, 3, `each round of 3 visits all three: ${landed.join(',')}`);
    for (let i = 3; i < landed.length; i++) assert.equal(landed[i], landed[i - 3], `a fixed rotation: ${landed.join(',')}`);
  });

  it('404 for a model no upstream advertises: names it and the known models of the dialect, in its error shape', async () => {
    const oa = llmtapError(await chat(proxy, 'gpt-nope'), 'openai', 404, 'LLMTAP_UNKNOWN_MODEL');
    assert.match(oa, /none of the configured upstreams advertises model gpt-nope/);
    for (const m of ['model-a', 'model-b', 'model-c*', 'shared']) assert.ok(oa.includes(m), `lists ${m}: ${oa}`);
    assert.ok(!oa.includes('claude-routing') && !oa.includes('llama3.2'), `only the OpenAI dialect's models: ${oa}`);

    const an = llmtapError(await messages(proxy, 'claude-nope'), 'anthropic', 404, 'LLMTAP_UNKNOWN_MODEL');
    assert.match(an, /advertises model claude-nope/);
    assert.ok(an.includes('claude-routing') && !an.includes('model-a'), an);

    const ol = llmtapError(await ollamaChat(proxy, 'mistral'), 'ollama', 404, 'LLMTAP_UNKNOWN_MODEL');
    assert.match(ol, /advertises model mistral/);
    assert.ok(ol.includes('llama3.2:latest'), ol);

    assert.equal(allMocks.reduce((n, m) => n + posts(m).length, 0), 0, 'no upstream was called');
    const r = await records.waitFor((x) => x.model === 'gpt-nope');
    assert.equal(r.status, 404);
    assert.equal(r.outcome, 'no_upstream');
    assert.equal(r.errorType, 'LLMTAP_UNKNOWN_MODEL');
  });

  it('400 for a body without a model, naming the field, in each dialect', async () => {
    const oa = llmtapError(await postJson(`${proxy.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }] }), 'openai', 400, 'LLMTAP_MODEL_MISSING');
    assert.match(oa, /"model"/);
    const an = llmtapError(await postJson(`${proxy.url}/v1/messages`, { max_tokens: 5, messages: [] }, { 'anthropic-version': '2023-06-01' }), 'anthropic', 400, 'LLMTAP_MODEL_MISSING');
    assert.match(an, /"model"/);
    const ol = llmtapError(await postJson(`${proxy.url}/api/chat`, { messages: [] }), 'ollama', 400, 'LLMTAP_MODEL_MISSING');
    assert.match(ol, /"model"/);
    llmtapError(await postJson(`${proxy.url}/v1/embeddings`, { input: 'x' }), 'openai', 400, 'LLMTAP_MODEL_MISSING');
    assert.equal(allMocks.reduce((n, m) => n + posts(m).length, 0), 0, 'no upstream was called');
    const r = await records.waitFor((x) => x.url === '/v1/chat/completions');
    assert.equal(r.status, 400);
    assert.equal(r.outcome, 'bad_request');
  });

  it("400 for malformed JSON, naming JSON.parse's error", async () => {
    const broken = '{"model": "model-a", "messages": [';
    let parseError = '';
    try {
      JSON.parse(broken);
    } catch (err) {
      parseError = (err as Error).message;
    }
    const res = await send(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: broken });
    const msg = llmtapError(res, 'openai', 400, 'LLMTAP_BAD_JSON');
    assert.ok(msg.includes(parseError), `names the parse error "${parseError}": ${msg}`);
    const an = await send(`${proxy.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body: '{not json' });
    llmtapError(an, 'anthropic', 400, 'LLMTAP_BAD_JSON');
    const ol = await send(`${proxy.url}/api/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'nope' });
    llmtapError(ol, 'ollama', 400, 'LLMTAP_BAD_JSON');
    assert.equal(allMocks.reduce((n, m) => n + posts(m).length, 0), 0, 'no upstream was called');
    const r = await records.waitFor((x) => x.errorType === 'LLMTAP_BAD_JSON');
    assert.equal(r.outcome, 'bad_request');
  });

  it('api_key_env: added as the dialect header when the client sent no key; the client\'s own key goes through untouched', async () => {
    ok(await chat(proxy, 'model-c', 'key-none'), 'no key');
    const none = C.requests.find(carries('key-none'))!;
    assert.equal(none.headers.authorization, `Bearer ${KEY_C}`);

    ok(await chat(proxy, 'model-c', 'key-own', false, { authorization: 'Bearer sk-client-own' }), 'own key');
    const own = C.requests.find(carries('key-own'))!;
    assert.equal(own.headers.authorization, 'Bearer sk-client-own');
    assert.ok(!JSON.stringify(own.headers).includes(KEY_C), 'the configured key is not added beside it');

    ok(await chat(proxy, 'model-c', 'key-azure', false, { 'api-key': 'azure-style-key' }), 'api-key header');
    const azure = C.requests.find(carries('key-azure'))!;
    assert.equal(azure.headers.authorization, undefined, 'a client key in api-key counts as a key');
    assert.equal(azure.headers['api-key'], 'azure-style-key');

    ok(await chat(proxy, 'model-a', 'key-a'), 'A has no api_key_env');
    assert.equal(A.requests.find(carries('key-a'))!.headers.authorization, undefined, 'an upstream without api_key_env gets no key');

    ok(await messages(proxy, 'claude-routing', 'ant-none'), 'anthropic, no key');
    assert.equal(ANT.requests.find(carries('ant-none'))!.headers['x-api-key'], KEY_ANT);
    ok(await messages(proxy, 'claude-routing', 'ant-own', { 'x-api-key': 'sk-ant-client' }), 'anthropic, own key');
    assert.equal(ANT.requests.find(carries('ant-own'))!.headers['x-api-key'], 'sk-ant-client');
  });
});

// ---------------------------------------------------------------------------------------------

describe('weighted', () => {
  let proxy: RunningLlmtap;

  before(async () => {
    const upstreams = [spec('A', 'openai', A.url, ['shared'], { weight: 3 }), spec('B', 'openai', B.url, ['shared'], { weight: 1 })];
    proxy = await startLlmtap(configOf({ overrides: { ...QUIET, routingStrategy: 'weighted' }, upstreams }));
  });

  after(async () => {
    await proxy?.close();
  });

  beforeEach(resetMocks);

  it('weights 3:1 → exactly 3:1 over 16 sequential requests, 3:1 in every 4', async () => {
    const landed: string[] = [];
    for (let i = 0; i < 16; i++) {
      const tag = `w-${i}`;
      ok(await chat(proxy, 'shared', tag), tag);
      landed.push(landedOn([A, B], tag));
    }
    assert.deepEqual(counts(landed), { A: 12, B: 4 }, landed.join(','));
    for (let i = 0; i < 16; i += 4) assert.deepEqual(counts(landed.slice(i, i + 4)), { A: 3, B: 1 }, `requests ${i}..${i + 3}: ${landed.join(',')}`);
  });
});

// ---------------------------------------------------------------------------------------------

describe('least_busy', () => {
  let proxy: RunningLlmtap;
  let records: RecordSink;
  const SLOW: Script = { kind: 'chat', firstChunkDelayMs: 3000, pieces: ['slow', ' one'] };

  before(async () => {
    const upstreams = [spec('A', 'openai', A.url, ['model-a', 'shared']), spec('B', 'openai', B.url, ['model-b', 'shared']), spec('C', 'openai', C.url, ['model-c', 'shared'])];
    proxy = await startLlmtap(configOf({ overrides: { ...QUIET, routingStrategy: 'least_busy' }, upstreams }));
    records = collectRecords(proxy.bus);
  });

  after(async () => {
    await proxy?.close();
  });

  beforeEach(() => {
    resetMocks();
    records.clear();
  });

  async function sendShared(n: number, prefix: string): Promise<string[]> {
    const landed: string[] = [];
    for (let i = 0; i < n; i++) {
      const tag = `${prefix}-${i}`;
      ok(await chat(proxy, 'shared', tag), tag);
      landed.push(landedOn(openaiMocks, tag));
    }
    return landed;
  }

  it('with A held busy by a slow stream, the shared model goes to B and C; with A and B busy, all to C; idle again, evenly', async () => {
    A.once(SLOW);
    const slowA = chat(proxy, 'model-a', 'slow-a', true);
    await A.waitForRequest(carries('slow-a'), 2000);
    assert.equal(proxy.upstreams!.status().find((u) => u.name === 'A')!.inFlight, 1);

    const whileA = await sendShared(6, 'busy-a');
    assert.deepEqual(counts(whileA), { B: 3, C: 3 }, `A is busy: ${whileA.join(',')}`);

    B.once(SLOW);
    const slowB = chat(proxy, 'model-b', 'slow-b', true);
    await B.waitForRequest(carries('slow-b'), 2000);
    const whileAB = await sendShared(4, 'busy-ab');
    assert.deepEqual(counts(whileAB), { C: 4 }, `A and B are busy: ${whileAB.join(',')}`);
    assert.equal(posts(A).length, 1, 'A got only its slow stream');
    assert.equal(posts(B).length, 3 + 1, 'B got its 3 shared requests from before, then only its slow stream');

    const [ra, rb] = await Promise.all([slowA, slowB]);
    assert.ok(ra.body.includes('slow') && ra.complete, 'the slow stream at A finished');
    assert.ok(rb.body.includes('slow') && rb.complete, 'the slow stream at B finished');
    await records.waitFor((x) => x.model === 'model-b');
    assert.equal(proxy.upstreams!.status().reduce((n, u) => n + u.inFlight, 0), 0, 'nothing in flight');

    const idle = await sendShared(6, 'idle');
    assert.deepEqual(counts(idle), { A: 2, B: 2, C: 2 }, `all idle: ties rotate: ${idle.join(',')}`);
  });
});

// ---------------------------------------------------------------------------------------------

describe('failover', () => {
  let proxy: RunningLlmtap;
  let records: RecordSink;
  let receiver: OtlpReceiver;
  let deadUrl: string;
  let E503: MockUpstream;
  let DROP: MockUpstream;
  let HANG: MockUpstream;
  let MID: MockUpstream;
  let GOOD: MockUpstream;
  const GOOD_PIECES = ['answered', ' by', ' GOOD'];
  const UPSTREAM_TIMEOUT_MS = 800;

  function resetFailoverMocks(): void {
    for (const m of [E503, DROP, HANG, MID, GOOD]) m.reset();
    E503.handle((req) => (isPost(req) ? { kind: 'raw', status: 503, headers: { 'content-type': 'application/json' }, body: '{"error":{"message":"E503 overloaded","type":"server_error"}}' } : defaultScript(req)));
    DROP.handle((req) => (isPost(req) ? { kind: 'drop' } : defaultScript(req)));
    HANG.handle((req) => (isPost(req) ? { kind: 'hang' } : defaultScript(req)));
    MID.handle((req) => (isPost(req) ? { kind: 'chat', pieces: ['partial', ' answer', ' that', ' never', ' ends'], gapMs: 20, fault: { kind: 'destroy', afterFrames: 3 } } : defaultScript(req)));
    GOOD.handle((req) => {
      if (!isPost(req)) return defaultScript(req);
      if ((req.json as { model?: string }).model === 'fo-both-503') return { kind: 'raw', status: 503, headers: { 'content-type': 'application/json', 'x-from': 'GOOD' }, body: '{"error":{"message":"GOOD is overloaded too","type":"server_error"}}' };
      return { kind: 'chat', pieces: GOOD_PIECES };
    });
  }

  before(async () => {
    const gone = await startMockUpstream({ name: 'DEAD' });
    deadUrl = gone.url;
    await gone.close();
    const start = (name: string) => startMockUpstream({ name });
    [E503, DROP, HANG, MID, GOOD] = await Promise.all([start('E503'), start('DROP'), start('HANG'), start('MID'), start('GOOD')]);
    resetFailoverMocks();
    receiver = await startOtlpReceiver();
    // round_robin: each model's first request goes to the first upstream listed for it, the failing one.
    const upstreams = [
      spec('DEAD', 'openai', deadUrl, ['fo-refused*']),
      spec('E503', 'openai', E503.url, ['fo-503', 'fo-both-503']),
      spec('DROP', 'openai', DROP.url, ['fo-drop']),
      spec('HANG', 'openai', HANG.url, ['fo-hang']),
      spec('MID', 'openai', MID.url, ['fo-mid']),
      spec('GOOD', 'openai', GOOD.url, ['fo-*']),
    ];
    const config = configOf({
      overrides: { ...QUIET, usage: true, usageFile: join(dir, 'usage.json'), usageFlushMs: 100, routingStrategy: 'round_robin', upstreamTimeoutMs: UPSTREAM_TIMEOUT_MS },
      upstreams,
    });
    proxy = await startLlmtap(config, {
      features: [createUsageFeature(), telemetryFeature],
      env: {
        OTEL_SERVICE_NAME: 'llmtap-routing-test',
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_METRICS_EXPORTER: 'none',
        OTEL_LOGS_EXPORTER: 'none',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '50',
      },
    });
    records = collectRecords(proxy.bus);
  });

  after(async () => {
    await proxy?.close();
    await Promise.all([E503, DROP, HANG, MID, GOOD].map((m) => m?.close()));
    await receiver?.close();
  });

  beforeEach(() => {
    resetFailoverMocks();
    records.clear();
  });

  async function usageRecord(id: string): Promise<UsageRecord> {
    for (let i = 0; i < 100; i++) {
      const res = await send(`${proxy.url}/v1/usage/recent?limit=50`);
      assert.equal(res.status, 200, res.body.toString('utf8').slice(0, 300));
      const found = (jsonOf(res) as { records: UsageRecord[] }).records.find((r) => r.id === id);
      if (found) return found;
      await sleep(30);
    }
    throw new Error(`exchange ${id} never showed in /v1/usage/recent`);
  }

  function failoverOf(r: ExchangeRecord): Array<{ upstream: string; outcome: string; status: number | null }> {
    assert.ok(r.failover, `the record lists the failed attempts (${JSON.stringify(r)})`);
    return r.failover.map((f) => ({ upstream: f.upstream, outcome: f.outcome, status: f.status }));
  }

  it('connection refused → the next upstream answers (openai client, streamed); record, usage store and span name both', async () => {
    const client = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: 'sk-client', maxRetries: 0 });
    let text = '';
    for await (const chunk of await client.chat.completions.create({ model: 'fo-refused', messages: [{ role: 'user', content: 'fo-1' }], stream: true })) {
      text += chunk.choices[0]?.delta?.content ?? '';
    }
    assert.equal(text, GOOD_PIECES.join(''), "the client got GOOD's answer");
    assert.equal(posts(GOOD).length, 1, 'GOOD was called once');

    const r = await records.waitFor((x) => x.model === 'fo-refused');
    assert.equal(r.outcome, 'ok');
    assert.equal(r.status, 200);
    assert.deepEqual(r.upstream, { name: 'GOOD', url: GOOD.url });
    const fo = failoverOf(r);
    assert.equal(fo.length, 1);
    assert.equal(fo[0]!.upstream, 'DEAD');
    assert.equal(fo[0]!.outcome, 'upstream_unreachable');
    assert.equal(fo[0]!.status, null);
    assert.equal(r.failover![0]!.url, deadUrl);

    const u = await usageRecord(r.id);
    assert.equal(u.upstream, 'GOOD');
    assert.equal(u.failoverFrom, 'DEAD');
    assert.equal(u.outcome, 'ok');

    assert.ok(r.traceId, 'the exchange was traced');
    const spans = await receiver.waitForSpans((all) => all.some((s) => s.traceId === r.traceId && s.kind === SPAN_KIND.SERVER), 8000);
    const server = spans.find((s) => s.traceId === r.traceId && s.kind === SPAN_KIND.SERVER)!;
    assert.deepEqual(server.attributes['llmtap.failover.from'], ['DEAD']);
    assert.equal(server.attributes['llmtap.upstream'], 'GOOD');
    const ev = server.events.filter((e) => e.name === 'llmtap.failover');
    assert.equal(ev.length, 1, 'one failover event per failed attempt');
    assert.equal(ev[0]!.attributes['llmtap.upstream'], 'DEAD');
    const clients = spans.filter((s) => s.traceId === r.traceId && s.kind === SPAN_KIND.CLIENT);
    assert.equal(clients.length, 1, 'one CLIENT span: the call that answered');
    assert.equal(clients[0]!.attributes['llmtap.upstream'], 'GOOD');
  });

  it('503 from the first → the next answers; the 503 never reaches the client', async () => {
    const res = await chat(proxy, 'fo-503', 'fo-2');
    ok(res, 'fo-503');
    assert.equal((jsonOf(res) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content, GOOD_PIECES.join(''));
    assert.equal(posts(E503).length, 1, 'E503 was tried first');
    assert.equal(posts(GOOD).length, 1);
    const r = await records.waitFor((x) => x.model === 'fo-503');
    assert.equal(r.upstream.name, 'GOOD');
    const fo = failoverOf(r);
    assert.equal(fo.length, 1);
    assert.equal(fo[0]!.upstream, 'E503');
    assert.equal(fo[0]!.status, 503);
    assert.equal((await usageRecord(r.id)).failoverFrom, 'E503');
  });

  it('closed without answering, or no head within LLMTAP_UPSTREAM_TIMEOUT_MS → the next answers', async () => {
    ok(await chat(proxy, 'fo-drop', 'fo-3'), 'fo-drop');
    assert.equal(posts(DROP).length, 1);
    const rd = await records.waitFor((x) => x.model === 'fo-drop');
    assert.equal(rd.upstream.name, 'GOOD');
    assert.equal(failoverOf(rd)[0]!.upstream, 'DROP');

    const t0 = performance.now();
    const res = await chat(proxy, 'fo-hang', 'fo-4', true);
    ok(res, 'fo-hang');
    assert.ok(res.body.includes('answered') && res.body.includes('data: [DONE]'), 'a whole stream from GOOD');
    assert.ok(performance.now() - t0 >= UPSTREAM_TIMEOUT_MS - 50, 'it waited for the head timeout first');
    const rh = await records.waitFor((x) => x.model === 'fo-hang');
    assert.equal(rh.upstream.name, 'GOOD');
    assert.deepEqual(failoverOf(rh).map((f) => [f.upstream, f.outcome]), [['HANG', 'upstream_timeout']]);
  });

  it('every candidate fails: the last one\'s answer is relayed as is', async () => {
    const res = await chat(proxy, 'fo-both-503', 'fo-5');
    assert.equal(res.status, 503);
    assert.equal(res.headers['x-from'], 'GOOD', "GOOD's own response");
    assert.match(res.body.toString('utf8'), /GOOD is overloaded too/);
    assert.equal(posts(E503).length + posts(GOOD).length, 2, 'each tried once');
    const r = await records.waitFor((x) => x.model === 'fo-both-503');
    assert.equal(r.upstream.name, 'GOOD');
    assert.equal(r.status, 503);
    assert.deepEqual(failoverOf(r).map((f) => f.upstream), ['E503']);
  });

  it('a failure after the first byte ends the client\'s stream, is recorded as upstream_aborted, and calls no other upstream', async () => {
    const res = await chat(proxy, 'fo-mid', 'fo-6', true);
    assert.equal(res.status, 200, 'the head had gone out');
    const body = res.body.toString('utf8');
    assert.ok(body.includes('partial'), `the client got the first frames: ${body.slice(0, 200)}`);
    assert.ok(!body.includes('data: [DONE]') && !body.includes('ends'), 'but not the rest');
    assert.equal(res.complete, false, 'the stream was cut, not ended cleanly');
    const r = await records.waitFor((x) => x.model === 'fo-mid');
    assert.equal(r.outcome, 'upstream_aborted');
    assert.equal(r.upstream.name, 'MID');
    assert.equal(r.failover, undefined, 'no failover after the first byte');
    await sleep(300);
    assert.equal(posts(GOOD).length, 0, 'GOOD received no request at all');
    assert.equal(posts(MID).length, 1);
    const u = await usageRecord(r.id);
    assert.equal(u.upstream, 'MID');
    assert.equal(u.failoverFrom, null);
  });
});
