// End to end: the official OpenAI, Anthropic and Ollama clients talk through llmtap to a mock upstream; checks what they get and what is recorded.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import { configWith } from '../../src/config.ts';
import { startLlmtap } from '../../src/start.ts';
import type { RunningLlmtap } from '../../src/start.ts';
import type { ExchangeRecord } from '../../src/exchange/record.ts';
import { startMockUpstream, DEFAULT_VECTOR } from '../helpers/mock-upstream.ts';
import type { MockUpstream, ChatScript } from '../helpers/mock-upstream.ts';
import { collectRecords } from '../helpers/records.ts';
import type { RecordSink } from '../helpers/records.ts';

// Programmed delays: head after HEAD_MS, first content HEAD_MS + FIRST_MS after the request. The record's ttfb and
// ttft must show them (within TOLERANCE_MS), which tells "first byte" apart from "first content".
const HEAD_MS = 100;
const FIRST_MS = 200;
const TOLERANCE_MS = 50;
const PIECES = ['The', ' quick', ' brown', ' fox', ' jumps', '.'];
const TEXT = PIECES.join('');

const OPENAI_KEY = 'sk-test-0123456789abcdef';
const ANTHROPIC_KEY = 'sk-ant-test-0123456789';
const OLLAMA_TOKEN = 'Bearer ollama-test-token';

let mock: MockUpstream;
let proxy: RunningLlmtap;
let records: RecordSink;

/** Header sets each SDK handed to fetch, in order: what the client really sent, whatever its version puts there. */
const sentHeaders: Headers[] = [];
const spyFetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
  const h = new Headers(input instanceof Request ? input.headers : undefined);
  new Headers(init?.headers).forEach((v, k) => h.set(k, v));
  sentHeaders.push(h);
  return fetch(input, init);
};

/** Every credential or API-version header the client sent reached the upstream with the same value. */
function assertCredentialsArrived(path: string): void {
  const sent = sentHeaders.at(-1);
  assert.ok(sent, 'the SDK sent a request');
  const got = mock.requests.find((r) => r.path === path);
  assert.ok(got, `the upstream received ${path}`);
  const names = ['authorization', 'x-api-key', 'api-key', 'anthropic-version', 'anthropic-beta', 'openai-organization', 'openai-project'].filter((n) => sent.has(n));
  assert.ok(names.includes('authorization') || names.includes('x-api-key'), `the SDK sent credentials (sent: ${[...sent.keys()].join(', ')})`);
  for (const n of names) assert.equal(got.headers[n], sent.get(n), `${n} reached the upstream unchanged`);
  // Everything else the SDK set itself (user agent, x-stainless-*, content-type) arrives unchanged too.
  sent.forEach((v, k) => {
    if (k === 'content-length' || k === 'connection') return;
    assert.equal(got.headers[k], v, `${k} reached the upstream unchanged`);
  });
}

function timed(script: Omit<ChatScript, 'kind'>): ChatScript {
  return { kind: 'chat', pieces: PIECES, headDelayMs: HEAD_MS, firstChunkDelayMs: FIRST_MS, gapMs: 10, ...script };
}

function near(actual: number | null, expected: number, what: string): void {
  assert.ok(actual !== null, `${what} is null, expected about ${expected} ms`);
  assert.ok(Math.abs(actual - expected) < TOLERANCE_MS, `${what} = ${actual} ms, expected ${expected} ± ${TOLERANCE_MS} ms`);
}

/** The fields every successful exchange shares. */
function assertOk(r: ExchangeRecord): void {
  assert.equal(r.status, 200);
  assert.equal(r.outcome, 'ok');
  assert.equal(r.errorType, null);
  assert.ok(r.timings.duration > 0, 'duration is measured');
}

function assertStreamTimings(r: ExchangeRecord): void {
  near(r.timings.ttfb, HEAD_MS, 'ttfb');
  near(r.timings.ttft, HEAD_MS + FIRST_MS, 'ttft');
  assert.ok(r.timings.duration >= r.timings.ttft!, 'duration covers the whole stream');
  // §2: time per output token = (duration - ttft) / (output tokens - 1)
  const out = r.usage.output!;
  assert.ok(r.timings.timePerOutputToken !== null, 'timePerOutputToken is set for a stream with several tokens');
  const expected = (r.timings.duration - r.timings.ttft!) / (out - 1);
  assert.ok(Math.abs(r.timings.timePerOutputToken - expected) < 0.01, `timePerOutputToken ${r.timings.timePerOutputToken} vs (duration - ttft)/(output - 1) = ${expected}`);
}

before(async () => {
  mock = await startMockUpstream();
  proxy = await startLlmtap(configWith({ port: 0, openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: mock.url, logLevel: 'silent' }));
  records = collectRecords(proxy.bus);
});

after(async () => {
  await proxy?.close();
  await mock?.close();
});

beforeEach(() => {
  mock.reset();
  records.clear();
  sentHeaders.length = 0;
});

describe('openai SDK through llmtap', () => {
  const client = (): OpenAI => new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: OPENAI_KEY, maxRetries: 0, fetch: spyFetch });

  it('streams a chat completion: same text, reported usage, timings', async () => {
    mock.handle(timed({ model: 'gpt-4o-mini-2024-07-18', id: 'chatcmpl-clients-1', usage: { input: 23, output: 7 }, finishReason: 'stop' }));
    const stream = await client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say something' }], stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      // The client did not ask for usage, so its chunks must look as if llmtap were not there: no usage key.
      assert.ok(!('usage' in chunk), `chunk carries a usage key the client did not ask for: ${JSON.stringify(chunk)}`);
    }
    assert.equal(text, TEXT);
    assert.equal(finish, 'stop');

    const got = await mock.waitForRequest((r) => r.path === '/v1/chat/completions');
    assert.equal(got.headers.authorization, `Bearer ${OPENAI_KEY}`);
    assertCredentialsArrived('/v1/chat/completions');

    const r = await records.waitFor((x) => x.url === '/v1/chat/completions');
    assertOk(r);
    assert.equal(r.dialect, 'openai');
    assert.equal(r.operation, 'chat');
    assert.equal(r.method, 'POST');
    assert.equal(r.stream, true);
    assert.equal(r.model, 'gpt-4o-mini');
    assert.equal(r.responseModel, 'gpt-4o-mini-2024-07-18');
    assert.equal(r.responseId, 'chatcmpl-clients-1');
    assert.deepEqual(r.finishReasons, ['stop']);
    assert.equal(r.usage.input, 23);
    assert.equal(r.usage.output, 7);
    assert.equal(r.usage.total, 30);
    assert.equal(r.usage.source, 'reported');
    assert.equal(r.usageInjected, true);
    assert.equal(r.streamComplete, true);
    assertStreamTimings(r);
  });

  it('answers a chat completion without streaming', async () => {
    mock.handle(timed({ model: 'gpt-4o-mini-2024-07-18', usage: { input: 15, output: 6, cached: 4, reasoning: 2 }, finishReason: 'length' }));
    const res = await client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 0.2 });
    assert.equal(res.choices[0]?.message.content, TEXT);
    assert.equal(res.usage?.total_tokens, 21);

    const r = await records.waitFor((x) => x.url === '/v1/chat/completions');
    assertOk(r);
    assert.equal(r.stream, false);
    assert.equal(r.operation, 'chat');
    assert.equal(r.model, 'gpt-4o-mini');
    assert.equal(r.responseModel, 'gpt-4o-mini-2024-07-18');
    assert.deepEqual(r.finishReasons, ['length']);
    assert.deepEqual([r.usage.input, r.usage.output, r.usage.cacheRead, r.usage.reasoning, r.usage.source], [15, 6, 4, 2, 'reported']);
    assert.equal(r.params.maxTokens, 6);
    assert.equal(r.params.temperature, 0.2);
    assert.equal(r.usageInjected, false);
    near(r.timings.ttfb, HEAD_MS, 'ttfb');
    // §2: ttft is a streams-only timing
    assert.equal(r.timings.ttft, null);
  });

  it('creates embeddings (the SDK asks for base64 and decodes it)', async () => {
    mock.handle({ kind: 'embeddings', model: 'text-embedding-3-small', inputTokens: 9 });
    const res = await client().embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'] });
    assert.equal(res.data.length, 2);
    for (const d of res.data) assert.deepEqual(Array.from(d.embedding), DEFAULT_VECTOR);
    assert.equal(res.usage.prompt_tokens, 9);

    const r = await records.waitFor((x) => x.url === '/v1/embeddings');
    assertOk(r);
    assert.equal(r.dialect, 'openai');
    assert.equal(r.operation, 'embeddings');
    assert.equal(r.model, 'text-embedding-3-small');
    assert.equal(r.responseModel, 'text-embedding-3-small');
    assert.equal(r.stream, false);
    assert.equal(r.usage.input, 9);
    assert.equal(r.usage.source, 'reported');
  });
});

describe('anthropic SDK through llmtap', () => {
  const client = (): Anthropic => new Anthropic({ baseURL: proxy.url, apiKey: ANTHROPIC_KEY, maxRetries: 0, fetch: spyFetch });

  it('streams a message: same text, reported usage, timings, credentials unchanged', async () => {
    mock.handle(timed({ model: 'claude-test-model-20260101', id: 'msg_clients_1', usage: { input: 31, output: 9 }, finishReason: 'end_turn' }));
    const stream = await client().messages.create({ model: 'claude-test-model', max_tokens: 64, messages: [{ role: 'user', content: 'Say something' }], stream: true });
    let text = '';
    let stop: string | null = null;
    for await (const ev of stream) {
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
      if (ev.type === 'message_delta') stop = ev.delta.stop_reason;
    }
    assert.equal(text, TEXT);
    assert.equal(stop, 'end_turn');

    // Which header carries the key (x-api-key or a bearer token) and the API version are the SDK's choice; they must arrive as sent.
    const got = await mock.waitForRequest((r) => r.path === '/v1/messages');
    assert.ok(got.headers['x-api-key'] === ANTHROPIC_KEY || got.headers.authorization === `Bearer ${ANTHROPIC_KEY}`, 'the API key reached the upstream');
    assert.ok(got.headers['anthropic-version'], 'anthropic-version reached the upstream');
    assertCredentialsArrived('/v1/messages');

    const r = await records.waitFor((x) => x.url === '/v1/messages');
    assertOk(r);
    assert.equal(r.dialect, 'anthropic');
    assert.equal(r.operation, 'chat');
    assert.equal(r.stream, true);
    assert.equal(r.model, 'claude-test-model');
    assert.equal(r.responseModel, 'claude-test-model-20260101');
    assert.equal(r.responseId, 'msg_clients_1');
    assert.deepEqual(r.finishReasons, ['end_turn']);
    assert.deepEqual([r.usage.input, r.usage.output, r.usage.source], [31, 9, 'reported']);
    assert.equal(r.params.maxTokens, 64);
    assert.equal(r.usageInjected, false);
    assert.equal(r.streamComplete, true);
    assertStreamTimings(r);
  });

  it('streams with the messages.stream() helper', async () => {
    mock.handle(timed({ model: 'claude-test-model-20260101', usage: { input: 5, output: 6 } }));
    const final = await client().messages.stream({ model: 'claude-test-model', max_tokens: 64, messages: [{ role: 'user', content: 'Hi' }] }).finalMessage();
    const block = final.content[0];
    assert.equal(block?.type === 'text' ? block.text : null, TEXT);
    const r = await records.waitFor((x) => x.url === '/v1/messages');
    assertOk(r);
    assert.deepEqual([r.usage.input, r.usage.output, r.usage.source], [5, 6, 'reported']);
  });

  it('answers a message without streaming', async () => {
    mock.handle(timed({ model: 'claude-test-model-20260101', id: 'msg_clients_2', usage: { input: 12, output: 29 }, finishReason: 'max_tokens' }));
    const res = await client().messages.create({ model: 'claude-test-model', max_tokens: 29, messages: [{ role: 'user', content: 'Hi' }] });
    const block = res.content[0];
    assert.equal(block?.type === 'text' ? block.text : null, TEXT);
    assert.equal(res.usage.output_tokens, 29);

    const r = await records.waitFor((x) => x.url === '/v1/messages');
    assertOk(r);
    assert.equal(r.dialect, 'anthropic');
    assert.equal(r.operation, 'chat');
    assert.equal(r.stream, false);
    assert.equal(r.model, 'claude-test-model');
    assert.equal(r.responseModel, 'claude-test-model-20260101');
    assert.equal(r.responseId, 'msg_clients_2');
    assert.deepEqual(r.finishReasons, ['max_tokens']);
    assert.deepEqual([r.usage.input, r.usage.output, r.usage.source], [12, 29, 'reported']);
    near(r.timings.ttfb, HEAD_MS, 'ttfb');
    assert.equal(r.timings.ttft, null);
  });
});

describe('ollama client through llmtap', () => {
  const client = (): Ollama => new Ollama({ host: proxy.url, headers: { Authorization: OLLAMA_TOKEN }, fetch: spyFetch });

  it('streams a chat: same text, reported usage, timings, auth header unchanged', async () => {
    mock.handle(timed({ model: 'llama3.2:3b', usage: { input: 26, output: 6 }, finishReason: 'stop' }));
    const stream = await client().chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'Say something' }], stream: true });
    let text = '';
    let done = false;
    for await (const part of stream) {
      text += part.message.content;
      done ||= part.done;
    }
    assert.equal(text, TEXT);
    assert.ok(done, 'the last part says done');

    const got = await mock.waitForRequest((r) => r.path === '/api/chat');
    assert.equal(got.headers.authorization, OLLAMA_TOKEN);
    assertCredentialsArrived('/api/chat');

    const r = await records.waitFor((x) => x.url === '/api/chat');
    assertOk(r);
    assert.equal(r.dialect, 'ollama');
    assert.equal(r.operation, 'chat');
    assert.equal(r.stream, true);
    assert.equal(r.model, 'llama3.2');
    assert.equal(r.responseModel, 'llama3.2:3b');
    assert.deepEqual(r.finishReasons, ['stop']);
    assert.deepEqual([r.usage.input, r.usage.output, r.usage.source], [26, 6, 'reported']);
    assert.equal(r.streamComplete, true);
    assertStreamTimings(r);
  });

  it('answers a chat without streaming', async () => {
    mock.handle(timed({ usage: { input: 26, output: 298 } }));
    const res = await client().chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'Hi' }], stream: false });
    assert.equal(res.message.content, TEXT);
    const r = await records.waitFor((x) => x.url === '/api/chat');
    assertOk(r);
    assert.equal(r.stream, false);
    assert.equal(r.model, 'llama3.2');
    assert.deepEqual([r.usage.input, r.usage.output, r.usage.source], [26, 298, 'reported']);
    assert.equal(r.timings.ttft, null);
  });

  it('streams a generate call (text completion)', async () => {
    mock.handle(timed({ usage: { input: 31, output: 37 } }));
    const stream = await client().generate({ model: 'dolphin3:8b', prompt: 'Describe a dolphin', stream: true });
    let text = '';
    for await (const part of stream) text += part.response;
    assert.equal(text, TEXT);
    const r = await records.waitFor((x) => x.url === '/api/generate');
    assertOk(r);
    assert.equal(r.dialect, 'ollama');
    assert.equal(r.operation, 'text_completion');
    assert.equal(r.stream, true);
    assert.equal(r.model, 'dolphin3:8b');
    assert.deepEqual([r.usage.input, r.usage.output, r.usage.source], [31, 37, 'reported']);
    assertStreamTimings(r);
  });
});
