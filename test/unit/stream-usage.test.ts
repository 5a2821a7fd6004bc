// OpenAI stream usage: asking the upstream for it (request rewrite) and hiding it from the client (response stripper).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dialect } from '../../src/dialects/index.ts';
import { createUsageStripper, requestStreamUsage } from '../../src/dialects/openai-stream-usage.ts';
import { loadFixture, segments, splitEvery, splitRandom } from '../helpers/fixtures.ts';

const INSERT = '"stream_options":{"include_usage":true},';

function rewrite(path: string, rawText: string): string | null {
  const raw = Buffer.from(rawText);
  const r = requestStreamUsage(path, JSON.parse(rawText), raw);
  return r ? r.body.toString('utf8') : null;
}

describe('requestStreamUsage', () => {
  it('inserts the option right after the first "{" and leaves every other byte as the client sent it', () => {
    const raw = '{"model":"gpt-4o","stream":true,"temperature":1.0,"top_p":0.50,"seed":12345678901234567890,"max_tokens":1e3,"messages":[{"role":"user","content":"caf\\u00e9 \u00e9 \\"q\\""}]}';
    const out = rewrite('/v1/chat/completions', raw);
    assert.equal(out, `{${INSERT}"model":"gpt-4o","stream":true,"temperature":1.0,"top_p":0.50,"seed":12345678901234567890,"max_tokens":1e3,"messages":[{"role":"user","content":"caf\\u00e9 \u00e9 \\"q\\""}]}`);
    // byte-level: the output is the input with exactly INSERT spliced in after byte 0
    const inBytes = Buffer.from(raw);
    const outBytes = Buffer.from(out!);
    assert.equal(outBytes.length, inBytes.length + Buffer.byteLength(INSERT));
    assert.ok(outBytes.subarray(0, 1).equals(inBytes.subarray(0, 1)));
    assert.equal(outBytes.subarray(1, 1 + Buffer.byteLength(INSERT)).toString(), INSERT);
    assert.ok(outBytes.subarray(1 + Buffer.byteLength(INSERT)).equals(inBytes.subarray(1)));
    // and it still parses, with the option set
    assert.deepEqual((JSON.parse(out!) as { stream_options: unknown }).stream_options, { include_usage: true });
  });

  it('keeps leading whitespace and pretty-printing; inserts after the first "{" only', () => {
    const raw = '  {\n  "model": "gpt-4o",\n  "stream": true,\n  "messages": [ { "role": "user", "content": "{x}" } ]\n}\n';
    assert.equal(rewrite('/v1/chat/completions', raw), `  {${INSERT}\n  "model": "gpt-4o",\n  "stream": true,\n  "messages": [ { "role": "user", "content": "{x}" } ]\n}\n`);
  });

  it('also for /v1/completions', () => {
    const raw = '{"model":"babbage-002","prompt":"def fib(n):","stream":true,"max_tokens":25}';
    assert.equal(rewrite('/v1/completions', raw), `{${INSERT}"model":"babbage-002","prompt":"def fib(n):","stream":true,"max_tokens":25}`);
  });

  it('returns null when the client asked for usage itself, for non-stream bodies and for other paths', () => {
    assert.equal(rewrite('/v1/chat/completions', '{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[]}'), null);
    assert.equal(rewrite('/v1/chat/completions', '{"model":"gpt-4o","messages":[]}'), null);
    assert.equal(rewrite('/v1/chat/completions', '{"model":"gpt-4o","stream":false,"messages":[]}'), null);
    assert.equal(rewrite('/v1/chat/completions', '{"model":"gpt-4o","stream":"true","messages":[]}'), null);
    assert.equal(rewrite('/v1/embeddings', '{"model":"text-embedding-3-small","stream":true,"input":"x"}'), null);
    assert.equal(rewrite('/v1/responses', '{"model":"gpt-4.1","stream":true,"input":"x"}'), null);
    assert.equal(rewrite('/v1/models', '{"stream":true}'), null);
  });

  it('sets include_usage in an existing stream_options object that lacks it, keeping its other options', () => {
    const out = rewrite('/v1/chat/completions', '{"model":"gpt-4o","stream":true,"stream_options":{"include_obfuscation":false},"messages":[{"role":"user","content":"hi"}]}');
    assert.notEqual(out, null);
    const parsed = JSON.parse(out!) as Record<string, unknown>;
    assert.deepEqual(parsed.stream_options, { include_obfuscation: false, include_usage: true });
    assert.deepEqual(parsed.messages, [{ role: 'user', content: 'hi' }]);
    assert.equal(parsed.model, 'gpt-4o');
    const explicitOff = rewrite('/v1/chat/completions', '{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false},"messages":[]}');
    assert.deepEqual((JSON.parse(explicitOff!) as Record<string, unknown>).stream_options, { include_usage: true });
  });

  it('with an existing stream_options object, the other bytes (numbers like 12345678901234567890 and 1.0) still reach the upstream unchanged', () => {
    const out = rewrite('/v1/chat/completions', '{"model":"gpt-4o","stream":true,"stream_options":{},"temperature":1.0,"seed":12345678901234567890,"messages":[]}');
    assert.notEqual(out, null);
    // JSON.parse turns this seed into 12345678901234567000: re-serialising the body changes the request
    assert.ok(out!.includes('"seed":12345678901234567890'), `seed changed: ${out}`);
    assert.ok(out!.includes('"temperature":1.0'), `temperature changed: ${out}`);
  });

  it('the openai dialect rewrites only when stream usage is on; the other dialects never', () => {
    const raw = Buffer.from('{"model":"gpt-4o","stream":true,"messages":[]}');
    const body = JSON.parse(raw.toString()) as unknown;
    const oa = dialect('openai');
    assert.equal(oa.rewriteRequest!('/v1/chat/completions', body, raw, { streamUsage: false }), null);
    assert.equal(oa.rewriteRequest!('/v1/chat/completions', body, raw, { streamUsage: true })!.body.toString(), `{${INSERT}"model":"gpt-4o","stream":true,"messages":[]}`);
    assert.equal(dialect('anthropic').rewriteRequest, undefined);
    assert.equal(dialect('ollama').rewriteRequest, undefined);
  });
});

function strip(pieces: Buffer[]): Buffer {
  const t = createUsageStripper();
  const out = pieces.map((p) => t.push(p));
  out.push(t.end());
  return Buffer.concat(out);
}

/** What the client would have seen without include_usage, built from the upstream's events by parsing them. */
function expectedWithoutUsage(buf: Buffer): { events: (Record<string, unknown> | '[DONE]')[]; dropped: number } {
  const events: (Record<string, unknown> | '[DONE]')[] = [];
  let dropped = 0;
  for (const s of segments(buf, 'sse')) {
    const data = s.text.replace(/^data: /, '').trim();
    if (data === '[DONE]') {
      events.push('[DONE]');
      continue;
    }
    const o = JSON.parse(data) as Record<string, unknown>;
    if (Array.isArray(o.choices) && o.choices.length === 0 && o.usage && typeof o.usage === 'object') {
      dropped++;
      continue;
    }
    delete o.usage;
    events.push(o);
  }
  return { events, dropped };
}

function parsedEvents(out: Buffer): (Record<string, unknown> | '[DONE]')[] {
  return segments(out, 'sse').map((s) => {
    assert.match(s.text, /^data: .*\n\n$/s, `event framing: ${JSON.stringify(s.text.slice(0, 80))}`);
    const data = s.text.slice(6, -2);
    return data === '[DONE]' ? '[DONE]' : (JSON.parse(data) as Record<string, unknown>);
  });
}

describe('createUsageStripper', () => {
  const rel = 'openai/chat_stream_include_usage_details.sse';
  const buf = loadFixture(rel);
  const original = segments(buf, 'sse');

  it(`${rel}: by hand, the first event loses exactly ,"usage":null and the usage chunk is gone`, () => {
    assert.equal(original.length, 4, 'role chunk, finish chunk, usage chunk, [DONE]');
    const out = strip([buf]).toString('utf8');
    const first =
      'data: {"id":"chatcmpl-C4Hq5a6K3RaPMymUv70btQNYv6SvY","object":"chat.completion.chunk","created":1755137921,"model":"gpt-5-nano-2025-08-07","service_tier":"default","system_fingerprint":null,"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"finish_reason":null}],"obfuscation":"WuQNX"}\n\n';
    const second =
      'data: {"id":"chatcmpl-C4Hq5a6K3RaPMymUv70btQNYv6SvY","object":"chat.completion.chunk","created":1755137921,"model":"gpt-5-nano-2025-08-07","service_tier":"default","system_fingerprint":null,"choices":[{"index":0,"delta":{},"finish_reason":"length"}],"obfuscation":"IPio8PDeczEmdPr"}\n\n';
    assert.equal(out, first + second + 'data: [DONE]\n\n');
  });

  for (const seed of [0, 1, 2, 3, 99, 2024]) {
    it(`${rel}: random splits (seed ${seed}) give no "usage" key, the same non-usage events, each the original minus ,"usage":null`, () => {
      const out = strip(splitRandom(buf, seed, 1, 60));
      const text = out.toString('utf8');
      assert.ok(!text.includes('"usage"'), 'no usage key left');
      assert.ok(text.endsWith('data: [DONE]\n\n'));
      const want = expectedWithoutUsage(buf);
      assert.equal(want.dropped, 1);
      const got = parsedEvents(out);
      assert.equal(got.length, original.length - 1);
      assert.deepEqual(got, want.events);
      // raw layout: each kept event is the original text with ,"usage":null cut out, nothing else touched
      const keptOriginals = original.filter((s) => !s.text.includes('"choices":[],"usage":{'));
      assert.deepEqual(segments(out, 'sse').map((s) => s.text), keptOriginals.map((s) => s.text.replace(',"usage":null', '')));
    });
  }

  it(`${rel}: one byte at a time gives the same bytes as whole`, () => {
    assert.ok(strip(splitEvery(buf, 1)).equals(strip([buf])));
  });

  it('adds no buffering: each whole event pushed comes out at once; a partial event waits only for its own end', () => {
    const t = createUsageStripper();
    for (const s of original) {
      const ev = Buffer.from(s.text);
      const out = t.push(ev).toString('utf8');
      if (s.text.includes('"choices":[],"usage":{')) assert.equal(out, '');
      else assert.equal(out, s.text.replace(',"usage":null', ''));
    }
    assert.equal(t.end().length, 0);
    const t2 = createUsageStripper();
    const ev = Buffer.from(original[0]!.text);
    assert.equal(t2.push(ev.subarray(0, 50)).length, 0);
    assert.equal(t2.push(ev.subarray(50)).toString(), original[0]!.text.replace(',"usage":null', ''));
  });

  it('completions_stream_include_usage.sse: "usage":null as the last key is removed too; the usage chunk goes', () => {
    const b = loadFixture('openai/completions_stream_include_usage.sse');
    const out = strip(splitRandom(b, 11, 1, 40));
    const text = out.toString('utf8');
    assert.ok(!text.includes('"usage"'));
    const want = expectedWithoutUsage(b);
    assert.equal(want.dropped, 1);
    assert.deepEqual(parsedEvents(out), want.events);
    assert.deepEqual(
      segments(out, 'sse').map((s) => s.text),
      segments(b, 'sse').filter((s) => !s.text.includes('"usage":{')).map((s) => s.text.replace(',"usage":null', '')),
    );
  });

  it('chat_stream_include_usage.sse (no per-chunk nulls): only the usage chunk is removed', () => {
    const b = loadFixture('openai/chat_stream_include_usage.sse');
    const out = strip(splitRandom(b, 5, 1, 80));
    const kept = segments(b, 'sse').filter((s) => !s.text.includes('"choices":[],"usage":{'));
    assert.equal(kept.length, segments(b, 'sse').length - 1);
    assert.equal(out.toString('utf8'), kept.map((s) => s.text).join(''));
  });

  it('a stream without usage passes byte for byte (chat_stream_no_usage.sse, multi-byte characters split)', () => {
    const b = loadFixture('openai/chat_stream_no_usage.sse');
    assert.ok(strip(splitRandom(b, 8, 1, 7)).equals(b));
  });

  it("llama.cpp's finish chunk (usage with non-empty choices) is kept whole", () => {
    const b = loadFixture('llamacpp/chat_stream_abridged.sse');
    assert.ok(strip(splitRandom(b, 4, 1, 30)).equals(b));
  });

  it('CRLF-framed events are handled the same way', () => {
    const crlf = Buffer.from(buf.toString('utf8').replace(/\n/g, '\r\n'));
    const out = strip(splitRandom(crlf, 6, 1, 50)).toString('utf8');
    assert.ok(!out.includes('"usage"'));
    assert.ok(out.endsWith('data: [DONE]\r\n\r\n'));
    assert.equal(out.split('data: ').length - 1, 3);
  });
});
