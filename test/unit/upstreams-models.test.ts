// Which models an upstream serves (src/upstreams/models.ts): model lists of each dialect, globs, Ollama's implicit ':latest'; and the model a request names (request-model.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MODELS_PATH, modelMatcher, modelNamesIn } from '../../src/upstreams/models.ts';
import { jsonError, modelOf, needsModel } from '../../src/upstreams/request-model.ts';

describe('model lists', () => {
  it('each dialect is asked where it lists its models', () => {
    assert.deepEqual({ ...MODELS_PATH }, { openai: '/v1/models', anthropic: '/v1/models', ollama: '/api/tags' });
  });

  it('OpenAI and Anthropic: data[].id', () => {
    const body = { object: 'list', data: [{ id: 'gpt-4o-mini', object: 'model' }, { id: 'text-embedding-3-small' }] };
    assert.deepEqual(modelNamesIn('openai', body), ['gpt-4o-mini', 'text-embedding-3-small']);
    const anthropic = { data: [{ type: 'model', id: 'claude-sonnet-4-5', display_name: 'Claude Sonnet 4.5' }], has_more: false };
    assert.deepEqual(modelNamesIn('anthropic', anthropic), ['claude-sonnet-4-5']);
  });

  it('Ollama: models[].name, else models[].model', () => {
    const tags = { models: [{ name: 'llama3.2:latest', model: 'llama3.2:latest' }, { model: 'qwen2.5:7b' }] };
    assert.deepEqual(modelNamesIn('ollama', tags), ['llama3.2:latest', 'qwen2.5:7b']);
  });

  it('entries without a usable name are skipped; a body that is not a list answer is null', () => {
    assert.deepEqual(modelNamesIn('openai', { data: [{ id: 'ok' }, { id: '' }, { id: 7 }, null, 'x', {}] }), ['ok']);
    assert.deepEqual(modelNamesIn('openai', { data: [] }), []);
    assert.equal(modelNamesIn('openai', { models: [{ name: 'x' }] }), null, 'an Ollama list is not an OpenAI one');
    assert.equal(modelNamesIn('ollama', { data: [{ id: 'x' }] }), null, 'an OpenAI list is not an Ollama one');
    assert.equal(modelNamesIn('openai', null), null);
    assert.equal(modelNamesIn('openai', 'gpt-4o'), null);
    assert.equal(modelNamesIn('openai', { data: 'gpt-4o' }), null);
  });
});

describe('model matching', () => {
  it('exact names match only themselves', () => {
    const m = modelMatcher(['gpt-4o', 'gpt-4o-mini'], 'openai');
    assert.ok(m.matches('gpt-4o'));
    assert.ok(m.matches('gpt-4o-mini'));
    assert.ok(!m.matches('gpt-4'));
    assert.ok(!m.matches('gpt-4o-2024'));
    assert.ok(!m.matches('GPT-4o'), 'case matters, as it does to the servers');
    assert.deepEqual(m.names, ['gpt-4o', 'gpt-4o-mini'], 'names as configured, for the 404 and /health');
  });

  it('globs: * stands for any run of characters, anchored at both ends', () => {
    const m = modelMatcher(['gpt-4o*', 'claude-*-4-5', '*-embed'], 'openai');
    assert.ok(m.matches('gpt-4o'));
    assert.ok(m.matches('gpt-4o-mini-2024-07-18'));
    assert.ok(!m.matches('my-gpt-4o'), 'anchored at the start');
    assert.ok(m.matches('claude-sonnet-4-5'));
    assert.ok(m.matches('claude-opus-4-5'));
    assert.ok(!m.matches('claude-sonnet-4-5-extra'), 'anchored at the end');
    assert.ok(m.matches('nomic-embed'));
    assert.ok(!m.matches('nomic-embed-text'));
  });

  it('other regular-expression characters in a name are literal', () => {
    const m = modelMatcher(['qwen2.5*', 'a+b', 'x(1)', 'r[0]?'], 'openai');
    assert.ok(m.matches('qwen2.5:7b'));
    assert.ok(!m.matches('qwen2x5:7b'), 'the dot is a dot');
    assert.ok(m.matches('a+b'));
    assert.ok(!m.matches('aab'));
    assert.ok(m.matches('x(1)'));
    assert.ok(!m.matches('x1'));
    assert.ok(m.matches('r[0]?'));
    assert.ok(!m.matches('r0'));
  });

  it('a lone * serves every model', () => {
    const m = modelMatcher(['*'], 'anthropic');
    assert.ok(m.matches('claude-anything'));
    assert.ok(m.matches(''));
  });

  it("Ollama: 'llama3' and 'llama3:latest' are the same model, both ways; other tags are not", () => {
    const bare = modelMatcher(['llama3'], 'ollama');
    assert.ok(bare.matches('llama3'));
    assert.ok(bare.matches('llama3:latest'));
    assert.ok(!bare.matches('llama3:8b'));
    assert.ok(!bare.matches('llama3.2'));
    const tagged = modelMatcher(['llama3.2:latest', 'qwen2.5:7b'], 'ollama');
    assert.ok(tagged.matches('llama3.2'), 'a discovered ":latest" name serves the bare name clients send');
    assert.ok(tagged.matches('llama3.2:latest'));
    assert.ok(tagged.matches('qwen2.5:7b'));
    assert.ok(!tagged.matches('qwen2.5'), 'only :latest is implicit');
    assert.ok(!tagged.matches('qwen2.5:latest'));
  });

  it("other dialects have no implicit ':latest'", () => {
    const m = modelMatcher(['llama3'], 'openai');
    assert.ok(m.matches('llama3'));
    assert.ok(!m.matches('llama3:latest'));
    assert.ok(!modelMatcher(['llama3:latest'], 'openai').matches('llama3'));
  });
});

describe('the model a request names', () => {
  it('paths that need a model to be routed', () => {
    for (const p of ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses']) assert.ok(needsModel('openai', 'POST', p), p);
    for (const p of ['/v1/messages', '/v1/messages/count_tokens']) assert.ok(needsModel('anthropic', 'POST', p), p);
    for (const p of ['/api/chat', '/api/generate', '/api/embed', '/api/embeddings', '/api/show']) assert.ok(needsModel('ollama', 'POST', p), p);
    assert.ok(!needsModel('openai', 'GET', '/v1/models'));
    assert.ok(!needsModel('openai', 'GET', '/v1/chat/completions'), 'only POST carries a body to route by');
    assert.ok(!needsModel('ollama', 'GET', '/api/tags'));
    assert.ok(!needsModel('ollama', 'GET', '/api/version'));
  });

  it('body.model; Ollama also body.name; nothing usable is null', () => {
    assert.equal(modelOf('openai', { model: 'gpt-4o' }), 'gpt-4o');
    assert.equal(modelOf('ollama', { name: 'llama3' }), 'llama3');
    assert.equal(modelOf('ollama', { model: 'a', name: 'b' }), 'a');
    assert.equal(modelOf('openai', { name: 'gpt-4o' }), null, 'name counts for Ollama only');
    assert.equal(modelOf('openai', { model: '' }), null);
    assert.equal(modelOf('openai', { model: 4 }), null);
    assert.equal(modelOf('openai', [{ model: 'x' }]), null);
    assert.equal(modelOf('openai', undefined), null);
  });

  it("a body that does not parse is described in JSON.parse's own words", () => {
    let expected = '';
    try {
      JSON.parse('{"model": "gpt-4o",');
    } catch (err) {
      expected = (err as Error).message;
    }
    assert.equal(jsonError(Buffer.from('{"model": "gpt-4o",')), expected);
    assert.equal(jsonError(null), 'the request has no body');
    assert.equal(jsonError(Buffer.alloc(0)), 'the request has no body');
    assert.match(jsonError(Buffer.from('[1,2]')), /not an object/);
  });
});
