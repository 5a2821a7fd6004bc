// Spans from exchange records: names, kinds, parent/child, every attribute per dialect, the first-chunk event, errors, traceparent.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { hrTimeToNanoseconds } from '@opentelemetry/core';
import { readTelemetrySettings, startTelemetry, EVENT, type Telemetry, type TelemetryCall, type TelemetryExchange } from '../../otel/index.ts';

const UPSTREAM = { openai: 'http://127.0.0.1:8101', anthropic: 'https://api.anthropic.com', ollama: 'http://localhost:11434' } as const;
const PATHS = { openai: '/v1/chat/completions', anthropic: '/v1/messages', ollama: '/api/chat' } as const;
type Dialect = keyof typeof UPSTREAM;

function callOf(dialect: Dialect, stream: boolean, id: string): TelemetryCall {
  return {
    id,
    dialect,
    operation: 'chat',
    model: `${dialect}-model`,
    stream,
    params: { maxTokens: 64, temperature: 0.5, topP: 0.9, stopSequences: ['END'] },
    method: 'POST',
    upstream: { name: dialect, url: UPSTREAM[dialect], origin: UPSTREAM[dialect] },
    path: PATHS[dialect],
  };
}

function recordOf(call: TelemetryCall, over: Partial<TelemetryExchange> = {}): TelemetryExchange {
  return {
    id: call.id,
    method: 'POST',
    url: `${call.path}?x=1`,
    dialect: call.dialect,
    upstream: { name: call.upstream.name, url: call.upstream.url },
    operation: call.operation,
    model: call.model,
    responseModel: `${call.model}-2025`,
    responseId: `resp-${call.id}`,
    stream: call.stream,
    params: call.params,
    status: 200,
    outcome: 'ok',
    errorType: null,
    errorMessage: null,
    finishReasons: ['stop'],
    timings: { ttfb: 3, ttft: call.stream ? 7 : null, duration: 20, timePerOutputToken: call.stream ? 1.3 : null, overhead: 0.4 },
    usage: { input: 12, output: 10, cacheRead: call.dialect === 'ollama' ? null : 4, cacheWrite: null, reasoning: call.dialect === 'openai' ? 2 : null, source: 'reported' },
    bytes: { requestIn: 100, requestOut: 130, responseIn: 900, responseOut: 880 },
    ...over,
  };
}

const attrs = (s: ReadableSpan) => s.attributes as Record<string, unknown>;

describe('spans', () => {
  const exporter = new InMemorySpanExporter();
  let t: Telemetry;

  before(async () => {
    t = await startTelemetry(readTelemetrySettings({ OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none', OTEL_SERVICE_NAME: 'unit' }), {
      env: {},
      serviceVersion: '9.9.9',
      maxModels: 10,
      activeRequests: () => 0,
      onExportFailure: () => {},
      warn: () => {},
      extraSpanExporters: [exporter],
    });
  });
  after(() => t.sdk.shutdown());

  /** Runs one exchange through the recorder as the proxy would; returns its spans and the headers sent upstream. */
  async function run(call: TelemetryCall, over: Partial<TelemetryExchange> = {}, incoming: Record<string, string> = {}) {
    exporter.reset();
    const rs = t.spans.begin('POST', call.path, incoming);
    const headers = Object.fromEntries(rs.upstream(call));
    const record = recordOf(call, over);
    // The record's duration runs from the request's arrival; let real time pass so end times lie in the past.
    await new Promise((r) => setTimeout(r, record.timings.duration + 2));
    rs.end(record);
    await t.sdk.forceFlush();
    const spans = exporter.getFinishedSpans();
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    const client = spans.find((s) => s.kind === SpanKind.CLIENT)!;
    assert.equal(spans.length, 2, 'one SERVER and one CLIENT span');
    return { rs, headers, server, client, record };
  }

  for (const dialect of ['openai', 'anthropic', 'ollama'] as const) {
    for (const stream of [false, true]) {
      it(`${dialect} ${stream ? 'streaming' : 'non-streaming'}: names, kinds, parent/child, every attribute`, async () => {
        const call = callOf(dialect, stream, `${dialect}-${stream}`);
        const { rs, headers, server, client, record } = await run(call);
        assert.equal(server.name, `POST ${PATHS[dialect]}`);
        assert.equal(client.name, `chat ${dialect}-model`);
        assert.equal(client.parentSpanContext?.spanId, server.spanContext().spanId);
        assert.equal(server.parentSpanContext, undefined, 'no incoming traceparent: the SERVER span is a root');
        assert.equal(client.spanContext().traceId, rs.traceId);
        assert.equal(headers.traceparent, `00-${rs.traceId}-${client.spanContext().spanId}-01`, 'the upstream gets the CLIENT span as parent');
        assert.equal(server.resource.attributes['service.name'], 'unit');
        assert.equal(server.resource.attributes['service.version'], '9.9.9');
        assert.equal(typeof server.resource.attributes['host.name'], 'string');

        const u = new URL(UPSTREAM[dialect]);
        const expected: Record<string, unknown> = {
          'gen_ai.operation.name': 'chat',
          'gen_ai.provider.name': dialect,
          'gen_ai.request.model': `${dialect}-model`,
          'gen_ai.request.stream': stream,
          'gen_ai.request.max_tokens': 64,
          'gen_ai.request.temperature': 0.5,
          'gen_ai.request.top_p': 0.9,
          'gen_ai.request.stop_sequences': ['END'],
          'gen_ai.response.id': record.responseId,
          'gen_ai.response.model': record.responseModel,
          'gen_ai.response.finish_reasons': ['stop'],
          'gen_ai.usage.input_tokens': 12,
          'gen_ai.usage.output_tokens': 10,
          'server.address': u.hostname,
          'server.port': u.port ? Number(u.port) : 443,
          'http.request.method': 'POST',
          'http.response.status_code': 200,
          'http.request.body.size': 130,
          'http.response.body.size': 900,
          'llmtap.upstream': dialect,
          'llmtap.exchange.id': call.id,
          'llmtap.outcome': 'ok',
          'llmtap.usage.source': 'reported',
        };
        if (dialect !== 'ollama') expected['gen_ai.usage.cache_read.input_tokens'] = 4;
        if (dialect === 'openai') expected['gen_ai.usage.reasoning.output_tokens'] = 2;
        if (stream) expected['gen_ai.response.time_to_first_chunk'] = 0.007;
        assert.deepEqual(attrs(client), expected);
        assert.equal(client.status.code, SpanStatusCode.UNSET);

        assert.deepEqual(attrs(server), {
          'http.request.method': 'POST',
          'url.path': PATHS[dialect],
          'http.response.status_code': 200,
          'http.request.body.size': 100,
          'http.response.body.size': 880,
          'llmtap.exchange.id': call.id,
          'llmtap.outcome': 'ok',
        });
        const serverDurMs = (hrTimeToNanoseconds(server.endTime) - hrTimeToNanoseconds(server.startTime)) / 1e6;
        assert.ok(Math.abs(serverDurMs - 20) < 0.01, `SERVER span lasts the record's duration (${serverDurMs} ms)`);
        assert.ok(hrTimeToNanoseconds(client.startTime) >= hrTimeToNanoseconds(server.startTime));
        assert.ok(hrTimeToNanoseconds(client.endTime) <= hrTimeToNanoseconds(server.endTime));

        if (stream) {
          assert.equal(client.events.length, 1);
          const ev = client.events[0]!;
          assert.equal(ev.name, EVENT.firstChunk);
          const atMs = (hrTimeToNanoseconds(ev.time) - hrTimeToNanoseconds(client.startTime)) / 1e6;
          assert.ok(Math.abs(atMs - 7) < 0.01, `the first-chunk event is at CLIENT start + ttft (${atMs} ms)`);
        } else {
          assert.equal(client.events.length, 0);
        }
      });
    }
  }

  it('an upstream timeout: error.type and ERROR status on both spans', async () => {
    const call = callOf('openai', true, 'timeout');
    const { server, client } = await run(call, {
      status: 504,
      outcome: 'upstream_timeout',
      errorType: 'LLMTAP_UPSTREAM_TIMEOUT',
      errorMessage: 'no response head from openai within 50 ms',
      responseId: null,
      responseModel: null,
      finishReasons: [],
      timings: { ttfb: null, ttft: null, duration: 5, timePerOutputToken: null, overhead: 0.1 },
      usage: { input: null, output: null, cacheRead: null, cacheWrite: null, reasoning: null, source: 'none' },
    });
    assert.equal(attrs(client)['error.type'], 'LLMTAP_UPSTREAM_TIMEOUT');
    assert.deepEqual(client.status, { code: SpanStatusCode.ERROR, message: 'no response head from openai within 50 ms' });
    assert.equal(attrs(client)['gen_ai.usage.input_tokens'], undefined);
    assert.equal(attrs(client)['gen_ai.response.time_to_first_chunk'], undefined);
    assert.equal(attrs(server)['error.type'], 'LLMTAP_UPSTREAM_TIMEOUT');
    assert.equal(server.status.code, SpanStatusCode.ERROR);
  });

  it("an upstream 429: the CLIENT span is in error with error.type 429, the SERVER span is not (a client error)", async () => {
    const { server, client } = await run(callOf('anthropic', false, 'rate'), { status: 429, errorType: '429', errorMessage: null, finishReasons: [], responseId: null });
    assert.equal(attrs(client)['error.type'], '429');
    assert.equal(client.status.code, SpanStatusCode.ERROR);
    assert.equal(attrs(server)['error.type'], undefined);
    assert.equal(server.status.code, SpanStatusCode.UNSET);
  });

  it('an incoming traceparent is continued: same trace, SERVER span its child, sampled flag kept, tracestate passed on', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = '00f067aa0ba902b7';
    const { rs, headers, server, client } = await run(callOf('ollama', true, 'tp'), {}, { traceparent: `00-${traceId}-${parent}-01`, tracestate: 'vendor=x' });
    assert.equal(rs.traceId, traceId);
    assert.equal(server.spanContext().traceId, traceId);
    assert.equal(server.parentSpanContext?.spanId, parent);
    assert.equal(headers.traceparent, `00-${traceId}-${client.spanContext().spanId}-01`);
    assert.equal(headers.tracestate, 'vendor=x');
  });

  it("llmtap's own endpoints end the SERVER span with their status; a 404 keeps the bare method as its name", async () => {
    exporter.reset();
    t.spans.begin('GET', '/metrics', {}).endRequest(200);
    t.spans.begin('GET', '/random/path/123', {}).endRequest(404);
    await t.sdk.forceFlush();
    const [ok, missing] = exporter.getFinishedSpans();
    assert.equal(ok!.name, 'GET /metrics');
    assert.equal(attrs(ok!)['http.response.status_code'], 200);
    assert.equal(missing!.name, 'GET');
    assert.equal(attrs(missing!)['http.response.status_code'], 404);
  });
});

describe('spans without a trace exporter', () => {
  it('still give a trace id and a traceparent (unsampled), and keep a sampled incoming trace sampled', async () => {
    const t = await startTelemetry(readTelemetrySettings({ OTEL_METRICS_EXPORTER: 'none' }), {
      env: {},
      serviceVersion: '0',
      maxModels: 10,
      activeRequests: () => 0,
      onExportFailure: () => {},
      warn: () => {},
    });
    assert.equal(t.sdk.tracing, false);
    const rs = t.spans.begin('POST', '/v1/chat/completions', {});
    assert.match(rs.traceId, /^[0-9a-f]{32}$/);
    assert.notEqual(rs.traceId, '0'.repeat(32));
    const headers = Object.fromEntries(rs.upstream(callOf('openai', false, 'a')));
    assert.match(headers.traceparent!, new RegExp(`^00-${rs.traceId}-[0-9a-f]{16}-00$`));
    const incoming = t.spans.begin('POST', '/v1/chat/completions', { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' });
    const carried = Object.fromEntries(incoming.upstream(callOf('openai', false, 'b')));
    assert.match(carried.traceparent!, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    await t.sdk.shutdown();
  });
});

describe('message content on spans', () => {
  it('SPAN_AND_EVENT puts gen_ai.input/output.messages on the CLIENT span and in a details event; the default records none', async () => {
    for (const [mode, onSpan, asEvent] of [['SPAN_AND_EVENT', true, true], ['EVENT_ONLY', false, true], ['NO_CONTENT', false, false]] as const) {
      const exporter = new InMemorySpanExporter();
      const t = await startTelemetry(readTelemetrySettings({ OTEL_METRICS_EXPORTER: 'none', OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: mode }), {
        env: {},
        serviceVersion: '0',
        maxModels: 10,
        activeRequests: () => 0,
        onExportFailure: () => {},
        warn: () => {},
        extraSpanExporters: [exporter],
      });
      assert.equal(t.content === null, mode === 'NO_CONTENT');
      const call = callOf('openai', false, `c-${mode}`);
      const rs = t.spans.begin('POST', call.path, {});
      rs.upstream(call);
      const content = { input: '[{"role":"user","parts":[{"type":"text","content":"q"}]}]', output: '[{"role":"assistant","parts":[{"type":"text","content":"a"}]}]' };
      rs.end(recordOf(call, { timings: { ttfb: 0, ttft: null, duration: 0, timePerOutputToken: null, overhead: 0 } }), mode === 'NO_CONTENT' ? null : content);
      await t.sdk.forceFlush();
      const client = exporter.getFinishedSpans().find((s) => s.kind === SpanKind.CLIENT)!;
      assert.equal(attrs(client)['gen_ai.input.messages'], onSpan ? content.input : undefined, mode);
      assert.equal(attrs(client)['gen_ai.output.messages'], onSpan ? content.output : undefined, mode);
      const ev = client.events.find((e) => e.name === EVENT.operationDetails);
      assert.equal(Boolean(ev), asEvent, mode);
      if (ev) assert.equal(ev.attributes?.['gen_ai.input.messages'], content.input);
      await t.sdk.shutdown();
    }
  });
});
