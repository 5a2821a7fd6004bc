// Response observers and request inspectors of the three dialects, checked against real wire fixtures.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import { dialect } from '../../src/dialects/index.ts';
import type { Observation, ReportedUsage } from '../../src/dialects/types.ts';
import type { DialectName } from '../../src/exchange/record.ts';
import { readRequestJson } from '../../src/proxy/request-json.ts';
import { listFixtures, loadFixture, segments, splitEvery, splitRandom, type Segment } from '../helpers/fixtures.ts';

/**
 * What each fixture holds, read off the file by hand. `evidence` are compact `"key":value` snippets that must
 * occur in the file (whitespace around colons removed), so that a typo in this table fails loudly instead of
 * agreeing with the code. `firstContent` is the index of the SSE event / NDJSON line that first carries
 * non-empty generated text (or a tool call), and `contentEvidence` a snippet of that event.
 */
interface Expect {
  dialect: DialectName;
  path: string;
  status: number;
  model: string | null;
  id: string | null;
  finish: string[];
  usage: ReportedUsage | null;
  complete: boolean;
  firstContent: number | null;
  contentEvidence?: string;
  streamError: string | null;
  evidence: string[];
}

const EXPECT: Record<string, Expect> = {
  // ---------------------------------------------------------------- openai
  'openai/chat_nonstream.json': {
    dialect: 'openai', path: '/v1/chat/completions', status: 200,
    model: 'gpt-4.1-nano-2025-04-14', id: 'chatcmpl-D8Z5f52zQqikDBEKQMQoYcWMcWPeU', finish: ['stop'],
    usage: { input: 16, output: 363, total: 379, cacheRead: 0, reasoning: 0 },
    complete: true, firstContent: null, streamError: null,
    evidence: ['"prompt_tokens":16', '"completion_tokens":363', '"total_tokens":379', '"cached_tokens":0', '"reasoning_tokens":0', '"finish_reason":"stop"'],
  },
  'openai/chat_nonstream_reasoning_tokens.json': {
    dialect: 'openai', path: '/v1/chat/completions', status: 200,
    model: 'gpt-5-nano-2025-08-07', id: 'chatcmpl-CJYvbsw8VZh862zGsIV5ZJtMnVFej', finish: ['stop'],
    usage: { input: 27, output: 267, total: 294, cacheRead: 0, reasoning: 192 },
    complete: true, firstContent: null, streamError: null,
    evidence: ['"prompt_tokens":27', '"completion_tokens":267', '"total_tokens":294', '"cached_tokens":0', '"reasoning_tokens":192', '"finish_reason":"stop"'],
  },
  'openai/chat_stream_no_usage.sse': {
    dialect: 'openai', path: '/v1/chat/completions', status: 200,
    model: 'gpt-5-nano-2025-08-07', id: 'chatcmpl-C4HqHBe4xca0k0EzsCnf1t6V3YFXp', finish: ['stop'],
    usage: null, complete: true,
    // event 0 is the role chunk with content "" — not content; event 1 says "Hi"
    firstContent: 1, contentEvidence: '"delta":{"content":"Hi"}', streamError: null,
    evidence: ['"content":""', '"finish_reason":"stop"', 'data: [DONE]'],
  },
  'openai/chat_stream_include_usage.sse': {
    dialect: 'openai', path: '/v1/chat/completions', status: 200,
    model: 'gpt-4o-2024-08-06', id: 'chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL', finish: ['stop'],
    usage: { input: 14, output: 30, total: 44, reasoning: 0 }, complete: true,
    firstContent: 1, contentEvidence: '"delta":{"content":"I\'m"}', streamError: null,
    evidence: ['"prompt_tokens":14', '"completion_tokens":30', '"total_tokens":44', '"reasoning_tokens":0', '"finish_reason":"stop"', '"choices":[],"usage"', 'data: [DONE]'],
  },
  'openai/chat_stream_include_usage_details.sse': {
    dialect: 'openai', path: '/v1/chat/completions', status: 200,
    model: 'gpt-5-nano-2025-08-07', id: 'chatcmpl-C4Hq5a6K3RaPMymUv70btQNYv6SvY', finish: ['length'],
    usage: { input: 12, output: 100, total: 112, cacheRead: 0, reasoning: 100 }, complete: true,
    // all 100 output tokens went to hidden reasoning: no chunk carries any text
    firstContent: null, streamError: null,
    evidence: ['"prompt_tokens":12', '"completion_tokens":100', '"total_tokens":112', '"cached_tokens":0', '"reasoning_tokens":100', '"finish_reason":"length"', 'data: [DONE]'],
  },
  'openai/chat_stream_tool_call.sse': {
    dialect: 'openai', path: '/v1/chat/completions', status: 200,
    model: 'gpt-4o-2024-08-06', id: 'chatcmpl-ABfwERreu9s99xXsVuOWtIB2UOx62', finish: ['tool_calls'],
    usage: { input: 44, output: 16, total: 60, reasoning: 0 }, complete: true,
    // the first chunk already names the tool the model chose (generated)
    firstContent: 0, contentEvidence: '"name":"get_weather"', streamError: null,
    evidence: ['"prompt_tokens":44', '"completion_tokens":16', '"total_tokens":60', '"reasoning_tokens":0', '"finish_reason":"tool_calls"', 'data: [DONE]'],
  },
  'openai/chat_stream_tool_call_no_usage.sse': {
    dialect: 'openai', path: '/v1/chat/completions', status: 200,
    model: 'gpt-4o-mini-2024-07-18', id: 'chatcmpl-BLG3cyCxffdqTiCAs8akKN6rha71Y', finish: ['tool_calls'],
    usage: null, complete: true,
    firstContent: 0, contentEvidence: '"name":"youtube_search_api"', streamError: null,
    evidence: ['"finish_reason":"tool_calls"', 'data: [DONE]'],
  },
  'openai/completions_stream.sse': {
    dialect: 'openai', path: '/v1/completions', status: 200,
    model: 'babbage:2023-07-21-v2', id: 'cmpl-CKz4pmtksE5Tg3sqmeOXcZtoQEw7O', finish: ['length'],
    usage: null, complete: true,
    firstContent: 0, contentEvidence: '"text":" +"', streamError: null,
    evidence: ['"finish_reason":"length"', 'data: [DONE]'],
  },
  'openai/completions_stream_include_usage.sse': {
    dialect: 'openai', path: '/v1/completions', status: 200,
    model: 'babbage:2023-07-21-v2', id: 'cmpl-CKzHhit4D82m3cp2zRTC2fpTNlJCX', finish: ['length'],
    usage: { input: 31, output: 25, total: 56 }, complete: true,
    firstContent: 0, contentEvidence: '"text":" +"', streamError: null,
    evidence: ['"prompt_tokens":31', '"completion_tokens":25', '"total_tokens":56', '"finish_reason":"length"', 'data: [DONE]'],
  },
  'openai/embeddings.json': {
    dialect: 'openai', path: '/v1/embeddings', status: 200,
    model: 'text-embedding-3-small', id: null, finish: [],
    usage: { input: 7, total: 7 }, complete: true, firstContent: null, streamError: null,
    evidence: ['"prompt_tokens":7', '"total_tokens":7', '"model":"text-embedding-3-small"'],
  },
  'openai/embeddings_truncated_vectors.json': {
    dialect: 'openai', path: '/v1/embeddings', status: 200,
    model: 'text-embedding-3-small', id: null, finish: [],
    usage: { input: 12, total: 12 }, complete: true, firstContent: null, streamError: null,
    evidence: ['"prompt_tokens":12', '"total_tokens":12'],
  },
  'openai/error_400_unsupported_parameter.json': {
    dialect: 'openai', path: '/v1/chat/completions', status: 400, model: null, id: null, finish: [], usage: null,
    complete: true, firstContent: null,
    streamError: "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
    evidence: ['"code":"unsupported_parameter"'],
  },
  'openai/error_401_invalid_api_key.json': {
    dialect: 'openai', path: '/v1/chat/completions', status: 401, model: null, id: null, finish: [], usage: null,
    complete: true, firstContent: null,
    streamError: 'Incorrect API key provided: sk-svcac****************************************************r-IL. You can find your API key at https://platform.openai.com/account/api-keys.',
    evidence: ['"code":"invalid_api_key"'],
  },
  'openai/error_404_model_not_found.json': {
    dialect: 'openai', path: '/v1/chat/completions', status: 404, model: null, id: null, finish: [], usage: null,
    complete: true, firstContent: null,
    streamError: 'The model `gpt-4.1-nano-wrong` does not exist or you do not have access to it.',
    evidence: ['"code":"model_not_found"'],
  },
  'openai/error_429_rate_limit_exceeded.json': {
    dialect: 'openai', path: '/v1/chat/completions', status: 429, model: null, id: null, finish: [], usage: null,
    complete: true, firstContent: null,
    streamError: 'Rate limit reached for gpt-4 in organization org-********** on tokens per min (TPM): Limit 10000, Used 9348, Requested 5086. Please try again in 26.604s. Visit https://platform.openai.com/account/rate-limits to learn more.',
    evidence: ['"code":"rate_limit_exceeded"'],
  },
  'openai/responses_stream.sse': {
    dialect: 'openai', path: '/v1/responses', status: 200,
    model: 'gpt-4.1-nano-2025-04-14', id: 'resp_051ebd7ab60063870069d4fe8ac1348194bf06d0a4646af05f', finish: ['completed'],
    usage: { input: 44, output: 4, total: 48, cacheRead: 0, reasoning: 0 }, complete: true,
    // events 0-3: created, in_progress, output_item.added, content_part.added (text ""); 4: first output_text.delta
    firstContent: 4, contentEvidence: '"delta":"Dummy"', streamError: null,
    evidence: ['event: response.completed', '"status":"completed"', '"input_tokens":44', '"output_tokens":4', '"total_tokens":48', '"cached_tokens":0', '"reasoning_tokens":0'],
  },
  // ---------------------------------------------------------------- anthropic
  'anthropic/messages_nonstream.json': {
    dialect: 'anthropic', path: '/v1/messages', status: 200,
    model: 'claude-sonnet-4-5-20250929', id: 'msg_01VdEjxAP5ahtHKrrRdNBteQ', finish: ['end_turn'],
    // input = input_tokens + cache reads + cache writes (12 + 0 + 0); total = input + output
    usage: { input: 12, output: 29, total: 41, cacheRead: 0, cacheWrite: 0 },
    complete: true, firstContent: null, streamError: null,
    evidence: ['"input_tokens":12', '"output_tokens":29', '"cache_read_input_tokens":0', '"cache_creation_input_tokens":0', '"stop_reason":"end_turn"'],
  },
  'anthropic/messages_stream.sse': {
    dialect: 'anthropic', path: '/v1/messages', status: 200,
    model: 'claude-3-opus-latest', id: 'msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK', finish: ['end_turn'],
    // message_start says output 1; message_delta's cumulative 6 replaces it
    usage: { input: 11, output: 6, total: 17 }, complete: true,
    // 0 message_start, 1 content_block_start (text ""), 2 ping, 3 first text_delta "Hello"
    firstContent: 3, contentEvidence: '"text":"Hello"', streamError: null,
    evidence: ['"input_tokens":11', '"output_tokens":6', '"stop_reason":"end_turn"', 'event: message_stop'],
  },
  'anthropic/messages_stream_tool_use.sse': {
    dialect: 'anthropic', path: '/v1/messages', status: 200,
    model: 'claude-sonnet-4-20250514', id: 'msg_019Q1hrJbZG26Fb9BQhrkHEr', finish: ['tool_use'],
    usage: { input: 377, output: 65, total: 442, cacheRead: 0, cacheWrite: 0 }, complete: true,
    firstContent: 3, contentEvidence: '"text":"I"', streamError: null,
    evidence: ['"input_tokens":377', '"cache_creation_input_tokens":0', '"cache_read_input_tokens":0', '"output_tokens":65', '"stop_reason":"tool_use"', 'event: message_stop'],
  },
  'anthropic/stream_error_overloaded.sse': {
    dialect: 'anthropic', path: '/v1/messages', status: 200, model: null, id: null, finish: [], usage: null,
    complete: false, firstContent: null, streamError: 'Overloaded',
    evidence: ['event: error', '"type":"overloaded_error"', '"message":"Overloaded"'],
  },
  'anthropic/error_529_overloaded.json': {
    dialect: 'anthropic', path: '/v1/messages', status: 529, model: null, id: null, finish: [], usage: null,
    complete: true, firstContent: null, streamError: 'Overloaded',
    evidence: ['"type":"error"', '"message":"Overloaded"'],
  },
  'anthropic/error_400_prompt_too_long.json': {
    dialect: 'anthropic', path: '/v1/messages', status: 400, model: null, id: null, finish: [], usage: null,
    complete: true, firstContent: null, streamError: 'prompt is too long: 205351 tokens > 200000 maximum',
    evidence: ['"type":"error"', '"type":"invalid_request_error"'],
  },
  // ---------------------------------------------------------------- ollama
  'ollama/chat_stream.ndjson': {
    dialect: 'ollama', path: '/api/chat', status: 200, model: 'llama3', id: null, finish: ['stop'],
    usage: { input: 18, output: 7, total: 25 }, complete: true,
    firstContent: 0, contentEvidence: '"content":"The"', streamError: null,
    evidence: ['"prompt_eval_count":18', '"eval_count":7', '"done_reason":"stop"', '"done":true'],
  },
  'ollama/generate_stream.ndjson': {
    dialect: 'ollama', path: '/api/generate', status: 200, model: 'dolphin3:8b', id: null, finish: ['stop'],
    usage: { input: 31, output: 37, total: 68 }, complete: true,
    firstContent: 0, contentEvidence: '"response":"A"', streamError: null,
    evidence: ['"prompt_eval_count":31', '"eval_count":37', '"done_reason":"stop"', '"done":true'],
  },
  'ollama/chat_stream_tool_call.ndjson': {
    dialect: 'ollama', path: '/api/chat', status: 200, model: 'llama3.2', id: null, finish: ['stop'],
    usage: { input: 169, output: 15, total: 184 }, complete: true,
    firstContent: 0, contentEvidence: '"tool_calls":[{"function":{"name":"get_weather"', streamError: null,
    evidence: ['"prompt_eval_count":169', '"eval_count":15', '"done_reason":"stop"', '"done":true'],
  },
  'ollama/chat_nonstream.json': {
    dialect: 'ollama', path: '/api/chat', status: 200, model: 'llama3.2', id: null,
    // the doc example has no done_reason
    finish: [], usage: { input: 26, output: 298, total: 324 }, complete: true, firstContent: null, streamError: null,
    evidence: ['"prompt_eval_count":26', '"eval_count":298', '"done":true'],
  },
  'ollama/embed.json': {
    dialect: 'ollama', path: '/api/embed', status: 200, model: 'all-minilm', id: null, finish: [],
    usage: { input: 8 }, complete: true, firstContent: null, streamError: null,
    evidence: ['"prompt_eval_count":8'],
  },
  'ollama/tags.json': {
    dialect: 'ollama', path: '/api/tags', status: 200, model: null, id: null, finish: [], usage: null,
    complete: true, firstContent: null, streamError: null,
    evidence: ['"models":['],
  },
  // ---------------------------------------------------------------- OpenAI-compatible servers
  'vllm/chat_stream_abridged.sse': {
    dialect: 'openai', path: '/v1/chat/completions', status: 200,
    model: 'Qwen/Qwen3-0.6B', id: 'chatcmpl-3a69ae0975b84bf6940a7349172d8935', finish: ['stop'],
    usage: null, complete: true,
    firstContent: 1, contentEvidence: '"content":"<think>"', streamError: null,
    evidence: ['"finish_reason":"stop","stop_reason":null', 'data: [DONE]'],
  },
  'vllm/chat_nonstream.json': {
    dialect: 'openai', path: '/v1/chat/completions', status: 200,
    model: 'Qwen/Qwen3-0.6B', id: 'chatcmpl-8b080fc675b84f0b980a45ca28b480d4', finish: ['stop'],
    // prompt_tokens_details is null: no cache figure
    usage: { input: 19, output: 396, total: 415 }, complete: true, firstContent: null, streamError: null,
    evidence: ['"prompt_tokens":19', '"total_tokens":415', '"completion_tokens":396', '"prompt_tokens_details":null', '"kv_transfer_params":null'],
  },
  'llamacpp/chat_stream_abridged.sse': {
    dialect: 'openai', path: '/v1/chat/completions', status: 200,
    model: 'phi-4', id: 'chatcmpl-51VeqNldSlrUKqMP1Seka7KfXksFbSea', finish: ['length'],
    usage: { input: 13, output: 50, total: 63 }, complete: true,
    // the first delta is {"role":"assistant","content":null}
    firstContent: 1, contentEvidence: '"content":" climb"', streamError: null,
    evidence: ['"content":null', '"completion_tokens":50', '"prompt_tokens":13', '"total_tokens":63', '"finish_reason":"length"', '"timings":{', 'data: [DONE]'],
  },
};

const kindOf = (rel: string): 'sse' | 'ndjson' | 'json' => (rel.endsWith('.sse') ? 'sse' : rel.endsWith('.ndjson') ? 'ndjson' : 'json');
const CONTENT_TYPES = { sse: 'text/event-stream; charset=utf-8', ndjson: 'application/x-ndjson', json: 'application/json' } as const;

function observe(rel: string, chunks: { bytes: Uint8Array; now: number }[]): Observation {
  const e = EXPECT[rel]!;
  const kind = kindOf(rel);
  const observer = dialect(e.dialect).createObserver({ path: e.path, contentType: CONTENT_TYPES[kind], status: e.status, stream: kind !== 'json' });
  for (const c of chunks) observer.write(c.bytes, c.now);
  return observer.end();
}

/** The observation without its function, for deep comparison. */
function plain(o: Observation): Omit<Observation, 'estimateOutputTokens'> {
  const { estimateOutputTokens: _, ...rest } = o;
  return rest;
}

/** Each chunk's `now` is the byte offset just past it: which chunk reported first content is then visible. */
const atEnd = (pieces: Buffer[]): { bytes: Uint8Array; now: number }[] => {
  let off = 0;
  return pieces.map((bytes) => ({ bytes, now: (off += bytes.length) }));
};

/** The byte offset just past the chunk that holds byte `at`. */
function chunkEndHolding(pieces: Buffer[], at: number): number {
  let off = 0;
  for (const p of pieces) {
    off += p.length;
    if (at < off) return off;
  }
  throw new Error(`offset ${at} is past the end`);
}

const compactColons = (text: string): string => text.replace(/"\s*:\s*/g, '":');

describe('fixtures: the expectation table covers every fixture and agrees with the bytes', () => {
  it('every fixture file has an expectation (and every expectation a file)', () => {
    const files = listFixtures().filter((f) => !f.endsWith('README.md'));
    assert.ok(files.length >= 30, `found only ${files.length} fixtures`);
    assert.deepEqual(files, Object.keys(EXPECT).sort());
  });

  for (const [rel, e] of Object.entries(EXPECT)) {
    it(`${rel}: the expected values are in the file`, () => {
      const text = compactColons(loadFixture(rel).toString('utf8'));
      for (const ev of e.evidence) assert.ok(text.includes(ev), `${rel} does not contain ${ev}`);
      if (e.model) assert.ok(text.includes(`"model":${JSON.stringify(e.model)}`), `model ${e.model}`);
      if (e.id) assert.ok(text.includes(`"id":${JSON.stringify(e.id)}`), `id ${e.id}`);
      for (const f of e.finish) assert.ok(new RegExp(`"(finish_reason|stop_reason|done_reason|status)":"${f}"`).test(text), `finish ${f}`);
      if (e.streamError) assert.ok(text.includes(`"message":${JSON.stringify(e.streamError)}`), `message ${e.streamError}`);
      const kind = kindOf(rel);
      if (e.firstContent !== null) {
        assert.notEqual(kind, 'json');
        const segs = segments(loadFixture(rel), kind as 'sse' | 'ndjson');
        assert.ok(compactColons(segs[e.firstContent]!.text).includes(e.contentEvidence!), `segment ${e.firstContent} holds ${e.contentEvidence}`);
        // and no earlier segment holds generated text (content/text/response/delta strings are all empty or absent)
        for (const s of segs.slice(0, e.firstContent)) {
          const t = compactColons(s.text);
          assert.doesNotMatch(t, /"(content|text|response|delta|partial_json)":"[^"]/, `an earlier segment already has content: ${t.slice(0, 200)}`);
        }
      }
    });
  }
});

describe('observers: each fixture fed whole, byte by byte and in random chunks', () => {
  for (const [rel, e] of Object.entries(EXPECT)) {
    const kind = kindOf(rel);
    it(rel, async () => {
      const buf = loadFixture(rel);

      // (a) whole
      const whole = observe(rel, [{ bytes: buf, now: buf.length }]);
      assert.equal(whole.responseModel, e.model, 'responseModel');
      assert.equal(whole.responseId, e.id, 'responseId');
      assert.deepEqual(whole.finishReasons, e.finish, 'finishReasons');
      assert.deepEqual(whole.usage, e.usage, 'usage');
      assert.equal(whole.complete, e.complete, 'complete');
      assert.equal(whole.streamError, e.streamError, 'streamError');
      assert.deepEqual(whole.notes, [], 'notes');
      assert.equal(whole.firstContentAt, e.firstContent === null ? null : buf.length, 'firstContentAt (whole)');

      const segs = kind === 'json' ? [] : segments(buf, kind);
      // the byte whose arrival completes the first content event: its terminating newline
      const lastByteOfFirst = e.firstContent === null ? -1 : segs[e.firstContent]!.end - 1;
      const expectFirst = (pieces: Buffer[]): number | null => (e.firstContent === null ? null : chunkEndHolding(pieces, lastByteOfFirst));

      // (b) one byte at a time
      const bytes = splitEvery(buf, 1);
      const byByte = observe(rel, atEnd(bytes));
      assert.equal(byByte.firstContentAt, expectFirst(bytes), 'firstContentAt (bytes)');
      assert.deepEqual({ ...plain(byByte), firstContentAt: null }, { ...plain(whole), firstContentAt: null }, 'byte-at-a-time differs from whole');

      // (c) random chunk sizes, fixed seeds
      for (const seed of [1, 7, 20240901]) {
        const pieces = splitRandom(buf, seed, 1, 97);
        const random = observe(rel, atEnd(pieces));
        assert.equal(random.firstContentAt, expectFirst(pieces), `firstContentAt (seed ${seed})`);
        assert.deepEqual({ ...plain(random), firstContentAt: null }, { ...plain(whole), firstContentAt: null }, `seed ${seed} differs from whole`);
        assert.equal(await random.estimateOutputTokens(), await whole.estimateOutputTokens(), `estimate (seed ${seed})`);
      }

      // (d) one SSE event / NDJSON line per write, with an increasing now: the first content one is reported
      if (kind !== 'json') {
        const perEvent = observe(rel, segs.map((s: Segment, i) => ({ bytes: buf.subarray(s.start, s.end), now: 1000 + i })));
        assert.equal(perEvent.firstContentAt, e.firstContent === null ? null : 1000 + e.firstContent, 'firstContentAt (per event)');
        assert.deepEqual({ ...plain(perEvent), firstContentAt: null }, { ...plain(whole), firstContentAt: null });
      }
    });
  }

  it('estimateOutputTokens counts the streamed text (anthropic: "Hello there!")', async () => {
    const buf = loadFixture('anthropic/messages_stream.sse');
    const o = observe('anthropic/messages_stream.sse', [{ bytes: buf, now: 1 }]);
    assert.equal(await o.estimateOutputTokens(), countTokens('Hello there!'));
  });

  it('estimateOutputTokens counts the streamed text (openai: every delta.content joined)', async () => {
    const rel = 'openai/chat_stream_no_usage.sse';
    const buf = loadFixture(rel);
    let text = '';
    for (const s of segments(buf, 'sse')) {
      const data = s.text.replace(/^data: /, '').trim();
      if (data === '[DONE]') continue;
      const c = JSON.parse(data) as { choices: { delta: { content?: string } }[] };
      text += c.choices[0]?.delta.content ?? '';
    }
    assert.ok(text.startsWith('Hi there!'), text);
    const o = observe(rel, atEnd(splitRandom(buf, 3, 1, 50)));
    assert.equal(await o.estimateOutputTokens(), countTokens(text));
  });

  it('estimateOutputTokens counts the streamed text (ollama: "The answer is: 2")', async () => {
    const buf = loadFixture('ollama/chat_stream.ndjson');
    const o = observe('ollama/chat_stream.ndjson', atEnd(splitEvery(buf, 5)));
    assert.equal(await o.estimateOutputTokens(), countTokens('The answer is: 2'));
  });
});

describe('observers: server-specific shapes', () => {
  it("llama.cpp: keys in llama.cpp's order, content:null first delta, usage+timings on the finish chunk", () => {
    const rel = 'llamacpp/chat_stream_abridged.sse';
    const buf = loadFixture(rel);
    const segs = segments(buf, 'sse');
    assert.ok(segs[0]!.text.startsWith('data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}]'));
    // only the first event: no content, no usage yet
    const first = observe(rel, [{ bytes: buf.subarray(0, segs[0]!.end), now: 1 }]);
    assert.equal(first.firstContentAt, null);
    assert.equal(first.responseId, 'chatcmpl-51VeqNldSlrUKqMP1Seka7KfXksFbSea');
    assert.equal(first.complete, false);
    // the finish chunk alone (choices not empty) carries finish reason and usage together
    const last = observe(rel, [{ bytes: buf.subarray(segs[2]!.start, segs[2]!.end), now: 1 }]);
    assert.deepEqual(last.finishReasons, ['length']);
    assert.deepEqual(last.usage, { input: 13, output: 50, total: 63 });
  });

  it('vLLM: the final chunk with content "" and stop_reason is not content but gives the finish reason', () => {
    const rel = 'vllm/chat_stream_abridged.sse';
    const buf = loadFixture(rel);
    const segs = segments(buf, 'sse');
    const last = observe(rel, [{ bytes: buf.subarray(segs[4]!.start, segs[4]!.end), now: 5 }]);
    assert.equal(last.firstContentAt, null);
    assert.deepEqual(last.finishReasons, ['stop']);
    assert.equal(last.complete, false, 'no [DONE] in this slice');
  });

  it('vLLM non-stream: reasoning_content:null, stop_reason, prompt_logprobs and kv_transfer_params do not disturb the reading', () => {
    const o = observe('vllm/chat_nonstream.json', [{ bytes: loadFixture('vllm/chat_nonstream.json'), now: 1 }]);
    assert.deepEqual(o.usage, { input: 19, output: 396, total: 415 });
    assert.equal(o.streamError, null);
  });

  it('a stream cut before its end marker is not complete, but keeps what it saw', () => {
    const rel = 'openai/chat_stream_include_usage.sse';
    const buf = loadFixture(rel);
    const cut = buf.subarray(0, buf.lastIndexOf(Buffer.from('data: [DONE]')));
    const o = observe(rel, [{ bytes: cut, now: 1 }]);
    assert.equal(o.complete, false);
    assert.deepEqual(o.usage, { input: 14, output: 30, total: 44, reasoning: 0 });
    const a = loadFixture('anthropic/messages_stream.sse');
    const ao = observe('anthropic/messages_stream.sse', [{ bytes: a.subarray(0, a.indexOf(Buffer.from('event: message_stop'))), now: 1 }]);
    assert.equal(ao.complete, false);
    assert.deepEqual(ao.finishReasons, ['end_turn']);
  });

  it('CRLF-framed SSE parses the same as LF-framed', () => {
    const rel = 'anthropic/messages_stream.sse';
    const buf = loadFixture(rel);
    const crlf = Buffer.from(buf.toString('utf8').replace(/\n/g, '\r\n'));
    const a = observe(rel, [{ bytes: buf, now: 1 }]);
    const b = observe(rel, atEnd(splitRandom(crlf, 5, 1, 13)).map((c) => ({ ...c, now: 1 })));
    assert.deepEqual(plain(b), plain(a));
  });

  it('OpenAI-style {"error":...} inside a 200 stream becomes streamError', () => {
    const body = 'data: {"error":{"message":"The server had an error while processing your request.","type":"server_error"}}\n\n';
    const observer = dialect('openai').createObserver({ path: '/v1/chat/completions', contentType: 'text/event-stream', status: 200, stream: true });
    observer.write(Buffer.from(body), 1);
    assert.equal(observer.end().streamError, 'The server had an error while processing your request.');
  });
});

describe('inspectRequest', () => {
  const oa = dialect('openai');
  const an = dialect('anthropic');
  const ol = dialect('ollama');

  it('openai chat: model, stream, operation and every parameter (0 kept)', () => {
    const info = oa.inspectRequest('/v1/chat/completions', {
      model: 'gpt-4o', stream: true, max_tokens: 256, temperature: 0, top_p: 0.9, frequency_penalty: 0.5,
      presence_penalty: -0.5, seed: 42, n: 2, stop: ['\n\n', 'END'], messages: [{ role: 'user', content: 'hi' }],
    });
    assert.deepEqual(info, {
      model: 'gpt-4o', stream: true, operation: 'chat',
      params: { maxTokens: 256, temperature: 0, topP: 0.9, frequencyPenalty: 0.5, presencePenalty: -0.5, seed: 42, choiceCount: 2, stopSequences: ['\n\n', 'END'] },
    });
  });

  it('openai: max_completion_tokens / max_output_tokens, operations per path, stream defaults to false', () => {
    assert.deepEqual(oa.inspectRequest('/v1/chat/completions', { model: 'o3', max_completion_tokens: 9 }), { model: 'o3', stream: false, operation: 'chat', params: { maxTokens: 9 } });
    assert.deepEqual(oa.inspectRequest('/v1/responses', { model: 'gpt-4.1', input: 'x', max_output_tokens: 50, stream: true }), { model: 'gpt-4.1', stream: true, operation: 'chat', params: { maxTokens: 50 } });
    assert.deepEqual(oa.inspectRequest('/v1/completions', { model: 'babbage-002', prompt: 'x', stop: 'END' }), { model: 'babbage-002', stream: false, operation: 'text_completion', params: { stopSequences: ['END'] } });
    assert.deepEqual(oa.inspectRequest('/v1/embeddings', { model: 'text-embedding-3-small', input: 'x' }), { model: 'text-embedding-3-small', stream: false, operation: 'embeddings', params: {} });
    assert.deepEqual(oa.inspectRequest('/v1/models', undefined), { model: 'unknown', stream: false, operation: null, params: {} });
  });

  it('anthropic: messages is chat, count_tokens has no operation, parameters read', () => {
    assert.deepEqual(
      an.inspectRequest('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 1024, temperature: 0, top_p: 0.95, top_k: 40, stop_sequences: ['###'], stream: true, messages: [] }),
      { model: 'claude-sonnet-4-5', stream: true, operation: 'chat', params: { maxTokens: 1024, temperature: 0, topP: 0.95, topK: 40, stopSequences: ['###'] } },
    );
    assert.deepEqual(an.inspectRequest('/v1/messages/count_tokens', { model: 'claude-3-5-haiku', messages: [] }), { model: 'claude-3-5-haiku', stream: false, operation: null, params: {} });
    assert.equal(an.inspectRequest('/v1/messages', { model: 'claude', max_tokens: 5, messages: [] }).stream, false);
  });

  it('ollama: chat and generate stream unless stream:false; embed does not; options become params', () => {
    assert.deepEqual(ol.inspectRequest('/api/chat', { model: 'llama3', messages: [] }), { model: 'llama3', stream: true, operation: 'chat', params: {} });
    assert.equal(ol.inspectRequest('/api/chat', { model: 'llama3', messages: [], stream: false }).stream, false);
    assert.equal(ol.inspectRequest('/api/chat', { model: 'llama3', messages: [], stream: true }).stream, true);
    assert.deepEqual(ol.inspectRequest('/api/generate', { model: 'dolphin3:8b', prompt: 'x' }), { model: 'dolphin3:8b', stream: true, operation: 'text_completion', params: {} });
    assert.deepEqual(ol.inspectRequest('/api/embed', { model: 'all-minilm', input: 'x' }), { model: 'all-minilm', stream: false, operation: 'embeddings', params: {} });
    assert.equal(ol.inspectRequest('/api/embeddings', { model: 'all-minilm', prompt: 'x' }).operation, 'embeddings');
    assert.deepEqual(ol.inspectRequest('/api/tags', undefined), { model: 'unknown', stream: false, operation: null, params: {} });
    assert.deepEqual(
      ol.inspectRequest('/api/chat', { model: 'llama3', messages: [], options: { num_predict: 128, temperature: 0.8, top_p: 0.9, top_k: 40, seed: 7, stop: ['<|eot|>'] } }).params,
      { maxTokens: 128, temperature: 0.8, topP: 0.9, topK: 40, seed: 7, stopSequences: ['<|eot|>'] },
    );
  });

  it("malformed or missing bodies give model 'unknown' in every dialect", () => {
    for (const d of [oa, an, ol]) {
      for (const body of [undefined, null, [], 'text', 42, { model: 42 }, { model: '' }, { model: null }]) {
        assert.equal(d.inspectRequest(d.name === 'ollama' ? '/api/chat' : d.name === 'anthropic' ? '/v1/messages' : '/v1/chat/completions', body).model, 'unknown', `${d.name} ${JSON.stringify(body)}`);
      }
    }
    // a truncated JSON body does not parse: the inspector sees undefined
    const raw = Buffer.from('{"model":"gpt-4o","stream":true,"messages":[{"role":"user","con');
    const json = readRequestJson(raw, 'application/json');
    assert.equal(json.value, undefined);
    assert.equal(oa.inspectRequest('/v1/chat/completions', json.value).model, 'unknown');
  });

  it('readRequestJson: JSON labelled as a form is read; multipart is not; a body over 4 MB is scanned for its top-level keys', () => {
    assert.deepEqual(readRequestJson(Buffer.from('{"model":"llama3","stream":false}'), 'application/x-www-form-urlencoded').value, { model: 'llama3', stream: false });
    assert.equal(readRequestJson(Buffer.from('{"model":"x"}'), 'multipart/form-data; boundary=z').value, undefined);
    assert.equal(readRequestJson(Buffer.from('model=x'), 'application/x-www-form-urlencoded').value, undefined);
    const big = Buffer.from(`{"messages":[{"role":"user","content":"${'x'.repeat(5 * 1024 * 1024)}"}],"model":"gpt-4o","stream":true,"max_tokens":10,"temperature":0.5}`);
    const r = readRequestJson(big, 'application/json');
    assert.equal(r.partial, true);
    const info = oa.inspectRequest('/v1/chat/completions', r.value);
    assert.deepEqual(info, { model: 'gpt-4o', stream: true, operation: 'chat', params: { maxTokens: 10, temperature: 0.5 } });
  });
});

describe('bounded memory', () => {
  const chunk = (o: Record<string, unknown>): string => `data: ${JSON.stringify(o)}\n\n`;
  const base = { id: 'chatcmpl-big', object: 'chat.completion.chunk', model: 'gpt-4o-mini' };

  it('a 5 MB SSE line is skipped with a note; the events after it still parse', () => {
    const parts = [
      chunk({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }),
      chunk({ ...base, choices: [{ index: 0, delta: { content: 'y'.repeat(5 * 1024 * 1024) }, finish_reason: null }] }),
      chunk({ ...base, choices: [{ index: 0, delta: { content: 'after' }, finish_reason: null }] }),
      chunk({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
      chunk({ ...base, choices: [], usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 } }),
      'data: [DONE]\n\n',
    ];
    const observer = dialect('openai').createObserver({ path: '/v1/chat/completions', contentType: 'text/event-stream', status: 200, stream: true });
    parts.forEach((p, i) => {
      for (const c of splitEvery(Buffer.from(p), 64 * 1024)) observer.write(c, 10 + i);
    });
    const o = observer.end();
    assert.equal(o.notes.length, 1, JSON.stringify(o.notes));
    assert.match(o.notes[0]!, /skipped/);
    const n = Number(/(\d{6,})/.exec(o.notes[0]!)?.[1]);
    assert.ok(n >= 5 * 1024 * 1024, `note names the line's size: ${o.notes[0]}`);
    assert.equal(o.firstContentAt, 12, 'the skipped line is not content; "after" (write 2) is');
    assert.deepEqual(o.finishReasons, ['stop']);
    assert.deepEqual(o.usage, { input: 5, output: 7, total: 12 });
    assert.equal(o.responseId, 'chatcmpl-big');
    assert.equal(o.complete, true);
  });

  it('a 5 MB NDJSON line is skipped with a note; the lines after it still parse', () => {
    const line = (o: Record<string, unknown>): string => `${JSON.stringify(o)}\n`;
    const m = { model: 'llama3', created_at: '2024-09-30T09:02:00Z' };
    const parts = [
      line({ ...m, message: { role: 'assistant', content: 'z'.repeat(5 * 1024 * 1024) }, done: false }),
      line({ ...m, message: { role: 'assistant', content: 'ok' }, done: false }),
      line({ ...m, message: { role: 'assistant', content: '' }, done_reason: 'stop', done: true, prompt_eval_count: 3, eval_count: 4 }),
    ];
    const observer = dialect('ollama').createObserver({ path: '/api/chat', contentType: 'application/x-ndjson', status: 200, stream: true });
    parts.forEach((p, i) => {
      for (const c of splitEvery(Buffer.from(p), 64 * 1024)) observer.write(c, 10 + i);
    });
    const o = observer.end();
    assert.equal(o.notes.length, 1, JSON.stringify(o.notes));
    assert.match(o.notes[0]!, /skipped/);
    assert.equal(o.firstContentAt, 11);
    assert.deepEqual(o.usage, { input: 3, output: 4, total: 7 });
    assert.deepEqual(o.finishReasons, ['stop']);
    assert.equal(o.complete, true);
  });

  it('a 10 MB non-stream JSON body with usage at the end yields the usage, holding a bounded amount of memory', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const head = '{"object":"list","data":[{"object":"embedding","index":0,"embedding":[';
    const numbers = '0.0057293195,-0.012727811,0.020042092,-0.013437585,0.022833068,'.repeat(1024); // 62 KiB
    const tail = '0.5]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8191,"total_tokens":8191}}';
    gc();
    const before = process.memoryUsage().arrayBuffers;
    const observer = dialect('openai').createObserver({ path: '/v1/embeddings', contentType: 'application/json', status: 200, stream: false });
    observer.write(Buffer.from(head), 1);
    let fed = head.length;
    while (fed < 10 * 1024 * 1024) {
      const b = Buffer.from(numbers); // a fresh buffer per chunk, as the network delivers them
      observer.write(b, 1);
      fed += b.length;
    }
    observer.write(Buffer.from(tail), 1);
    // Buffers' memory is given back after a collection, sometimes a moment later: collect, let it settle, collect.
    gc();
    await new Promise((r) => setImmediate(r));
    gc();
    const held = process.memoryUsage().arrayBuffers - before;
    assert.ok(held < 3 * 1024 * 1024, `observer holds ${(held / 1048576).toFixed(1)} MB after 10 MB fed`);
    const o = observer.end();
    assert.deepEqual(o.usage, { input: 8191, total: 8191 });
    assert.equal(o.responseModel, 'text-embedding-3-small');
    assert.equal(o.complete, true);
    assert.deepEqual(o.notes, []);
  });

  /** A ~10 MB body whose long middle is one string (the generated text), fed in 64 KiB pieces. */
  function bigBody(before: string, after: string): Buffer[] {
    const filler = 'lorem ipsum dolor sit amet '.repeat(2500);
    const mid = Buffer.from(filler.repeat(Math.ceil((10 * 1024 * 1024) / filler.length)).slice(0, 10 * 1024 * 1024));
    return [Buffer.from(before), ...splitEvery(mid, 64 * 1024), Buffer.from(after)];
  }

  it('10 MB OpenAI chat completion: id, model, usage and finish reason survive', () => {
    // key order of a real response (chat_nonstream.json): id, object, created, model, choices, usage
    const pieces = bigBody(
      '{"id":"chatcmpl-huge","object":"chat.completion","created":1770933883,"model":"gpt-4.1-nano-2025-04-14","choices":[{"index":0,"message":{"role":"assistant","content":"',
      '","refusal":null},"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":16,"completion_tokens":2500000,"total_tokens":2500016}}',
    );
    const observer = dialect('openai').createObserver({ path: '/v1/chat/completions', contentType: 'application/json', status: 200, stream: false });
    for (const p of pieces) observer.write(p, 1);
    const o = observer.end();
    assert.deepEqual(o.usage, { input: 16, output: 2500000, total: 2500016 });
    assert.equal(o.responseId, 'chatcmpl-huge');
    assert.equal(o.responseModel, 'gpt-4.1-nano-2025-04-14');
    assert.deepEqual(o.finishReasons, ['length']);
  });

  it('10 MB Anthropic message: usage and stop reason survive', () => {
    const pieces = bigBody(
      '{"model":"claude-sonnet-4-5-20250929","id":"msg_huge","type":"message","role":"assistant","content":[{"type":"text","text":"',
      '"}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":64000}}',
    );
    const observer = dialect('anthropic').createObserver({ path: '/v1/messages', contentType: 'application/json', status: 200, stream: false });
    for (const p of pieces) observer.write(p, 1);
    const o = observer.end();
    assert.deepEqual(o.usage, { input: 12, output: 64000, total: 64012, cacheRead: 0, cacheWrite: 0 });
    assert.equal(o.responseId, 'msg_huge');
    assert.deepEqual(o.finishReasons, ['max_tokens']);
    assert.equal(o.streamError, null);
  });

  it('10 MB Ollama chat (stream:false): usage and done_reason survive, as they do for a small body', () => {
    const pieces = bigBody(
      '{"model":"llama3.2","created_at":"2023-12-12T14:13:43.416799Z","message":{"role":"assistant","content":"',
      '"},"done_reason":"length","done":true,"total_duration":5191566416,"load_duration":2154458,"prompt_eval_count":26,"prompt_eval_duration":383809000,"eval_count":298,"eval_duration":4799921000}',
    );
    const observer = dialect('ollama').createObserver({ path: '/api/chat', contentType: 'application/json; charset=utf-8', status: 200, stream: false });
    for (const p of pieces) observer.write(p, 1);
    const o = observer.end();
    assert.equal(o.usage?.input, 26);
    assert.equal(o.usage?.output, 298);
    assert.equal(o.responseModel, 'llama3.2');
    assert.deepEqual(o.finishReasons, ['length']);
    // the same body small gives total 324: the large one should not differ
    assert.deepEqual(o.usage, { input: 26, output: 298, total: 324 });
  });
});
