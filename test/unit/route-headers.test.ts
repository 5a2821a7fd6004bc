// Routing (CONTRACT §2) and hop-by-hop header handling (RFC 9110 §7.6.1).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configWith } from '../../src/config.ts';
import { clientResponseHeaders, headerRecord, upstreamRequestHeaders } from '../../src/proxy/headers.ts';
import { createRouter } from '../../src/proxy/route.ts';

describe('routing table (CONTRACT §2)', () => {
  const route = createRouter(configWith({}));

  const table: [string, 'openai' | 'anthropic' | 'ollama', string][] = [
    ['/v1/chat/completions', 'openai', 'https://api.openai.com'],
    ['/v1/completions', 'openai', 'https://api.openai.com'],
    ['/v1/embeddings', 'openai', 'https://api.openai.com'],
    ['/v1/responses', 'openai', 'https://api.openai.com'],
    ['/v1/models', 'openai', 'https://api.openai.com'],
    ['/v1/models/gpt-4o', 'openai', 'https://api.openai.com'],
    ['/v1/audio/speech', 'openai', 'https://api.openai.com'],
    ['/v1/messages', 'anthropic', 'https://api.anthropic.com'],
    ['/v1/messages/count_tokens', 'anthropic', 'https://api.anthropic.com'],
    ['/api/chat', 'ollama', 'http://127.0.0.1:11434'],
    ['/api/generate', 'ollama', 'http://127.0.0.1:11434'],
    ['/api/embed', 'ollama', 'http://127.0.0.1:11434'],
    ['/api/embeddings', 'ollama', 'http://127.0.0.1:11434'],
    ['/api/tags', 'ollama', 'http://127.0.0.1:11434'],
    ['/api/ps', 'ollama', 'http://127.0.0.1:11434'],
    ['/api/show', 'ollama', 'http://127.0.0.1:11434'],
    ['/api/version', 'ollama', 'http://127.0.0.1:11434'],
  ];

  for (const [path, dialect, origin] of table) {
    it(`${path} → ${dialect} at ${origin}`, () => {
      const r = route(path);
      assert.ok(r, `${path} is forwarded`);
      assert.equal(r.dialect, dialect);
      assert.equal(r.upstream.origin, origin);
      assert.equal(r.upstream.name, dialect);
      assert.equal(r.path, path);
      assert.equal(r.upstreamPath, path);
    });
  }

  it('/v1/messagesX is not Anthropic (another /v1/* path: OpenAI)', () => {
    assert.equal(route('/v1/messagesX')?.dialect, 'openai');
  });

  it("llmtap's own /api and /v1 endpoints and other paths are not forwarded", () => {
    const own = ['/api/usage', '/api/token_counts', '/api/usage-stream', '/api/usage?since=1', '/v1/usage', '/v1/usage/stats', '/v1/usage/typo', '/v1/diagnostics', '/v1/diagnostics/activity?x=1'];
    for (const p of [...own, '/metrics', '/health', '/', '/v2/chat', '/v1', '/api']) {
      assert.equal(route(p), null, p);
    }
    for (const p of ['/v1/usages', '/v1/diagnosticsX', '/v1/models']) assert.equal(route(p)?.dialect, 'openai', `${p} is an OpenAI path`);
  });

  it('the query is kept for the upstream, and left out of the path the dialects see', () => {
    const r = route('/v1/chat/completions?api-version=2024-10-21&x=a%2Fb');
    assert.equal(r?.path, '/v1/chat/completions');
    assert.equal(r?.upstreamPath, '/v1/chat/completions?api-version=2024-10-21&x=a%2Fb');
    const m = route('/v1/messages?beta=true');
    assert.equal(m?.dialect, 'anthropic');
    assert.equal(m?.upstreamPath, '/v1/messages?beta=true');
    assert.equal(route('/api/tags?x=1')?.upstreamPath, '/api/tags?x=1');
  });

  it('base paths: a configured URL ending in /v1 (or /api) gets no second one; other prefixes are kept', () => {
    const r = createRouter(configWith({
      openaiUrl: 'http://vllm.local:8000/v1/',
      anthropicUrl: 'https://gateway.example.com/anthropic',
      ollamaUrl: 'http://gpu-box:11434/ollama/api',
    }));
    const a = r('/v1/chat/completions?stream=1');
    assert.equal(a?.upstream.origin, 'http://vllm.local:8000');
    assert.equal(a?.upstreamPath, '/v1/chat/completions?stream=1');
    assert.equal(r('/v1/messages')?.upstreamPath, '/anthropic/v1/messages');
    assert.equal(r('/v1/messages')?.upstream.origin, 'https://gateway.example.com');
    assert.equal(r('/api/chat')?.upstreamPath, '/ollama/api/chat');
    const p = createRouter(configWith({ openaiUrl: 'https://gw.example.com/openai' }));
    assert.equal(p('/v1/embeddings')?.upstreamPath, '/openai/v1/embeddings');
    const deep = createRouter(configWith({ openaiUrl: 'https://gw.example.com/tenant/v1' }));
    assert.equal(deep('/v1/models')?.upstreamPath, '/tenant/v1/models');
  });

  it('a base path that merely ends in the same letters is not mistaken for /v1', () => {
    const r = createRouter(configWith({ openaiUrl: 'https://gw.example.com/xv1' }));
    assert.equal(r('/v1/models')?.upstreamPath, '/xv1/v1/models');
  });
});

describe('hop-by-hop headers (RFC 9110 §7.6.1)', () => {
  it('request: hop-by-hop and Connection-named headers removed, the rest kept with duplicates in order', () => {
    const raw = [
      'Host', '127.0.0.1:7878',
      'Connection', 'keep-alive, X-Trace-Hop',
      'Connection', 'X-Other-Hop',
      'Keep-Alive', 'timeout=5',
      'Proxy-Connection', 'keep-alive',
      'TE', 'trailers',
      'Trailer', 'X-Checksum',
      'Transfer-Encoding', 'chunked',
      'Upgrade', 'h2c',
      'Proxy-Authorization', 'Basic abc',
      'x-trace-hop', '1',
      'X-Other-Hop', '2',
      'Authorization', 'Bearer sk-test',
      'Accept', 'text/event-stream',
      'X-Custom', 'a',
      'Content-Type', 'application/json',
      'x-custom', 'b',
      'Content-Length', '999',
      'Expect', '100-continue',
      'X-Custom', 'c',
      'OpenAI-Beta', 'assistants=v2',
    ];
    const out = upstreamRequestHeaders(raw, ['keep-alive, X-Trace-Hop', 'X-Other-Hop'], 42);
    assert.deepEqual(out, [
      'Authorization', 'Bearer sk-test',
      'Accept', 'text/event-stream',
      'X-Custom', 'a',
      'Content-Type', 'application/json',
      'x-custom', 'b',
      'X-Custom', 'c',
      'OpenAI-Beta', 'assistants=v2',
      'content-length', '42',
    ]);
  });

  it('request: a single Connection string also names headers; no body means no content-length', () => {
    const out = upstreamRequestHeaders(['Connection', 'close, X-Foo', 'x-foo', '1', 'X-Bar', '2', 'Content-Length', '0'], 'close, X-Foo', null);
    assert.deepEqual(out, ['X-Bar', '2']);
  });

  it('response: hop-by-hop and Connection-named headers removed; set-cookie values kept in order', () => {
    const out = clientResponseHeaders(
      {
        connection: 'keep-alive, x-upstream-hop',
        'keep-alive': 'timeout=5',
        'transfer-encoding': 'chunked',
        'x-upstream-hop': 'secret',
        'content-type': 'text/event-stream',
        'content-length': '12',
        'set-cookie': ['a=1', 'b=2', 'c=3'],
        'x-request-id': 'req_1',
        'openai-processing-ms': '42',
        upgrade: 'websocket',
        trailer: 'x-checksum',
        'proxy-authenticate': 'Basic',
      },
      { dropContentLength: false },
    );
    assert.deepEqual(out, {
      'content-type': 'text/event-stream',
      'content-length': '12',
      'set-cookie': ['a=1', 'b=2', 'c=3'],
      'x-request-id': 'req_1',
      'openai-processing-ms': '42',
    });
    const dropped = clientResponseHeaders({ 'content-length': '12', 'content-type': 'application/json' }, { dropContentLength: true });
    assert.deepEqual(dropped, { 'content-type': 'application/json' });
  });

  it('headerRecord: names lowercased, repeated headers become arrays in order', () => {
    assert.deepEqual(headerRecord(['X-A', '1', 'x-b', '2', 'x-a', '3', 'X-A', '4']), { 'x-a': ['1', '3', '4'], 'x-b': '2' });
  });
});
