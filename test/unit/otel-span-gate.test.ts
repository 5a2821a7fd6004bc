// A collector that is down costs requests nothing: while the exporter backs off, spans are not built, only counted.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GuardedSpanSend } from '../../otel/failures.ts';
import { createSpanQueue } from '../../otel/otlp-trace-exporter.ts';
import type { SpanBatchEncoder } from '../../otel/otlp-encode.ts';
import type { SpanGate } from '../../otel/sdk.ts';
import type { SpanData } from '../../otel/span-data.ts';
import { createSpanRecorder } from '../../otel/spans.ts';
import type { TelemetryCall, TelemetryExchange } from '../../otel/index.ts';

const BATCH = { maxQueueSize: 100, maxExportBatchSize: 4, scheduledDelayMs: 60_000, exportTimeoutMs: 1000 };

function fakeOut(): GuardedSpanSend<Buffer> & { down: boolean; skippedBatches: number; sent: number } {
  const out = {
    down: false,
    skippedBatches: 0,
    sent: 0,
    send: (_body: Buffer, done: (error: Error | null) => void) => {
      out.sent++;
      done(null);
    },
    paused: () => out.down,
    skipped: () => void out.skippedBatches++,
    failed: () => {},
  };
  return out;
}

function fakeEncoder(): SpanBatchEncoder & { appended: SpanData[] } {
  const appended: SpanData[] = [];
  return { appended, append: (s) => void appended.push(s), take: () => Buffer.from('batch') };
}

const CALL: TelemetryCall = {
  id: 'x1',
  dialect: 'openai',
  operation: 'chat',
  model: 'gpt-4o-mini',
  stream: false,
  params: { maxTokens: 8 },
  method: 'POST',
  upstream: { name: 'openai', url: 'http://127.0.0.1:9', origin: 'http://127.0.0.1:9' },
  path: '/v1/chat/completions',
};

const RECORD: TelemetryExchange = {
  id: 'x1',
  method: 'POST',
  url: '/v1/chat/completions',
  dialect: 'openai',
  upstream: { name: 'openai', url: 'http://127.0.0.1:9' },
  operation: 'chat',
  model: 'gpt-4o-mini',
  responseModel: 'gpt-4o-mini-2024-07-18',
  responseId: 'r1',
  stream: false,
  params: { maxTokens: 8 },
  status: 200,
  outcome: 'ok',
  errorType: null,
  errorMessage: null,
  finishReasons: ['stop'],
  timings: { ttfb: 1, ttft: null, duration: 2, timePerOutputToken: null, overhead: 0.1 },
  usage: { input: 3, output: 4, cacheRead: null, cacheWrite: null, reasoning: null, source: 'reported' },
  bytes: { requestIn: 10, requestOut: 10, responseIn: 20, responseOut: 20 },
};

describe('span queue while the exporter backs off', () => {
  it('says it accepts nothing, and counts skipped spans as skipped batches, as add() does', () => {
    const out = fakeOut();
    const encoder = fakeEncoder();
    const q = createSpanQueue(encoder, out, BATCH);
    assert.equal(q.accepting(), true);
    out.down = true;
    assert.equal(q.accepting(), false);
    q.skip(2);
    assert.equal(out.skippedBatches, 0, 'fewer than a batch');
    q.skip(2);
    assert.equal(out.skippedBatches, 1, 'a batch worth of spans skipped is one skipped batch');
    q.add({} as SpanData);
    q.skip(3);
    assert.equal(out.skippedBatches, 2, 'add() while paused counts toward the same batches');
    assert.equal(encoder.appended.length, 0, 'nothing encoded while paused');
    out.down = false;
    assert.equal(q.accepting(), true, 'accepting again once the back-off is over');
  });

  it('says it accepts nothing while its queue is full, and drops skipped spans silently then, as add() does', async () => {
    const out = fakeOut();
    const encoder = fakeEncoder();
    // The one export in flight never finishes: the queue fills up behind it.
    out.send = () => {};
    const q = createSpanQueue(encoder, out, { ...BATCH, maxQueueSize: 6, maxExportBatchSize: 2 });
    for (let i = 0; i < 10; i++) q.add({} as SpanData);
    assert.equal(encoder.appended.length, 8, 'two sent, six queued, two dropped');
    assert.equal(q.accepting(), false);
    q.skip(100);
    assert.equal(out.skippedBatches, 0, 'not a failure: nothing is counted');
  });
});

describe('span recorder with a gate', () => {
  function recorder(wants: boolean) {
    const emitted: SpanData[] = [];
    const skipped: number[] = [];
    const gate: SpanGate = { wants: () => wants, skip: (n) => void skipped.push(n) };
    const r = createSpanRecorder({ content: 'NO_CONTENT', emit: (s) => void emitted.push(s), gate, sample: () => true });
    return { r, emitted, skipped };
  }

  it('builds no span while no exporter wants one: the exchange\'s two are counted as skipped', () => {
    const { r, emitted, skipped } = recorder(false);
    const spans = r.begin('POST', '/v1/chat/completions', {});
    const headers = spans.upstream(CALL);
    assert.match(headers[0]![1], /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, 'the upstream call still carries a traceparent');
    spans.end(RECORD);
    assert.equal(emitted.length, 0);
    assert.deepEqual(skipped, [2]);

    const own = r.begin('GET', '/health', {});
    own.endRequest(200);
    assert.deepEqual(skipped, [2, 1], 'a request llmtap answered itself has one span');
  });

  it('builds and emits both spans when an exporter wants them, once the turn\'s I/O is done, or at flush()', async () => {
    const { r, emitted, skipped } = recorder(true);
    const spans = r.begin('POST', '/v1/chat/completions', {});
    spans.upstream(CALL);
    spans.end(RECORD);
    assert.equal(emitted.length, 0, 'not built yet: ended exchanges are built together');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(emitted.map((s) => s.name), ['chat gpt-4o-mini', 'POST /v1/chat/completions']);
    assert.deepEqual(skipped, []);

    const more = [1, 2, 3].map(() => r.begin('POST', '/v1/chat/completions', {}));
    for (const m of more) {
      m.upstream(CALL);
      m.end(RECORD);
    }
    r.flush();
    assert.equal(emitted.length, 8, 'flush() builds every exchange ended so far, at once');
    assert.deepEqual(new Set(emitted.slice(2).map((s) => s.traceId)), new Set(more.map((m) => m.traceId)));
  });

  it('a span that cannot be built is reported and left out; the exchanges ended with it are built', () => {
    const errors: unknown[] = [];
    const emitted: SpanData[] = [];
    const r = createSpanRecorder({ content: 'NO_CONTENT', emit: (s) => void emitted.push(s), sample: () => true, onError: (e) => void errors.push(e) });
    const good = r.begin('POST', '/v1/chat/completions', {});
    good.upstream(CALL);
    const bad = r.begin('POST', '/v1/chat/completions', {});
    bad.upstream(CALL);
    bad.end({ ...RECORD, usage: null } as unknown as TelemetryExchange);
    good.end(RECORD);
    r.flush();
    assert.equal(errors.length, 1);
    assert.deepEqual(emitted.map((s) => s.traceId), [good.traceId, good.traceId]);
  });
});
