// End to end: max_concurrent with its bounded wait queue (503 QUEUE_FULL / QUEUE_TIMEOUT with Retry-After, the queue visible while it waits) and the per-client rate limit's token bucket (429 with Retry-After, per key, counted).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { configWith } from '../../src/config.ts';
import { startLlmtap, type RunningLlmtap } from '../../src/start.ts';
import { telemetryFeature } from '../../src/telemetry/feature.ts';
import { createUsageFeature } from '../../src/usage/feature.ts';
import { DEFAULT_PIECES, startMockUpstream, type MockUpstream, type ReceivedRequest } from '../helpers/mock-upstream.ts';
import { jsonOf, postJson, send, type RawResponse } from '../helpers/http-client.ts';
import { collectRecords, type RecordSink } from '../helpers/records.ts';
import { openaiSpec, plainMetric, pollFor, routedConfig, sseContent, upstreamGauge } from '../helpers/upstreams-watch.ts';

const TELEMETRY_ENV = { OTEL_METRICS_EXPORTER: 'prometheus', OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_PROMETHEUS_PORT: '0' };
const MODEL = 'slow-m';
const MAX_CONCURRENT = 2;
const MAX_QUEUE = 5;
const CLIENTS = 10;

let dir: string;
const cleanups: Array<() => Promise<void> | void> = [];

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'llmtap-upstreams-limits-'));
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

const errorCode = (r: RawResponse): string | undefined => (jsonOf(r) as { error?: { code?: string } }).error?.code;
const scrape = async (url: string): Promise<string> => {
  const r = await send(`${url}/metrics`);
  assert.equal(r.status, 200);
  return r.body.toString('utf8');
};

/** llmtap in front of one slow upstream with max_concurrent 2 and max_queue 5. */
async function startQueued(queueTimeoutMs: number, stream: { firstChunkDelayMs: number; gapMs: number }): Promise<{ mock: MockUpstream; proxy: RunningLlmtap; records: RecordSink }> {
  const mock = await startMockUpstream({ name: 'slow' });
  mock.handle({ kind: 'chat', ...stream });
  const config = routedConfig(
    { queueTimeoutMs, healthIntervalMs: 5000, usageFile: join(dir, `queued-${queueTimeoutMs}.json`), usageFlushMs: 100 },
    [openaiSpec('slow', mock.url, [MODEL], { maxConcurrent: MAX_CONCURRENT, maxQueue: MAX_QUEUE })],
  );
  const proxy = await startLlmtap(config, { features: [telemetryFeature, createUsageFeature()], env: TELEMETRY_ENV });
  const records = collectRecords(proxy.bus, 'upstreams-limits');
  cleanups.push(async () => {
    records.stop();
    await proxy.close();
    await mock.close();
  });
  return { mock, proxy, records };
}

/** Sends CLIENTS streaming requests at once; resolves with the responses in send order and when they were sent. */
function burst(proxy: RunningLlmtap): { sentAt: number; all: Promise<RawResponse[]> } {
  const sentAt = performance.now();
  const all = Promise.all(
    Array.from({ length: CLIENTS }, (_, i) =>
      postJson(`${proxy.url}/v1/chat/completions`, { model: MODEL, stream: true, messages: [{ role: 'user', content: `client ${i}` }] }, { authorization: 'Bearer sk-test' }, { timeoutMs: 20_000 }),
    ),
  );
  return { sentAt, all };
}

/**
 * The most chat requests the mock was serving at any one moment. A request is live from its head's arrival to its
 * last frame: the mock stamps that frame's sentAt and calls res.end() in the same tick, so llmtap cannot have seen
 * the end (and freed the slot) before that stamp.
 */
function peakConcurrency(reqs: readonly ReceivedRequest[]): number {
  let peak = 0;
  for (const r of reqs) {
    const live = reqs.filter((o) => o.headAt <= r.headAt && (o === r || o.sentAt[o.sentAt.length - 1]! > r.headAt));
    peak = Math.max(peak, live.length);
  }
  return peak;
}

describe('max_concurrent 2, max_queue 5: ten concurrent streams', () => {
  it('a queue timeout longer than the wait: 2 in flight, 5 queued and served in turn, 3 refused at once with QUEUE_FULL', async () => {
    // ~800 ms per stream: the 10 requests all arrive long before the first slot frees.
    const { mock, proxy, records } = await startQueued(15_000, { firstChunkDelayMs: 300, gapMs: 100 });
    const { sentAt, all } = burst(proxy);

    // While they wait: /health and the queue-depth gauge show 2 in flight and 5 queued.
    const seenHealth = await pollFor(
      '/health with 2 in flight and 5 queued',
      async () => {
        const r = await send(`${proxy.url}/health`);
        const u = (jsonOf(r) as { upstreams: Record<string, { inFlight: number; queued: number }> }).upstreams.slow;
        return u && u.inFlight === MAX_CONCURRENT && u.queued === MAX_QUEUE ? u : undefined;
      },
      () => JSON.stringify(proxy.upstreams?.status()),
      3000,
      10,
    );
    assert.equal(seenHealth.queued, MAX_QUEUE);
    const text = await scrape(proxy.url);
    assert.equal(upstreamGauge(text, 'llmtap_upstream_queue_depth', 'slow'), MAX_QUEUE, 'queue depth gauge while they wait');
    assert.equal(upstreamGauge(text, 'llmtap_upstream_in_flight', 'slow'), MAX_CONCURRENT, 'in-flight gauge while they wait');

    const responses = await all;
    const ok = responses.filter((r) => r.status === 200);
    const refused = responses.filter((r) => r.status !== 200);
    assert.equal(ok.length, CLIENTS - 3, `statuses: ${responses.map((r) => r.status).join(',')}`);
    assert.equal(refused.length, 3);
    const firstOkEnd = Math.min(...ok.map((r) => r.endedAt));
    for (const r of refused) {
      assert.equal(r.status, 503);
      assert.equal(errorCode(r), 'LLMTAP_QUEUE_FULL');
      assert.equal(r.headers['x-llmtap-error'], 'LLMTAP_QUEUE_FULL');
      assert.ok(Number(r.headers['retry-after']) >= 1, `Retry-After: ${r.headers['retry-after']}`);
      assert.ok(r.endedAt < firstOkEnd, `refused at once (${Math.round(r.endedAt - sentAt)} ms), before any stream finished (${Math.round(firstOkEnd - sentAt)} ms)`);
    }
    for (const r of ok) {
      assert.ok(r.complete, 'stream complete');
      assert.equal(sseContent(r.body.toString('utf8')), DEFAULT_PIECES.join(''));
      assert.match(r.body.toString('utf8'), /data: \[DONE\]\n\n$/);
    }

    const chats = mock.requests.filter((r) => r.path === '/v1/chat/completions');
    assert.equal(chats.length, CLIENTS - 3, 'the mock served exactly the 7 admitted requests');
    assert.ok(chats.every((r) => r.responseEnded), 'every admitted stream ended at the mock');
    assert.equal(peakConcurrency(chats), MAX_CONCURRENT, 'never more than 2 at the mock at once (and 2 at the peak)');

    const recs = (await records.settled()).filter((r) => r.url === '/v1/chat/completions');
    assert.equal(recs.filter((r) => r.outcome === 'overloaded').length, 3);
    const waited = recs.filter((r) => r.outcome === 'ok' && (r.queuedMs ?? 0) > 200);
    assert.equal(waited.length, MAX_QUEUE, `queued records: ${recs.map((r) => `${r.outcome}:${Math.round(r.queuedMs ?? -1)}`).join(', ')}`);

    const after = (jsonOf(await send(`${proxy.url}/health`)) as { upstreams: Record<string, { inFlight: number; queued: number }> }).upstreams.slow!;
    assert.deepEqual({ inFlight: after.inFlight, queued: after.queued }, { inFlight: 0, queued: 0 });
  });

  it('a queue timeout shorter than the wait: 2 served, 5 give up with QUEUE_TIMEOUT and Retry-After, 3 QUEUE_FULL', async () => {
    const QUEUE_TIMEOUT_MS = 300;
    // ~1.1 s per stream: far longer than the queue timeout.
    const { mock, proxy, records } = await startQueued(QUEUE_TIMEOUT_MS, { firstChunkDelayMs: 600, gapMs: 100 });
    const { sentAt, all } = burst(proxy);
    const responses = await all;
    const byCode = (code: string) => responses.filter((r) => r.status === 503 && errorCode(r) === code);
    const ok = responses.filter((r) => r.status === 200);
    assert.equal(ok.length, MAX_CONCURRENT, `statuses: ${responses.map((r) => `${r.status}${r.status === 200 ? '' : `:${errorCode(r)}`}`).join(',')}`);
    const full = byCode('LLMTAP_QUEUE_FULL');
    const timedOut = byCode('LLMTAP_QUEUE_TIMEOUT');
    assert.equal(full.length, 3);
    assert.equal(timedOut.length, MAX_QUEUE);
    const firstOkEnd = Math.min(...ok.map((r) => r.endedAt));
    for (const r of timedOut) {
      assert.equal(r.headers['x-llmtap-error'], 'LLMTAP_QUEUE_TIMEOUT');
      assert.ok(Number(r.headers['retry-after']) >= 1, `Retry-After: ${r.headers['retry-after']}`);
      assert.match((jsonOf(r) as { error: { message: string } }).error.message, /slot at upstream slow/);
      const at = r.endedAt - sentAt;
      // A timer may fire a little early by the clock it is compared with; never far.
      assert.ok(at >= QUEUE_TIMEOUT_MS - 20, `gave up after the timeout (${Math.round(at)} ms)`);
      assert.ok(r.endedAt < firstOkEnd, 'gave up before the streams it waited behind finished');
    }
    for (const r of full) assert.ok(r.endedAt < Math.min(...timedOut.map((t) => t.endedAt)), 'QUEUE_FULL came before the queue timed out');
    for (const r of ok) assert.equal(sseContent(r.body.toString('utf8')), DEFAULT_PIECES.join(''));

    const chats = mock.requests.filter((r) => r.path === '/v1/chat/completions');
    assert.equal(chats.length, MAX_CONCURRENT, 'requests that gave up never reached the upstream');
    assert.ok(peakConcurrency(chats) <= MAX_CONCURRENT);
    const recs = (await records.settled()).filter((r) => r.url === '/v1/chat/completions');
    assert.equal(recs.filter((r) => r.outcome === 'overloaded').length, 3 + MAX_QUEUE);
    const status = proxy.upstreams!.status()[0]!;
    assert.deepEqual({ inFlight: status.inFlight, queued: status.queued }, { inFlight: 0, queued: 0 }, 'slots and queue are empty afterwards');
  });
});

describe('rate limit', () => {
  /** llmtap with LLMTAP_RATE_LIMIT and a plain single upstream (no upstreams list: the limit holds there too). */
  async function startLimited(limit: string): Promise<{ mock: MockUpstream; proxy: RunningLlmtap; records: RecordSink }> {
    const mock = await startMockUpstream({ name: `rl-${limit}` });
    const config = configWith({ port: 0, logLevel: 'silent', openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: mock.url, rateLimit: limit, usageFile: join(dir, `rl-${limit.replace('/', '-')}.json`), usageFlushMs: 100 });
    const proxy = await startLlmtap(config, { features: [telemetryFeature, createUsageFeature()], env: TELEMETRY_ENV });
    const records = collectRecords(proxy.bus, 'rate-limit');
    cleanups.push(async () => {
      records.stop();
      await proxy.close();
      await mock.close();
    });
    return { mock, proxy, records };
  }
  const chatAs = (proxy: RunningLlmtap, key: string | null) =>
    postJson(`${proxy.url}/v1/chat/completions`, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, key === null ? {} : { authorization: `Bearer ${key}` });

  it('10/min: exactly 10 pass per client key, the 11th gets 429 with Retry-After about 6 s; another key and a keyless client have their own buckets; the counter equals the refusals', async () => {
    const { mock, proxy, records } = await startLimited('10/min');
    let refusals = 0;
    for (const key of ['sk-alice', 'sk-bob', null]) {
      const t0 = performance.now();
      for (let i = 0; i < 10; i++) {
        const r = await chatAs(proxy, key);
        assert.equal(r.status, 200, `${key ?? 'keyless'} request ${i + 1}: ${r.body.toString('utf8').slice(0, 200)}`);
      }
      const r = await chatAs(proxy, key);
      const elapsed = performance.now() - t0;
      refusals++;
      assert.equal(r.status, 429, `${key ?? 'keyless'} request 11`);
      assert.equal(errorCode(r), 'LLMTAP_RATE_LIMITED');
      assert.equal(r.headers['x-llmtap-error'], 'LLMTAP_RATE_LIMITED');
      // One token per 6 s; the burst took `elapsed` of it.
      const expected = Math.max(1, Math.ceil((6000 - elapsed) / 1000));
      const retryAfter = Number(r.headers['retry-after']);
      assert.ok(Math.abs(retryAfter - expected) <= 1 && retryAfter >= 5 && retryAfter <= 6, `Retry-After ${retryAfter}, expected about ${expected}`);
      assert.match((jsonOf(r) as { error: { message: string } }).error.message, /10\/min/);
    }
    // Still empty a moment later.
    assert.equal((await chatAs(proxy, 'sk-alice')).status, 429);
    refusals++;

    assert.equal(mock.requests.filter((r) => r.path === '/v1/chat/completions').length, 30, 'refused requests never reach the upstream');
    const recs = await records.settled();
    assert.equal(recs.filter((r) => r.outcome === 'rate_limited').length, refusals);
    assert.equal(plainMetric(await scrape(proxy.url), 'llmtap_rate_limited_total'), refusals, 'llmtap_rate_limited_total equals the 429s');
    const diag = jsonOf(await send(`${proxy.url}/v1/diagnostics`)) as { rateLimited: number };
    assert.equal(diag.rateLimited, refusals);
  });

  describe('5/s', () => {
    let proxy: RunningLlmtap;
    let mock: MockUpstream;
    before(async () => {
      ({ proxy, mock } = await startLimited('5/s'));
    });

    it('a fresh key: exactly 5 pass, the 6th gets 429 with Retry-After 1', async () => {
      for (let i = 0; i < 5; i++) assert.equal((await chatAs(proxy, 'sk-burst')).status, 200, `request ${i + 1}`);
      const r = await chatAs(proxy, 'sk-burst');
      assert.equal(r.status, 429);
      assert.equal(r.headers['retry-after'], '1');
    });

    it('after waiting for one token, exactly one more request passes', async () => {
      // tokens(t) = 5/s × (t − first take) − 5 once the burst is spent; a round counts only when its measured send and
      // answer times guarantee exactly one token (one token at A, under two by B); noisy rounds are retried.
      const notes: string[] = [];
      for (let round = 0; round < 5; round++) {
        const key = `sk-refill-${round}`;
        const send1 = performance.now();
        const first = await chatAs(proxy, key);
        const resp1 = performance.now();
        assert.equal(first.status, 200);
        for (let i = 0; i < 4; i++) assert.equal((await chatAs(proxy, key)).status, 200);
        assert.equal((await chatAs(proxy, key)).status, 429, 'the bucket is empty after 5');
        const wait = resp1 + 250 - performance.now();
        if (wait > 0) await sleep(wait);
        const sendA = performance.now();
        const a = await chatAs(proxy, key);
        const b = await chatAs(proxy, key);
        const respB = performance.now();
        const window = `A sent ${Math.round(sendA - resp1)} ms after the first answer, B answered ${Math.round(respB - send1)} ms after the first send`;
        if (sendA - resp1 < 200 || respB - send1 >= 400) {
          notes.push(`round ${round}: ${window} (outside the one-token window, retried)`);
          continue;
        }
        assert.equal(a.status, 200, `one token refilled: ${window}`);
        assert.equal(b.status, 429, `only one: ${window}`);
        assert.equal(b.headers['retry-after'], '1');
        return;
      }
      assert.fail(`no round landed in the one-token window: ${notes.join('; ')}`);
    });

    it('sustained traffic: the passes match 5 + 5/s × elapsed to within one request', async () => {
      const before = mock.requests.length;
      const key = 'sk-sustained';
      let passed = 0;
      let refused = 0;
      const firstSend = performance.now();
      let firstAnswer = 0;
      let lastSend = 0;
      for (let i = 0; i < 400 && performance.now() - firstSend < 1500; i++) {
        lastSend = performance.now();
        const r = await chatAs(proxy, key);
        if (firstAnswer === 0) firstAnswer = performance.now();
        if (r.status === 200) passed++;
        else if (r.status === 429) refused++;
        else assert.fail(`unexpected status ${r.status}`);
        await sleep(10);
      }
      const lastAnswer = performance.now();
      // The takes happened between these bounds: first take in [firstSend, firstAnswer], last in [lastSend, lastAnswer].
      const most = 5 + (5 * (lastAnswer - firstSend)) / 1000;
      const least = 5 + (5 * (lastSend - firstAnswer)) / 1000;
      assert.ok(passed <= Math.floor(most) + 1 && passed >= Math.floor(least) - 1, `passed ${passed}, expected ${least.toFixed(2)}..${most.toFixed(2)} (refused ${refused})`);
      assert.ok(refused > 0, 'the client was limited');
      assert.equal(mock.requests.length - before, passed, 'the upstream saw exactly the passes');
    });
  });
});
