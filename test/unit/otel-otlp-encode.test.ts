// The hand-written OTLP encoders against the proto definitions: every span of a long, varied sequence decodes to what was appended.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createJsonBatchEncoder, createProtobufBatchEncoder, type EncodeContext } from '../../otel/otlp-encode.ts';
import { KIND, type AttrValue, type SpanAttrs, type SpanData } from '../../otel/span-data.ts';
import { seededRandom as rng } from '../helpers/fixtures.ts';
import { decodeOtlp, type Attrs, type ReceivedSpan } from '../helpers/otlp-receiver.ts';

const CTX: EncodeContext = { resource: { 'service.name': 'llmtap', 'service.version': '1.2.3', 'host.name': 'h' }, scope: { name: 'llmtap', version: '1.2.3' } };

const hex = (r: () => number, n: number): string => Array.from({ length: n }, () => Math.floor(r() * 16).toString(16)).join('');

/**
 * Attribute lists shaped like llmtap's (the same keys in the same order, most values repeating), with what
 * breaks a cache by position: optional keys that come and go (positions shift), values that change after
 * repeating, ids that never repeat, numbers of every kind, arrays, long and non-ASCII strings.
 */
function attrsOf(r: () => number, i: number): SpanAttrs {
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const a: SpanAttrs = ['gen_ai.provider.name', pick(['openai', 'openai', 'openai', 'anthropic']), 'server.port', pick([8080, 8080, 443])];
  if (r() < 0.3) a.push('gen_ai.request.temperature', pick([0.2, 0.7, 1]));
  a.push('llmtap.exchange.id', `x${i}-${hex(r, 6)}`);
  a.push('gen_ai.request.model', i < 150 ? 'gpt-4o-mini' : pick(['gpt-4o-mini', 'claude-sonnet', 'llama3.2:1b']));
  if (r() < 0.2) a.push('gen_ai.request.seed', pick([-1, -123456789, 42, 2 ** 40]));
  a.push('gen_ai.response.finish_reasons', pick([['stop'], ['length', 'stop'], [] as string[]]));
  a.push('gen_ai.usage.output_tokens', pick([12, 12, 12, Math.floor(r() * 100_000)]));
  a.push('gen_ai.request.stream', pick([true, false, false]));
  a.push('http.response.status_code', pick([200, 200, 200, 429, 500]));
  a.push('gen_ai.request.stop_sequences', r() < 0.1 ? ['\n\n', null, 'END'] : undefined);
  a.push('llmtap.note', r() < 0.1 ? 'é'.repeat(70) + `${i}` : pick(['ok', 'ok', 'ünïcode', 'x'.repeat(130), null]));
  a.push('llmtap.ratio', pick([0.5, 1e-9, -2.5, Number.MAX_SAFE_INTEGER, 0]));
  return a;
}

function spansOf(seed: number, count: number): SpanData[] {
  const r = rng(seed);
  const out: SpanData[] = [];
  for (let i = 0; i < count; i++) {
    const server = r() < 0.5;
    out.push({
      traceId: hex(r, 32),
      spanId: hex(r, 16),
      parentSpanId: server && r() < 0.5 ? null : hex(r, 16),
      parentRemote: server,
      traceState: r() < 0.1 ? 'vendor=1' : null,
      name: server ? 'POST /v1/chat/completions' : `chat gpt-${i % 3}`,
      kind: server ? KIND.server : KIND.client,
      start: 1000 + i,
      end: 1000 + i + r() * 50,
      attributes: attrsOf(r, i),
      events: r() < 0.4 ? [{ name: 'gen_ai.content.first_chunk', at: 1000 + i + 1, attributes: ['gen_ai.response.time_to_first_chunk', pick01(r)] }] : [],
      statusCode: r() < 0.1 ? 2 : 0,
      statusMessage: null,
    });
  }
  return out;
}

function pick01(r: () => number): number {
  return r() < 0.5 ? 0.25 : Math.round(r() * 1000) / 1000;
}

/** What the receiver makes of an appended attribute list: null/undefined left out, arrays' missing items as null. */
function expectedAttrs(a: SpanAttrs): Attrs {
  const out: Attrs = {};
  for (let i = 0; i < a.length; i += 2) {
    const v = a[i + 1] as AttrValue | null | undefined;
    if (v === null || v === undefined) continue;
    out[a[i] as string] = Array.isArray(v) ? v.map((x) => (x === undefined ? null : x)) : (v as string | number | boolean);
  }
  return out;
}

function check(got: ReceivedSpan[], sent: SpanData[]): void {
  assert.equal(got.length, sent.length);
  for (let i = 0; i < sent.length; i++) {
    const g = got[i]!;
    const s = sent[i]!;
    assert.equal(g.traceId, s.traceId, `span ${i}: trace id`);
    assert.equal(g.spanId, s.spanId, `span ${i}: span id`);
    assert.equal(g.parentSpanId, s.parentSpanId ?? '', `span ${i}: parent`);
    assert.equal(g.name, s.name);
    assert.equal(g.kind, s.kind + 1);
    assert.deepEqual(g.attributes, expectedAttrs(s.attributes), `span ${i}: attributes`);
    assert.deepEqual(
      g.events.map((e) => ({ name: e.name, attributes: e.attributes })),
      s.events.map((e) => ({ name: e.name, attributes: expectedAttrs(e.attributes) })),
      `span ${i}: events`,
    );
    assert.equal(g.status.code, s.statusCode);
    assert.equal(g.resource['service.name'], 'llmtap');
  }
}

describe('OTLP protobuf batch encoder', () => {
  for (const seed of [1, 2, 3]) {
    it(`decodes to every span appended, attribute for attribute, over 600 varied spans in batches (seed ${seed})`, () => {
      const enc = createProtobufBatchEncoder(CTX);
      const spans = spansOf(seed, 600);
      const got: ReceivedSpan[] = [];
      let from = 0;
      // Batches of uneven sizes, each body released for reuse as the exporter does once it is sent.
      for (const size of [1, 7, 200, 92, 300]) {
        for (const s of spans.slice(from, from + size)) enc.append(s);
        from += size;
        const body = enc.take();
        got.push(...decodeOtlp('/v1/traces', 'application/x-protobuf', body).spans);
        enc.release?.(body);
      }
      check(got, spans);
    });
  }

  it('leaves nothing of a span it cannot encode, and the spans after it decode whole', () => {
    const enc = createProtobufBatchEncoder(CTX);
    const [a, b, c] = spansOf(11, 3).map((s) => ({ ...s, kind: KIND.client }));
    enc.append(a!);
    // Not an attribute value (a caller outside the types), in an event: encoding throws once the span's attributes are written.
    const bad = { ...b!, attributes: [...c!.attributes], events: [{ name: 'e', at: 1, attributes: ['bad', { not: 'iterable' }] as unknown as SpanAttrs }] };
    assert.throws(() => enc.append(bad));
    enc.append(c!);
    enc.append({ ...a!, spanId: 'ab'.repeat(8) });
    const got = decodeOtlp('/v1/traces', 'application/x-protobuf', enc.take()).spans;
    check(got, [a!, c!, { ...a!, spanId: 'ab'.repeat(8) }]);
  });

  it('agrees with the OTLP/JSON encoder on the same spans', () => {
    const spans = spansOf(7, 300);
    const pb = createProtobufBatchEncoder(CTX);
    const json = createJsonBatchEncoder(CTX);
    for (const s of spans) {
      pb.append(s);
      json.append(s);
    }
    const a = decodeOtlp('/v1/traces', 'application/x-protobuf', pb.take()).spans;
    const b = decodeOtlp('/v1/traces', 'application/json', json.take()).spans;
    assert.deepEqual(
      a.map(({ protocol: _p, ...rest }) => rest),
      b.map(({ protocol: _p, ...rest }) => rest),
    );
  });
});
