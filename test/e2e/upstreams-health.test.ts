// End to end: three upstreams serving one model, one killed and brought back — its breaker, /health, /metrics and /v1/diagnostics follow, and traffic moves away and back.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLlmtap, type RunningLlmtap } from '../../src/start.ts';
import { telemetryFeature } from '../../src/telemetry/feature.ts';
import { createUsageFeature } from '../../src/usage/feature.ts';
import type { UpstreamStatus } from '../../src/upstreams/pool.ts';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.ts';
import { jsonOf, postJson, send } from '../helpers/http-client.ts';
import { collectRecords, type RecordSink } from '../helpers/records.ts';
import { openaiSpec, pollFor, routedConfig, upstreamGauge } from '../helpers/upstreams-watch.ts';

const MODEL = 'shared-m';
const HEALTH_INTERVAL_MS = 150;
const COOLDOWN_MS = 400;
// Three probe successes to close: half-open lasts at least two probe intervals, long enough to be seen.
const SUCCESSES = 3;

interface HealthBody {
  status: string;
  message: string;
  upstreams: Record<string, { url: string; status: 'ok' | 'down'; breaker: string; inFlight: number; queued: number; error?: string }>;
}

let dir: string;
const mocks: Record<'a' | 'b' | 'c', MockUpstream> = {} as Record<'a' | 'b' | 'c', MockUpstream>;
let bPort: number;
let bUrl: string;
let proxy: RunningLlmtap;
let records: RecordSink;

const chatCount = (m: MockUpstream): number => m.requests.filter((r) => r.path === '/v1/chat/completions').length;
const chat = () => postJson(`${proxy.url}/v1/chat/completions`, { model: MODEL, messages: [{ role: 'user', content: 'hi' }] }, { authorization: 'Bearer sk-test' });
const health = async (): Promise<{ status: number; body: HealthBody }> => {
  const r = await send(`${proxy.url}/health`);
  return { status: r.status, body: jsonOf(r) as HealthBody };
};
const scrape = async (): Promise<string> => {
  const r = await send(`${proxy.url}/metrics`);
  assert.equal(r.status, 200, '/metrics answers on llmtap port');
  return r.body.toString('utf8');
};
const diagnostics = async (): Promise<UpstreamStatus[]> => {
  const r = await send(`${proxy.url}/v1/diagnostics`);
  assert.equal(r.status, 200);
  return (jsonOf(r) as { routing: { upstreams: UpstreamStatus[] } }).routing.upstreams;
};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'llmtap-upstreams-health-'));
  for (const name of ['a', 'b', 'c'] as const) mocks[name] = await startMockUpstream({ name });
  bPort = mocks.b.port;
  bUrl = mocks.b.url;
  const config = routedConfig(
    {
      routingStrategy: 'round_robin',
      healthIntervalMs: HEALTH_INTERVAL_MS,
      breakerFailures: 2,
      breakerCooldownMs: COOLDOWN_MS,
      breakerSuccesses: SUCCESSES,
      connectTimeoutMs: 1000,
      usageFile: join(dir, 'usage.json'),
      usageFlushMs: 100,
    },
    (['a', 'b', 'c'] as const).map((n) => openaiSpec(n, mocks[n].url, [MODEL])),
  );
  proxy = await startLlmtap(config, {
    features: [telemetryFeature, createUsageFeature()],
    env: { OTEL_METRICS_EXPORTER: 'prometheus', OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_PROMETHEUS_PORT: '0' },
  });
  records = collectRecords(proxy.bus, 'upstreams-health');
});

after(async () => {
  records?.stop();
  await proxy?.close();
  for (const m of Object.values(mocks)) await m?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('one of three upstreams dies and comes back', () => {
  it('with all three up: /health 200, every gauge up and closed, traffic on all three', async () => {
    const h = await health();
    assert.equal(h.status, 200, h.body.message);
    assert.deepEqual(Object.keys(h.body.upstreams).sort(), ['a', 'b', 'c']);
    for (const n of ['a', 'b', 'c']) assert.equal(h.body.upstreams[n]!.breaker, 'closed');
    for (let i = 0; i < 6; i++) assert.equal((await chat()).status, 200);
    assert.deepEqual([chatCount(mocks.a), chatCount(mocks.b), chatCount(mocks.c)], [2, 2, 2], 'round_robin spreads 6 requests 2/2/2');
    const text = await scrape();
    for (const n of ['a', 'b', 'c']) {
      assert.equal(upstreamGauge(text, 'llmtap_upstream_up', n), 1, `${n} up`);
      assert.equal(upstreamGauge(text, 'llmtap_upstream_breaker_state', n), 0, `${n} breaker closed`);
    }
    // otel/alerts.yml's routing alerts and the dashboard's upstream panels name gauges that exist only with several upstreams: this scrape has them.
    for (const file of ['alerts.yml', 'grafana/dashboards/llmtap.json']) {
      const examples = readFileSync(new URL(`../../otel/${file}`, import.meta.url), 'utf8');
      const used = [...new Set(examples.match(/\bllmtap_upstream_[a-z_]+/g) ?? [])];
      assert.ok(used.length >= 2, `${file} uses the upstream gauges (${used.join(', ')})`);
      for (const name of used) assert.match(text, new RegExp(`^${name}\\{`, 'm'), `${name} (used in otel/${file}) is in the scrape`);
    }
  });

  it('killed: its breaker opens and every later request is answered 200 by the other two', async () => {
    records.clear();
    const before = chatCount(mocks.a) + chatCount(mocks.c);
    await mocks.b.close();
    let sent = 0;
    // Right after the kill: requests routed to b fail before any byte and fail over.
    for (let i = 0; i < 6; i++, sent++) {
      const r = await chat();
      assert.equal(r.status, 200, `request ${i} after the kill: ${r.body.toString('utf8').slice(0, 300)}`);
    }
    await pollFor(
      'b breaker open in /health',
      async () => ((await health()).body.upstreams.b?.breaker === 'open' ? true : undefined),
      () => JSON.stringify(proxy.upstreams?.status().find((u) => u.name === 'b')),
      3000,
    );
    for (let i = 0; i < 6; i++, sent++) {
      const r = await chat();
      assert.equal(r.status, 200, `request ${i} with b open: ${r.body.toString('utf8').slice(0, 300)}`);
    }
    assert.equal(chatCount(mocks.a) + chatCount(mocks.c) - before, sent, 'a and c answered every request between them');
    const recs = (await records.settled()).filter((r) => r.url === '/v1/chat/completions');
    assert.equal(recs.length, sent);
    for (const r of recs) {
      assert.ok(r.upstream && ['a', 'c'].includes(r.upstream.name), `answered by ${r.upstream?.name}`);
      assert.equal(r.outcome, 'ok');
      for (const f of r.failover ?? []) {
        assert.equal(f.upstream, 'b', 'only b ever failed');
        // Refused on a new connection, or cut on a kept-alive one closed by the kill: either fails before any byte.
        assert.ok(['upstream_unreachable', 'upstream_aborted'].includes(f.outcome), `failover outcome ${f.outcome}`);
      }
    }
  });

  it('while it is down: /health 503 naming it, gauges up 0 and breaker 1, diagnostics down', async () => {
    // Probes keep failing, so its breaker goes open → half-open (a probe window) → open again: wait for an open scrape.
    const text = await pollFor(
      'a scrape with b up 0 and breaker_state 1',
      async () => {
        const t = await scrape();
        return upstreamGauge(t, 'llmtap_upstream_up', 'b') === 0 && upstreamGauge(t, 'llmtap_upstream_breaker_state', 'b') === 1 ? t : undefined;
      },
      () => JSON.stringify(proxy.upstreams?.status().find((u) => u.name === 'b')),
      3000,
    );
    for (const n of ['a', 'c']) {
      assert.equal(upstreamGauge(text, 'llmtap_upstream_up', n), 1, `${n} still up`);
      assert.equal(upstreamGauge(text, 'llmtap_upstream_breaker_state', n), 0, `${n} still closed`);
    }
    const h = await health();
    assert.equal(h.status, 503);
    assert.equal(h.body.status, 'degraded');
    assert.match(h.body.message, new RegExp(`upstream b \\(${bUrl.replace(/[.]/g, '\\.')}\\) is down`));
    assert.doesNotMatch(h.body.message, /upstream [ac] /, 'only b is named');
    assert.equal(h.body.upstreams.b!.status, 'down');
    assert.match(h.body.upstreams.b!.error ?? '', /ECONNREFUSED|refused/i);
    assert.equal(h.body.upstreams.a!.status, 'ok');
    assert.equal(h.body.upstreams.c!.status, 'ok');
    const diag = await diagnostics();
    const b = diag.find((u) => u.name === 'b');
    assert.ok(b, 'diagnostics lists b');
    assert.equal(b.status, 'down');
    assert.notEqual(b.error, null);
    assert.ok(b.failed >= 1, `b's failed requests are counted (${b.failed})`);
    assert.deepEqual(diag.filter((u) => u.status === 'up').map((u) => u.name).sort(), ['a', 'c']);
  });

  it('restarted on the same port: half-open, then closed; /health 200 and traffic reaches it again', async () => {
    mocks.b = await startMockUpstream({ name: 'b', port: bPort });
    const seen: string[] = [];
    let gaugeHalfOpen = false;
    await pollFor(
      'b closed and /health 200',
      async () => {
        const h = await health();
        const state = h.body.upstreams.b?.breaker ?? 'missing';
        if (seen[seen.length - 1] !== state) seen.push(state);
        if (state === 'half_open' && !gaugeHalfOpen) gaugeHalfOpen = upstreamGauge(await scrape(), 'llmtap_upstream_breaker_state', 'b') === 2;
        return h.status === 200 && state === 'closed' ? true : undefined;
      },
      () => `breaker states seen: ${seen.join(' → ')}`,
      6000,
      15,
    );
    const lastHalf = seen.lastIndexOf('half_open');
    assert.ok(lastHalf !== -1, `half-open was seen before closed (${seen.join(' → ')})`);
    assert.equal(seen[seen.length - 1], 'closed');
    assert.ok(gaugeHalfOpen, 'the scrape showed breaker_state 2 while half-open');
    const text = await scrape();
    assert.equal(upstreamGauge(text, 'llmtap_upstream_breaker_state', 'b'), 0);
    assert.equal(upstreamGauge(text, 'llmtap_upstream_up', 'b'), 1);
    const diag = await diagnostics();
    assert.deepEqual(diag.filter((u) => u.status === 'up').map((u) => u.name).sort(), ['a', 'b', 'c']);

    const before = chatCount(mocks.a) + chatCount(mocks.c);
    for (let i = 0; i < 6; i++) assert.equal((await chat()).status, 200);
    assert.ok(chatCount(mocks.b) >= 1, `b answers again (${chatCount(mocks.b)} of 6)`);
    assert.equal(chatCount(mocks.b) + chatCount(mocks.a) + chatCount(mocks.c) - before, 6, 'each request reached exactly one upstream');
  });
});
