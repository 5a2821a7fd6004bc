// End to end: llmtap asks OpenAI streams for usage when the client did not, and the client's bytes stay exactly what they would have been.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { configWith } from '../../src/config.ts';
import { startLlmtap } from '../../src/start.ts';
import type { RunningLlmtap } from '../../src/start.ts';
import { startMockUpstream, fixtureFrames, fixtureBytes } from '../helpers/mock-upstream.ts';
import type { MockUpstream, ChatScript, ReceivedRequest } from '../helpers/mock-upstream.ts';
import { collectRecords } from '../helpers/records.ts';
import type { RecordSink } from '../helpers/records.ts';
import { postJson } from '../helpers/http-client.ts';
import type { RawResponse } from '../helpers/http-client.ts';

const AUTH = { authorization: 'Bearer sk-test-usage' };
const PIECES = ['The', ' quick', ' brown', ' fox', ' jumps', ' over', ' the', ' lazy', ' dog', '.'];
const SCRIPT: ChatScript = { kind: 'chat', pieces: PIECES, model: 'gpt-4o-mini-2024-07-18', id: 'chatcmpl-usage-1', usage: { input: 17, output: 9 }, gapMs: 5 };

let mock: MockUpstream;
let proxy: RunningLlmtap;
let proxyOff: RunningLlmtap;
let records: RecordSink;
let recordsOff: RecordSink;

before(async () => {
  mock = await startMockUpstream();
  const urls = { openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: mock.url };
  proxy = await startLlmtap(configWith({ port: 0, ...urls, logLevel: 'silent' }));
  proxyOff = await startLlmtap(configWith({ port: 0, ...urls, logLevel: 'silent', streamUsage: false }));
  records = collectRecords(proxy.bus);
  recordsOff = collectRecords(proxyOff.bus);
});

after(async () => {
  await proxy?.close();
  await proxyOff?.close();
  await mock?.close();
});

beforeEach(() => {
  mock.reset();
  records.clear();
  recordsOff.clear();
});

function bodyOf(r: ReceivedRequest): Record<string, unknown> {
  assert.ok(r.json !== null && typeof r.json === 'object', `the mock received a JSON object, got ${r.body.toString('utf8').slice(0, 200)}`);
  return r.json as Record<string, unknown>;
}

/** Sends the same body through llmtap and straight to the mock; returns both responses and what the mock received from llmtap. */
async function throughAndDirect(path: string, body: unknown, via: RunningLlmtap = proxy): Promise<{ proxied: RawResponse; direct: RawResponse; forwarded: ReceivedRequest }> {
  const proxied = await postJson(`${via.url}${path}`, body, AUTH);
  const forwarded = await mock.waitForRequest();
  const direct = await postJson(`${mock.url}${path}`, body, AUTH);
  assert.equal(mock.requests.length, 2, 'one request through llmtap, one direct');
  return { proxied, direct, forwarded };
}

function assertSameBytes(proxied: RawResponse, expected: Buffer): void {
  assert.equal(proxied.status, 200);
  assert.ok(proxied.complete, 'the client got the whole stream');
  // Strings first for a readable diff, then the bytes themselves.
  assert.equal(proxied.body.toString('utf8'), expected.toString('utf8'));
  assert.ok(proxied.body.equals(expected), 'byte-for-byte equal');
}

/** The stream a client that did not ask for usage would get from OpenAI: built from a fixture that has it, by dropping
 * the usage-only chunk and each chunk's `usage` field (the fixtures' payloads re-serialize to themselves, checked). */
function withoutUsage(frames: Buffer[]): Buffer {
  const out: string[] = [];
  for (const f of frames) {
    const text = f.toString('utf8');
    const m = /^data: (\{.*\})\n\n$/s.exec(text);
    if (!m) {
      out.push(text);
      continue;
    }
    const payload = m[1]!;
    const obj = JSON.parse(payload) as Record<string, unknown>;
    assert.equal(JSON.stringify(obj), payload, 'fixture payload re-serializes to itself');
    if (Array.isArray(obj.choices) && obj.choices.length === 0 && obj.usage) continue;
    delete obj.usage;
    out.push(`data: ${JSON.stringify(obj)}\n\n`);
  }
  return Buffer.from(out.join(''));
}

describe('a streaming client that did not ask for usage', () => {
  it('gets byte for byte the stream the upstream sends without usage; llmtap records the reported usage', async () => {
    mock.handle(SCRIPT);
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Tell me about foxes' }], stream: true, temperature: 0.5 };
    const { proxied, direct, forwarded } = await throughAndDirect('/v1/chat/completions', body);

    assert.ok(!direct.body.includes('"usage"'), 'reference stream (no include_usage) has no usage at all');
    assertSameBytes(proxied, direct.body);

    const sent = bodyOf(forwarded);
    assert.deepEqual(sent.stream_options, { include_usage: true }, 'llmtap asked the upstream for usage');
    const { stream_options: _, ...rest } = sent;
    assert.deepEqual(rest, body, 'the rest of the body is forwarded unchanged');

    const r = await records.waitFor((x) => x.url === '/v1/chat/completions');
    assert.equal(r.outcome, 'ok');
    assert.equal(r.usageInjected, true);
    assert.deepEqual([r.usage.input, r.usage.output, r.usage.total, r.usage.source], [17, 9, 26, 'reported']);
    assert.deepEqual(r.finishReasons, ['stop']);
    assert.equal(r.streamComplete, true);
    assert.equal(r.bytes.responseOut, proxied.body.length, 'responseOut counts what the client received');
    assert.ok(r.bytes.responseIn > r.bytes.responseOut, 'responseIn counts the usage the upstream sent and the client did not get');
  });

  it('works the same when the client said include_usage: false', async () => {
    mock.handle(SCRIPT);
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], stream: true, stream_options: { include_usage: false } };
    const { proxied, direct } = await throughAndDirect('/v1/chat/completions', body);
    assert.ok(!direct.body.includes('"usage"'));
    assertSameBytes(proxied, direct.body);
    const r = await records.waitFor((x) => x.url === '/v1/chat/completions');
    assert.equal(r.outcome, 'ok');
    // The contract leaves open whether an explicit `false` is "did not ask" (inject) or a wish (estimate); either way the tokens are known.
    assert.ok((r.usage.output ?? 0) > 0, `output tokens are known (reported or estimated), got ${r.usage.output} (${r.usage.source})`);
  });

  it('works for the legacy /v1/completions stream', async () => {
    mock.handle({ ...SCRIPT, id: 'cmpl-usage-1', model: 'babbage-002' });
    const body = { model: 'babbage-002', prompt: 'def fib(n):', max_tokens: 9, stream: true };
    const { proxied, direct, forwarded } = await throughAndDirect('/v1/completions', body);
    assert.ok(!direct.body.includes('"usage"'));
    assertSameBytes(proxied, direct.body);
    assert.deepEqual(bodyOf(forwarded).stream_options, { include_usage: true });
    const r = await records.waitFor((x) => x.url === '/v1/completions');
    assert.equal(r.operation, 'text_completion');
    assert.equal(r.usageInjected, true);
    assert.deepEqual([r.usage.input, r.usage.output, r.usage.source], [17, 9, 'reported']);
  });

  for (const file of ['openai/chat_stream_include_usage_details.sse', 'openai/chat_stream_include_usage.sse', 'openai/chat_stream_tool_call.sse', 'openai/completions_stream_include_usage.sse']) {
    it(`strips usage from the real wire sample ${file}`, async () => {
      // The upstream answers with the recorded stream (it carries usage, as OpenAI sends once llmtap asks for it).
      mock.handle({ kind: 'fixture', file, gapMs: 2 });
      const path = file.includes('completions_') ? '/v1/completions' : '/v1/chat/completions';
      const body = { model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }], stream: true };
      const proxied = await postJson(`${proxy.url}${path}`, body, AUTH);
      assertSameBytes(proxied, withoutUsage(fixtureFrames(file)));
      const usageChunk = fixtureFrames(file)
        .map((f) => f.toString('utf8'))
        .find((t) => t.includes('"choices":[]'));
      assert.ok(usageChunk, 'fixture has a usage chunk');
      const usage = (JSON.parse(usageChunk.slice(6)) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
      const r = await records.waitFor((x) => x.url === path);
      assert.equal(r.usageInjected, true);
      assert.deepEqual([r.usage.input, r.usage.output, r.usage.source], [usage.prompt_tokens, usage.completion_tokens, 'reported']);
      assert.equal(r.streamComplete, true);
    });
  }
});

describe('OpenAI-compatible servers that answer include_usage their own way', () => {
  it('vLLM without a usage chunk: the stream is relayed unchanged and tokens are estimated', async () => {
    const file = 'vllm/chat_stream_abridged.sse';
    mock.handle({ kind: 'fixture', file, gapMs: 2 });
    const body = { model: 'Qwen/Qwen3-0.6B', messages: [{ role: 'user', content: 'Say hello' }], stream: true };
    const proxied = await postJson(`${proxy.url}/v1/chat/completions`, body, AUTH);
    assertSameBytes(proxied, fixtureBytes(file));
    const r = await records.waitFor((x) => x.url === '/v1/chat/completions');
    assert.equal(r.outcome, 'ok');
    assert.equal(r.usage.source, 'estimated', 'no usage came back, so it is estimated');
    assert.ok((r.usage.output ?? 0) > 0 && (r.usage.input ?? 0) > 0, `estimated tokens: ${JSON.stringify(r.usage)}`);
  });

  it('llama.cpp usage on the finish chunk (choices not empty): that chunk reaches the client whole', async () => {
    const file = 'llamacpp/chat_stream_abridged.sse';
    mock.handle({ kind: 'fixture', file, gapMs: 2 });
    const body = { model: 'phi-4', messages: [{ role: 'user', content: 'Climb' }], stream: true, max_tokens: 50 };
    const proxied = await postJson(`${proxy.url}/v1/chat/completions`, body, AUTH);
    // llama.cpp sends this usage whether asked or not; it is part of the stream the client would have got.
    assertSameBytes(proxied, fixtureBytes(file));
    const r = await records.waitFor((x) => x.url === '/v1/chat/completions');
    assert.deepEqual([r.usage.input, r.usage.output, r.usage.source], [13, 50, 'reported']);
    assert.deepEqual(r.finishReasons, ['length']);
  });
});

describe('a streaming client that asked for usage itself', () => {
  it('gets the usage chunk unchanged and nothing is injected', async () => {
    mock.handle(SCRIPT);
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], stream: true, stream_options: { include_usage: true } };
    const { proxied, direct, forwarded } = await throughAndDirect('/v1/chat/completions', body);
    assert.ok(direct.body.includes('"usage":null') && direct.body.includes('"choices":[]'), 'reference stream carries usage');
    assertSameBytes(proxied, direct.body);
    assert.ok(forwarded.body.equals(Buffer.from(JSON.stringify(body))), 'the request body is forwarded byte for byte');
    const r = await records.waitFor((x) => x.url === '/v1/chat/completions');
    assert.equal(r.usageInjected, false);
    assert.deepEqual([r.usage.input, r.usage.output, r.usage.source], [17, 9, 'reported']);
    assert.equal(r.bytes.responseIn, r.bytes.responseOut);
  });
});

describe('with LLMTAP_STREAM_USAGE off', () => {
  it('forwards the request untouched and estimates the tokens', async () => {
    mock.handle(SCRIPT);
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Tell me a sentence about a fox and a dog, please.' }], stream: true };
    const { proxied, direct, forwarded } = await throughAndDirect('/v1/chat/completions', body, proxyOff);
    assertSameBytes(proxied, direct.body);
    assert.ok(forwarded.body.equals(Buffer.from(JSON.stringify(body))), 'the request body is forwarded byte for byte');
    assert.equal(bodyOf(forwarded).stream_options, undefined);

    const r = await recordsOff.waitFor((x) => x.url === '/v1/chat/completions');
    assert.equal(r.outcome, 'ok');
    assert.equal(r.usageInjected, false);
    assert.equal(r.usage.source, 'estimated');
    // "The quick brown fox jumps over the lazy dog." is 10 tokens for OpenAI's tokenizers; a real tokenizer lands near it.
    const out = r.usage.output ?? 0;
    const input = r.usage.input ?? 0;
    assert.ok(out >= 5 && out <= 20, `estimated output tokens ${out} for a 10-token answer`);
    assert.ok(input >= 5 && input <= 60, `estimated input tokens ${input} for a 12-word prompt`);
  });
});
