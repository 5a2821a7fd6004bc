// End to end: what llmtap forwards (method, path, query, body, end-to-end headers) and drops (hop-by-hop), and which upstream each path goes to.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { configWith } from '../../src/config.ts';
import { startLlmtap } from '../../src/start.ts';
import type { RunningLlmtap } from '../../src/start.ts';
import type { DialectName } from '../../src/exchange/record.ts';
import { startMockUpstream, fixtureBytes } from '../helpers/mock-upstream.ts';
import type { MockUpstream, ReceivedRequest } from '../helpers/mock-upstream.ts';
import { collectRecords } from '../helpers/records.ts';
import type { RecordSink } from '../helpers/records.ts';
import { send } from '../helpers/http-client.ts';

let openai: MockUpstream;
let anthropic: MockUpstream;
let ollama: MockUpstream;
let proxy: RunningLlmtap;
let records: RecordSink;

before(async () => {
  [openai, anthropic, ollama] = await Promise.all([startMockUpstream({ name: 'openai' }), startMockUpstream({ name: 'anthropic' }), startMockUpstream({ name: 'ollama' })]);
  proxy = await startLlmtap(configWith({ port: 0, openaiUrl: openai.url, anthropicUrl: anthropic.url, ollamaUrl: ollama.url, logLevel: 'silent' }));
  records = collectRecords(proxy.bus);
});

after(async () => {
  await proxy?.close();
  await Promise.all([openai?.close(), anthropic?.close(), ollama?.close()]);
});

beforeEach(() => {
  for (const m of [openai, anthropic, ollama]) m.reset();
  records.clear();
});

/** The one request a mock received in this test. */
function only(m: MockUpstream): ReceivedRequest {
  assert.equal(m.requests.length, 1, `${m.name} received ${m.requests.length} requests: ${m.requests.map((r) => r.url).join(', ')}`);
  return m.requests[0]!;
}

/** Header values as the mock saw them, by lower-case name (repeated headers joined as Node joins them). */
function header(r: ReceivedRequest, name: string): string | undefined {
  const v = r.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

describe('a request arrives at the upstream unchanged', () => {
  it('method, path, query, body bytes and end-to-end headers', async () => {
    // Odd spacing, key order and non-ASCII text: a proxy that re-serializes the JSON would change these bytes.
    const body = '{ "model" :"gpt-4o-mini",\n  "messages":[{"role":"user","content":"h\u00e9llo \u2603 \\u00e9"}],  "temperature":0.70, "stream":false }';
    const headers: Record<string, string | string[]> = {
      'content-type': 'application/json',
      authorization: 'Bearer sk-proj-abcdefghijklmnop',
      'openai-organization': 'org-test',
      'openai-project': 'proj_test',
      'x-custom-header': 'custom value, with comma',
      'x-stainless-lang': 'js',
      'user-agent': 'OpenAI/JS 6.49.0',
      accept: 'application/json',
      'x-multi': ['one', 'two'],
    };
    const res = await send(`${proxy.url}/v1/chat/completions?api-version=2024-02-01&x=a%20b&flag`, { method: 'POST', headers, body });
    assert.equal(res.status, 200);
    const got = only(openai);
    assert.equal(got.method, 'POST');
    assert.equal(got.url, '/v1/chat/completions?api-version=2024-02-01&x=a%20b&flag');
    assert.ok(got.body.equals(Buffer.from(body)), `body bytes unchanged: ${got.body.toString('utf8')}`);
    for (const [k, v] of Object.entries(headers)) {
      if (k === 'x-multi') continue;
      assert.equal(header(got, k), v, `header ${k}`);
    }
    // A repeated header may arrive as two lines or folded into one; either way both values, in order.
    assert.equal(header(got, 'x-multi'), 'one, two');
    assert.equal(header(got, 'content-length'), String(Buffer.byteLength(body)));
  });

  it('a 5 MB request body arrives byte for byte and is counted', async () => {
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'z\u00e9'.repeat(5 * 512 * 1024) }] });
    const res = await send(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(res.status, 200);
    const got = only(openai);
    assert.ok(got.body.equals(Buffer.from(body)), `body bytes unchanged (${got.body.length} of ${Buffer.byteLength(body)} bytes)`);
    const r = await records.waitFor((x) => x.url === '/v1/chat/completions');
    assert.equal(r.bytes.requestIn, Buffer.byteLength(body));
    assert.equal(r.bytes.requestOut, Buffer.byteLength(body));
    assert.equal(r.model, 'gpt-4o-mini');
  });

  it('anthropic credentials and version headers', async () => {
    const body = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'Hi' }] });
    const headers = {
      'content-type': 'application/json',
      'x-api-key': 'sk-ant-api03-abcdefghijklmnop',
      'anthropic-version': '2023-06-01',
      'anthropic-beta': 'prompt-caching-2024-07-31,output-128k-2025-02-19',
      'anthropic-dangerous-direct-browser-access': 'true',
    };
    const res = await send(`${proxy.url}/v1/messages`, { method: 'POST', headers, body });
    assert.equal(res.status, 200);
    const got = only(anthropic);
    assert.ok(got.body.equals(Buffer.from(body)));
    for (const [k, v] of Object.entries(headers)) assert.equal(header(got, k), v, `header ${k}`);
  });

  it('hop-by-hop headers, and headers named in Connection, are not forwarded', async () => {
    const body = JSON.stringify({ model: 'llama3.2', messages: [], stream: false });
    const res = await send(`${proxy.url}/api/chat`, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        connection: 'keep-alive, x-hop-secret, X-Other-Hop',
        'keep-alive': 'timeout=99, max=7',
        te: 'trailers, deflate',
        trailer: 'x-checksum',
        // No "upgrade" in Connection: Node would otherwise treat the request as a protocol switch.
        upgrade: 'h2c',
        'proxy-authorization': 'Basic cHJveHk6c2VjcmV0',
        'x-hop-secret': 'must not pass',
        'x-other-hop': 'must not pass either',
        'x-end-to-end': 'must pass',
      },
    });
    assert.equal(res.status, 200);
    const got = only(ollama);
    for (const h of ['keep-alive', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'x-hop-secret', 'x-other-hop']) {
      assert.equal(header(got, h), undefined, `${h} must not reach the upstream (got ${header(got, h)})`);
    }
    // llmtap's own client may send its own Connection header, but never the client's list.
    assert.doesNotMatch(header(got, 'connection') ?? '', /x-hop-secret|x-other-hop/i);
    assert.equal(header(got, 'x-end-to-end'), 'must pass');
    assert.ok(got.body.equals(Buffer.from(body)));
  });

  it('GET /v1/models and GET /api/tags pass through with their query', async () => {
    const models = await send(`${proxy.url}/v1/models?limit=2`, { headers: { authorization: 'Bearer sk-list' } });
    assert.equal(models.status, 200);
    const gotModels = only(openai);
    assert.equal(gotModels.method, 'GET');
    assert.equal(gotModels.url, '/v1/models?limit=2');
    assert.equal(header(gotModels, 'authorization'), 'Bearer sk-list');
    assert.equal(gotModels.body.length, 0);
    assert.deepEqual((JSON.parse(models.body.toString('utf8')) as { data: { id: string }[] }).data.map((m) => m.id), ['gpt-4o-mini', 'text-embedding-3-small']);

    const tags = await send(`${proxy.url}/api/tags`);
    assert.equal(tags.status, 200);
    assert.equal(only(ollama).method, 'GET');
    assert.ok(tags.body.equals(fixtureBytes('ollama/tags.json')), 'the tags list byte for byte');

    const r = await records.waitFor((x) => x.url === '/api/tags');
    assert.equal(r.method, 'GET');
    assert.equal(r.dialect, 'ollama');
    assert.equal(r.operation, null);
    assert.equal(r.outcome, 'ok');
  });

  it('other methods pass through (DELETE, HEAD)', async () => {
    const del = await send(`${proxy.url}/v1/files/file-abc123`, { method: 'DELETE', headers: { authorization: 'Bearer sk-del' } });
    assert.equal(del.status, 200);
    const got = only(openai);
    assert.equal(got.method, 'DELETE');
    assert.equal(got.url, '/v1/files/file-abc123');
    const head = await send(`${proxy.url}/api/version`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(ollama.requests[0]?.method, 'HEAD');
  });
});

describe('a response reaches the client unchanged', () => {
  it('status, end-to-end headers and body bytes; hop-by-hop response headers are dropped', async () => {
    const body = fixtureBytes('openai/chat_nonstream.json');
    openai.handle({
      kind: 'raw',
      status: 200,
      headers: {
        'content-type': 'application/json',
        'x-request-id': 'req_abc123',
        'openai-processing-ms': '517',
        'x-ratelimit-remaining-requests': '9999',
        'set-cookie': ['__cf_bm=abc; path=/; HttpOnly', '_cfuvid=def; path=/'],
        connection: 'keep-alive, x-resp-hop',
        'x-resp-hop': 'must not pass',
        'keep-alive': 'timeout=77, max=3',
      },
      body,
    });
    const res = await send(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"gpt-4.1-nano","messages":[]}' });
    assert.equal(res.status, 200);
    assert.ok(res.body.equals(body), 'body byte for byte (pretty-printed JSON stays pretty-printed)');
    assert.equal(res.headers['content-type'], 'application/json');
    assert.equal(res.headers['x-request-id'], 'req_abc123');
    assert.equal(res.headers['openai-processing-ms'], '517');
    assert.equal(res.headers['x-ratelimit-remaining-requests'], '9999');
    assert.deepEqual(res.headers['set-cookie'], ['__cf_bm=abc; path=/; HttpOnly', '_cfuvid=def; path=/']);
    assert.equal(res.headers['x-resp-hop'], undefined, 'a header the upstream named in Connection is not relayed');
    assert.notEqual(res.headers['keep-alive'], 'timeout=77, max=3', "the upstream's keep-alive is its own, not the client's");
    const r = await records.waitFor((x) => x.url === '/v1/chat/completions');
    assert.deepEqual([r.model, r.responseModel, r.usage.input, r.usage.output], ['gpt-4.1-nano', 'gpt-4.1-nano-2025-04-14', 16, 363]);
  });

  it('a gzip-encoded body is relayed still encoded, with its content-encoding', async () => {
    const plain = fixtureBytes('anthropic/messages_nonstream.json');
    const gz = gzipSync(plain);
    anthropic.handle({ kind: 'raw', status: 200, headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gz });
    const res = await send(`${proxy.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip' }, body: '{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[]}' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-encoding'], 'gzip');
    assert.ok(res.body.equals(gz), 'the compressed bytes are what the upstream sent');
  });

  for (const [file, path, dialect] of [
    ['openai/chat_stream_no_usage.sse', '/v1/chat/completions', 'openai'],
    ['openai/responses_stream.sse', '/v1/responses', 'openai'],
    ['anthropic/messages_stream_tool_use.sse', '/v1/messages', 'anthropic'],
    ['ollama/generate_stream.ndjson', '/api/generate', 'ollama'],
    ['ollama/chat_stream_tool_call.ndjson', '/api/chat', 'ollama'],
  ] as const) {
    it(`a real stream is relayed byte for byte: ${file}`, async () => {
      const mock = { openai, anthropic, ollama }[dialect];
      mock.handle({ kind: 'fixture', file, gapMs: 3 });
      const res = await send(`${proxy.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', stream: true, messages: [] }) });
      assert.equal(res.status, 200);
      assert.ok(res.complete);
      const expected = fixtureBytes(file);
      assert.equal(res.body.toString('utf8'), expected.toString('utf8'));
      assert.ok(res.body.equals(expected));
      const r = await records.waitFor((x) => x.url === path);
      assert.equal(r.dialect, dialect);
      assert.equal(r.outcome, 'ok');
    });
  }
});

describe('routing: each path family goes to its own upstream', () => {
  const routes: { method: 'GET' | 'POST'; path: string; dialect: DialectName }[] = [
    { method: 'POST', path: '/v1/chat/completions', dialect: 'openai' },
    { method: 'POST', path: '/v1/completions', dialect: 'openai' },
    { method: 'POST', path: '/v1/embeddings', dialect: 'openai' },
    { method: 'POST', path: '/v1/responses', dialect: 'openai' },
    { method: 'GET', path: '/v1/models', dialect: 'openai' },
    { method: 'GET', path: '/v1/models/gpt-4o-mini', dialect: 'openai' },
    { method: 'POST', path: '/v1/messages', dialect: 'anthropic' },
    { method: 'POST', path: '/v1/messages/count_tokens', dialect: 'anthropic' },
    { method: 'POST', path: '/api/chat', dialect: 'ollama' },
    { method: 'POST', path: '/api/generate', dialect: 'ollama' },
    { method: 'POST', path: '/api/embed', dialect: 'ollama' },
    { method: 'POST', path: '/api/embeddings', dialect: 'ollama' },
    { method: 'GET', path: '/api/tags', dialect: 'ollama' },
    { method: 'GET', path: '/api/ps', dialect: 'ollama' },
    { method: 'POST', path: '/api/show', dialect: 'ollama' },
    { method: 'GET', path: '/api/version', dialect: 'ollama' },
  ];
  for (const { method, path, dialect } of routes) {
    it(`${method} ${path} → ${dialect}`, async () => {
      const body = method === 'POST' ? JSON.stringify({ model: 'm', input: 'x', messages: [{ role: 'user', content: 'x' }], stream: false }) : undefined;
      const res = await send(`${proxy.url}${path}`, { method, headers: body ? { 'content-type': 'application/json' } : {}, body });
      assert.equal(res.status, 200, res.body.toString('utf8').slice(0, 200));
      const mocks = { openai, anthropic, ollama };
      for (const [name, m] of Object.entries(mocks)) {
        const expected = name === dialect ? 1 : 0;
        assert.equal(m.requests.length, expected, `${name} upstream received ${m.requests.length} requests`);
      }
      assert.equal(mocks[dialect].requests[0]?.url, path);
      const r = await records.waitFor((x) => x.url === path);
      assert.equal(r.dialect, dialect);
      assert.ok(r.upstream.url.startsWith(mocks[dialect].url), `record names the upstream ${mocks[dialect].url}, got ${r.upstream.url}`);
    });
  }
});
