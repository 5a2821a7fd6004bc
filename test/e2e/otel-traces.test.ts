// End to end: OpenAI, Anthropic and Ollama SDK calls through llmtap arrive at an OTLP/HTTP receiver as SERVER + CLIENT spans with the GenAI attributes, in http/json and http/protobuf.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import { configWith } from '../../src/config.ts';
import { startLlmtap, type RunningLlmtap } from '../../src/start.ts';
import { telemetryFeature } from '../../src/telemetry/feature.ts';
import { EVENT } from '../../otel/semconv.ts';
import { startMockUpstream, type MockUpstream, type ChatScript, type ReceivedRequest } from '../helpers/mock-upstream.ts';
import { startOtlpReceiver, SPAN_KIND, STATUS_CODE, type OtlpReceiver, type ReceivedSpan, type ReceivedPoint, type Protocol } from '../helpers/otlp-receiver.ts';

const PIECES = ['Traced', ' through', ' llmtap', '.'];
const FIRST_CHUNK_MS = 60;
const USAGE = { input: 17, output: 9, cached: 5, reasoning: 3 };
const PARAMS = { maxTokens: 64, temperature: 0.25, topP: 0.75 };

type Dialect = 'openai' | 'anthropic' | 'ollama';
interface Case {
  dialect: Dialect;
  stream: boolean;
}
const CASES: Case[] = (['openai', 'anthropic', 'ollama'] as const).flatMap((dialect) => [false, true].map((stream) => ({ dialect, stream })));

/** What the mock answers for a case: a response model and id that differ from the request's, so both are checked. */
function scriptFor(c: Case): ChatScript & { model: string; finishReason: string } {
  return {
    kind: 'chat',
    pieces: PIECES,
    model: `${c.dialect}-served-model-2025`,
    id: c.dialect === 'ollama' ? undefined : `resp-${c.dialect}-${c.stream ? 's' : 'n'}-${randomBytes(3).toString('hex')}`,
    finishReason: c.dialect === 'anthropic' ? 'end_turn' : 'stop',
    usage: USAGE,
    firstChunkDelayMs: FIRST_CHUNK_MS,
    gapMs: 5,
  };
}

const requestModel = (c: Case): string => `${c.dialect}-requested-${c.stream ? 'stream' : 'plain'}`;

/** Response headers of each fetch the SDKs made, and a traceparent to add to the next request (once). */
interface Spy {
  fetch: typeof fetch;
  lastHeaders(): Headers;
  nextTraceparent: string | null;
}

function spyFetch(): Spy {
  let last: Headers | null = null;
  const spy: Spy = {
    nextTraceparent: null,
    lastHeaders: () => {
      assert.ok(last, 'the SDK made a request');
      return last;
    },
    fetch: async (input, init) => {
      const headers = new Headers(init?.headers);
      if (spy.nextTraceparent) {
        headers.set('traceparent', spy.nextTraceparent);
        spy.nextTraceparent = null;
      }
      const res = await fetch(input, { ...init, headers });
      last = res.headers;
      return res;
    },
  };
  return spy;
}

/** Runs one SDK call of a case to completion; returns the text the client got. */
async function call(c: Case, base: string, spy: Spy): Promise<string> {
  const model = requestModel(c);
  const content = 'Say something traceable';
  if (c.dialect === 'openai') {
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-test', maxRetries: 0, fetch: spy.fetch });
    const body = { model, messages: [{ role: 'user' as const, content }], max_tokens: PARAMS.maxTokens, temperature: PARAMS.temperature, top_p: PARAMS.topP };
    if (!c.stream) return (await client.chat.completions.create(body)).choices[0]!.message.content ?? '';
    let text = '';
    for await (const chunk of await client.chat.completions.create({ ...body, stream: true })) text += chunk.choices[0]?.delta?.content ?? '';
    return text;
  }
  if (c.dialect === 'anthropic') {
    const client = new Anthropic({ baseURL: base, apiKey: 'sk-ant-test', maxRetries: 0, fetch: spy.fetch });
    const body = { model, max_tokens: PARAMS.maxTokens, temperature: PARAMS.temperature, top_p: PARAMS.topP, messages: [{ role: 'user' as const, content }] };
    if (!c.stream) {
      const msg = await client.messages.create(body);
      return msg.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
    }
    let text = '';
    for await (const ev of await client.messages.create({ ...body, stream: true })) {
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
    }
    return text;
  }
  const client = new Ollama({ host: base, fetch: spy.fetch });
  const options = { num_predict: PARAMS.maxTokens, temperature: PARAMS.temperature, top_p: PARAMS.topP };
  if (!c.stream) return (await client.chat({ model, messages: [{ role: 'user', content }], stream: false, options })).message.content;
  let text = '';
  for await (const part of await client.chat({ model, messages: [{ role: 'user', content }], stream: true, options })) text += part.message.content;
  return text;
}

function traceparentOf(req: ReceivedRequest): { traceId: string; parentId: string } {
  const tp = req.headers.traceparent;
  assert.equal(typeof tp, 'string', `the upstream request carries a traceparent (headers: ${Object.keys(req.headers).join(', ')})`);
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/.exec(tp as string);
  assert.ok(m, `traceparent ${String(tp)} is W3C version 00`);
  return { traceId: m[1]!, parentId: m[2]! };
}

/** The SERVER and CLIENT spans of one trace, once both arrived. */
async function spansOfTrace(receiver: OtlpReceiver, traceId: string): Promise<{ server: ReceivedSpan; client: ReceivedSpan; all: ReceivedSpan[] }> {
  const pick = (spans: ReceivedSpan[]) => spans.filter((s) => s.traceId === traceId);
  const all = pick(await receiver.waitForSpans((spans) => {
    const mine = pick(spans);
    return mine.some((s) => s.kind === SPAN_KIND.SERVER) && mine.some((s) => s.kind === SPAN_KIND.CLIENT);
  }, 8000));
  const servers = all.filter((s) => s.kind === SPAN_KIND.SERVER);
  const clients = all.filter((s) => s.kind === SPAN_KIND.CLIENT);
  assert.equal(servers.length, 1, `one SERVER span per request (got ${servers.map((s) => s.name).join(', ')})`);
  assert.equal(clients.length, 1, `one CLIENT span per upstream call (got ${clients.map((s) => s.name).join(', ')})`);
  return { server: servers[0]!, client: clients[0]!, all };
}

function near(actual: unknown, expected: number, tolerance: number, what: string): void {
  assert.equal(typeof actual, 'number', `${what} is a number (got ${JSON.stringify(actual)})`);
  assert.ok(Math.abs((actual as number) - expected) <= tolerance, `${what} = ${String(actual)}, expected ${expected} ± ${tolerance}`);
}

/** Every CONTRACT §3 attribute of the CLIENT span, with the values the mock produced. */
function assertClientSpan(c: Case, span: ReceivedSpan, server: ReceivedSpan, mock: MockUpstream, upstreamReq: ReceivedRequest, script: ReturnType<typeof scriptFor>): void {
  const a = span.attributes;
  const operation = 'chat';
  assert.equal(span.name, `${operation} ${requestModel(c)}`, 'CLIENT span is named "{operation} {model}"');
  assert.equal(span.kind, SPAN_KIND.CLIENT);
  assert.equal(span.parentSpanId, server.spanId, 'the CLIENT span is a child of the SERVER span');
  assert.ok(span.startNs >= server.startNs && span.endNs <= server.endNs + 5_000_000n, 'the CLIENT span lies within the SERVER span');
  assert.notEqual(span.status.code, STATUS_CODE.ERROR, 'a successful call is not an error');

  assert.equal(a['gen_ai.operation.name'], operation);
  assert.equal(a['gen_ai.provider.name'], c.dialect);
  assert.equal(a['gen_ai.request.model'], requestModel(c));
  assert.equal(a['gen_ai.request.stream'], c.stream);
  assert.equal(a['gen_ai.request.max_tokens'], PARAMS.maxTokens);
  assert.equal(a['gen_ai.request.temperature'], PARAMS.temperature);
  assert.equal(a['gen_ai.request.top_p'], PARAMS.topP);
  if (script.id) assert.equal(a['gen_ai.response.id'], script.id);
  else assert.equal(a['gen_ai.response.id'], undefined, 'no response id when the upstream gives none');
  assert.equal(a['gen_ai.response.model'], script.model);
  assert.deepEqual(a['gen_ai.response.finish_reasons'], [script.finishReason]);
  // The convention counts every input token, cached ones included: OpenAI's prompt_tokens already does, Anthropic's
  // input_tokens leaves out cache reads (and writes, 0 here), so they are added.
  assert.equal(a['gen_ai.usage.input_tokens'], c.dialect === 'anthropic' ? USAGE.input + USAGE.cached : USAGE.input);
  assert.equal(a['gen_ai.usage.output_tokens'], USAGE.output);
  // Reported only by some dialects: OpenAI cached_tokens / reasoning_tokens, Anthropic cache_read_input_tokens.
  if (c.dialect === 'openai') {
    assert.equal(a['gen_ai.usage.cache_read.input_tokens'], USAGE.cached);
    assert.equal(a['gen_ai.usage.reasoning.output_tokens'], USAGE.reasoning);
  } else if (c.dialect === 'anthropic') {
    assert.equal(a['gen_ai.usage.cache_read.input_tokens'], USAGE.cached);
    assert.equal(a['gen_ai.usage.reasoning.output_tokens'], undefined);
  } else {
    assert.equal(a['gen_ai.usage.cache_read.input_tokens'], undefined);
    assert.equal(a['gen_ai.usage.reasoning.output_tokens'], undefined);
  }
  assert.equal(a['server.address'], '127.0.0.1');
  assert.equal(a['server.port'], mock.port);
  assert.equal(a['http.response.status_code'], 200);
  assert.equal(a['error.type'], undefined, 'no error.type on success');

  // Body sizes: what went to the upstream, and what came back from it.
  assert.equal(a['http.request.body.size'], upstreamReq.body.length, 'request body size = bytes the upstream received');
  assert.equal(a['http.response.body.size'], upstreamReq.bytesSent, 'response body size = bytes the upstream sent');

  if (c.stream) {
    // Head goes out at once, the first content FIRST_CHUNK_MS later: seconds, as the convention says.
    near(a['gen_ai.response.time_to_first_chunk'], FIRST_CHUNK_MS / 1000, 0.2, 'gen_ai.response.time_to_first_chunk (s)');
    assert.ok((a['gen_ai.response.time_to_first_chunk'] as number) >= (FIRST_CHUNK_MS - 5) / 1000, 'time to first chunk is not shorter than the programmed delay');
    const ev = span.events.find((e) => e.name === EVENT.firstChunk);
    assert.ok(ev, `a "${EVENT.firstChunk}" event on the CLIENT span (events: ${span.events.map((e) => e.name).join(', ') || 'none'})`);
    assert.ok(ev.timeNs >= span.startNs && ev.timeNs <= span.endNs, 'the first-chunk event lies within the span');
    const atMs = Number(ev.timeNs - span.startNs) / 1e6;
    assert.ok(atMs >= FIRST_CHUNK_MS - 5, `the event is at the first content chunk (${atMs.toFixed(1)} ms after the span start, delay ${FIRST_CHUNK_MS} ms)`);
  } else {
    assert.equal(a['gen_ai.response.time_to_first_chunk'], undefined, 'no time to first chunk for a non-streamed call');
  }
}

function assertServerSpan(span: ReceivedSpan, path: string): void {
  assert.equal(span.kind, SPAN_KIND.SERVER);
  assert.equal(span.attributes['http.request.method'], 'POST');
  assert.equal(span.attributes['http.response.status_code'], 200);
  assert.match(span.name, /^POST\b/, `SERVER span name starts with the method (got "${span.name}")`);
  const p = span.attributes['url.path'];
  if (p !== undefined) assert.equal(p, path);
  assert.equal(span.resource['service.name'], 'llmtap-otel-test', 'OTEL_SERVICE_NAME names the resource');
}

const PATH: Record<Dialect, string> = { openai: '/v1/chat/completions', anthropic: '/v1/messages', ollama: '/api/chat' };

for (const protocol of ['http/protobuf', 'http/json'] as const satisfies readonly Protocol[]) {
  describe(`OTLP traces over ${protocol}`, () => {
    let mock: MockUpstream;
    let receiver: OtlpReceiver;
    let proxy: RunningLlmtap;
    const spy = spyFetch();

    before(async () => {
      mock = await startMockUpstream();
      receiver = await startOtlpReceiver();
      proxy = await startLlmtap(configWith({ port: 0, openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: mock.url, logLevel: 'silent', maxBodyMb: 1 }), {
        features: [telemetryFeature],
        env: {
          OTEL_SERVICE_NAME: 'llmtap-otel-test',
          OTEL_TRACES_EXPORTER: 'otlp',
          OTEL_METRICS_EXPORTER: 'otlp',
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
          OTEL_BSP_SCHEDULE_DELAY: '50',
          OTEL_METRIC_EXPORT_INTERVAL: '300',
        },
      });
    });

    after(async () => {
      await proxy?.close();
      await receiver?.close();
      await mock?.close();
    });

    beforeEach(() => {
      mock.reset();
    });

    for (const c of CASES) {
      it(`${c.dialect} ${c.stream ? 'streaming' : 'non-streaming'}: SERVER + CLIENT spans with every GenAI attribute; trace id = x-llmtap-trace-id = upstream traceparent`, async () => {
        const script = scriptFor(c);
        mock.handle(script);
        const text = await call(c, proxy.url, spy);
        assert.equal(text, PIECES.join(''), 'the client got the whole answer');

        const traceId = spy.lastHeaders().get('x-llmtap-trace-id');
        assert.match(traceId ?? '', /^[0-9a-f]{32}$/, 'the response carries x-llmtap-trace-id');
        const upstreamReq = await mock.waitForRequest((r) => r.path === PATH[c.dialect]);
        const sent = traceparentOf(upstreamReq);
        assert.equal(sent.traceId, traceId, 'the upstream received the same trace id');

        const { server, client } = await spansOfTrace(receiver, traceId!);
        assert.equal(server.parentSpanId, '', 'without an incoming traceparent the SERVER span is a root');
        assertServerSpan(server, PATH[c.dialect]);
        assertClientSpan(c, client, server, mock, upstreamReq, script);
        assert.equal(sent.parentId, client.spanId, 'the traceparent sent upstream names the CLIENT span as parent');
        assert.ok(receiver.exports.filter((e) => e.path === '/v1/traces').every((e) => e.protocol === protocol && e.error === null), `every trace export was ${protocol} and decoded`);
      });
    }

    it('an incoming traceparent is continued: same trace id in the spans, x-llmtap-trace-id and upstream; SERVER span is its child', async () => {
      const c: Case = { dialect: 'openai', stream: true };
      mock.handle(scriptFor(c));
      const incomingTrace = randomBytes(16).toString('hex');
      const incomingSpan = randomBytes(8).toString('hex');
      spy.nextTraceparent = `00-${incomingTrace}-${incomingSpan}-01`;
      await call(c, proxy.url, spy);

      assert.equal(spy.lastHeaders().get('x-llmtap-trace-id'), incomingTrace);
      const upstreamReq = await mock.waitForRequest((r) => r.path === PATH.openai);
      const sent = traceparentOf(upstreamReq);
      assert.equal(sent.traceId, incomingTrace, 'the upstream traceparent continues the incoming trace');
      const { server, client } = await spansOfTrace(receiver, incomingTrace);
      assert.equal(server.parentSpanId, incomingSpan, "the SERVER span's parent is the caller's span");
      assert.equal(client.parentSpanId, server.spanId);
      assert.equal(sent.parentId, client.spanId);
    });

    it('x-llmtap-trace-id on every kind of response: a relayed upstream error, llmtap refusing a body, a path it does not proxy', async () => {
      const ids = new Set<string>();
      const idOf = (r: Response, what: string): string => {
        const id = r.headers.get('x-llmtap-trace-id');
        assert.match(id ?? '', /^[0-9a-f]{32}$/, `${what}: the response carries x-llmtap-trace-id`);
        ids.add(id!);
        return id!;
      };
      mock.handle({ kind: 'raw', status: 500, headers: { 'content-type': 'application/json' }, body: '{"error":{"message":"boom"}}' });
      const relayed = await fetch(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [] }) });
      assert.equal(relayed.status, 500);
      assert.equal(await relayed.text(), '{"error":{"message":"boom"}}', "the upstream's error body, unchanged");
      const relayedId = idOf(relayed, 'relayed upstream 500');
      const { server } = await spansOfTrace(receiver, relayedId);
      assert.equal(server.attributes['http.response.status_code'], 500, 'the header names the trace of this very request');

      const tooLarge = await fetch(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(2 * 1024 * 1024) });
      assert.equal(tooLarge.status, 413);
      assert.equal(tooLarge.headers.get('x-llmtap-error'), 'LLMTAP_BODY_TOO_LARGE');
      idOf(tooLarge, "llmtap's own 413");

      const notProxied = await fetch(`${proxy.url}/not-a-proxied-path`);
      assert.equal(notProxied.status, 404);
      idOf(notProxied, 'a path llmtap does not proxy');
      assert.equal(ids.size, 3, 'each response names its own trace');
    });

    it(`metrics go out over OTLP ${protocol} too: token usage per type with the mock's counts`, async () => {
      const sumOf = (points: ReceivedPoint[], type: string): number =>
        points
          .filter((p) => p.attributes['gen_ai.token.type'] === type && p.attributes['gen_ai.provider.name'] === 'ollama')
          .reduce((sum, p) => sum + (p.sum ?? 0), 0);
      // Cumulative temporality: the newest export holds the two Ollama calls of this suite (bounded wait for it).
      let metric = await receiver.waitForMetric('gen_ai.client.token.usage', 5000);
      for (let i = 0; i < 40 && sumOf(metric.points, 'input') < 2 * USAGE.input; i++) {
        await new Promise((r) => setTimeout(r, 100));
        metric = await receiver.waitForMetric('gen_ai.client.token.usage', 1000);
      }
      assert.equal(metric.protocol, protocol);
      assert.equal(metric.type, 'histogram');
      assert.equal(sumOf(metric.points, 'input'), 2 * USAGE.input);
      assert.equal(sumOf(metric.points, 'output'), 2 * USAGE.output);
    });
  });
}
