// End to end: telemetry never gets in the way: a dead OTLP endpoint leaves latency unchanged and logs once; random model names cannot blow up the scrape.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { configWith } from '../../src/config.ts';
import { startLlmtap, type RunningLlmtap } from '../../src/start.ts';
import { telemetryFeature } from '../../src/telemetry/feature.ts';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.ts';
import { freePort } from '../helpers/free-port.ts';

const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
});

/** A pino logger whose JSON lines the test reads. */
function capturedLogger(): { logger: pino.Logger; lines: () => Array<{ level: number; msg: string } & Record<string, unknown>> } {
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      raw.push(chunk.toString('utf8'));
      done();
    },
  });
  const logger = pino({ level: 'info' }, stream);
  return {
    logger,
    lines: () =>
      raw
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { level: number; msg: string }),
  };
}

async function post(url: string, model: string): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
  });
  await r.arrayBuffer();
  return { status: r.status, ms: performance.now() - t0 };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

describe('an unreachable OTLP endpoint', () => {
  it('requests still succeed with unchanged latency; one log line names the endpoint and cause; failures are counted', async () => {
    const mock = await startMockUpstream();
    cleanup.push(() => mock.close());
    // Each request takes a few ms at the upstream, as a small model would; llmtap's share is what must not move.
    mock.handle({ kind: 'chat', headDelayMs: 5 });
    const dead = await freePort();
    const endpoint = `http://127.0.0.1:${dead}`;
    const cfg = configWith({ port: 0, openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: mock.url, logLevel: 'info' });
    const off = await startLlmtap(cfg, { logger: pino({ level: 'silent' }) });
    cleanup.push(() => off.close());
    const log = capturedLogger();
    const on: RunningLlmtap = await startLlmtap(cfg, {
      logger: log.logger,
      features: [telemetryFeature],
      env: {
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_METRICS_EXPORTER: 'prometheus',
        OTEL_EXPORTER_PROMETHEUS_PORT: '0',
        OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
        OTEL_BSP_SCHEDULE_DELAY: '20',
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '4',
        // The OTLP exporter retries a refused connection until this timeout (default 10 s) before it reports a failure.
        OTEL_EXPORTER_OTLP_TIMEOUT: '250',
      },
    });
    cleanup.push(() => on.close());

    // Warm both, then alternate so that machine noise hits both sides alike; bounded in count.
    for (let i = 0; i < 10; i++) {
      await post(off.url, 'warm');
      await post(on.url, 'warm');
    }
    const tOff: number[] = [];
    const tOn: number[] = [];
    const deadline = Date.now() + 20_000;
    for (let i = 0; i < 80 && Date.now() < deadline; i++) {
      const a = await post(off.url, 'latency-model');
      const b = await post(on.url, 'latency-model');
      assert.equal(a.status, 200);
      assert.equal(b.status, 200, 'a request succeeds while its spans cannot be exported');
      tOff.push(a.ms);
      tOn.push(b.ms);
    }
    const mOff = median(tOff);
    const mOn = median(tOn);
    // Generous: shared CI cores are noisy. A proxy waiting on the dead collector would add its connect attempts per request.
    assert.ok(mOn <= mOff * 1.5 + 3, `median latency with telemetry to a dead endpoint ${mOn.toFixed(2)} ms vs off ${mOff.toFixed(2)} ms (${tOn.length} requests each)`);

    // Several export rounds have failed by now (batches of 4, each given up after 250 ms).
    await sleep(1000);
    const failures = log.lines().filter((l) => l.msg.includes(endpoint) || JSON.stringify(l).includes(`127.0.0.1:${dead}`));
    assert.equal(failures.length, 1, `exactly one log line about the dead endpoint; got:\n${failures.map((l) => l.msg).join('\n')}`);
    assert.match(failures[0]!.msg, /ECONNREFUSED|refused/i, 'the line says why');
    assert.ok(failures[0]!.level >= 40, 'logged as a warning or error');

    const scrape = await (await fetch(`${on.url}/metrics`)).text();
    const counted = scrape.split('\n').filter((l) => l.startsWith('llmtap_telemetry_export_failures') && /signal="traces"/.test(l));
    const total = counted.reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
    assert.ok(total >= 2, `later failures are counted, not logged (llmtap_telemetry_export_failures: ${counted.join(' | ') || 'absent'})`);
  });
});

describe('model label cardinality', () => {
  it('1,000 requests with distinct random model names leave at most the cap of model values (plus "other") in the scrape', async () => {
    const CAP = 20;
    const mock = await startMockUpstream();
    cleanup.push(() => mock.close());
    const proxy = await startLlmtap(configWith({ port: 0, openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: mock.url, logLevel: 'silent', metricsMaxModels: CAP }), {
      features: [telemetryFeature],
      env: { OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_PORT: '0' },
    });
    cleanup.push(() => proxy.close());

    const N = 1000;
    const CONCURRENCY = 16;
    let next = 0;
    let ok = 0;
    const deadline = Date.now() + 40_000;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < N && Date.now() < deadline) {
          next++;
          const r = await post(proxy.url, `rnd-${randomBytes(6).toString('hex')}`);
          if (r.status === 200) ok++;
        }
      }),
    );
    assert.equal(ok, N, `all ${N} requests went through in time`);

    const scrape = await (await fetch(`${proxy.url}/metrics`)).text();
    for (const label of ['gen_ai_request_model', 'gen_ai_response_model']) {
      const values = new Set([...scrape.matchAll(new RegExp(`${label}="([^"]*)"`, 'g'))].map((m) => m[1]!));
      const named = [...values].filter((v) => v !== 'other');
      assert.ok(named.length <= CAP, `${label}: ${named.length} distinct values besides "other", cap ${CAP}`);
      assert.ok(values.has('other'), `${label}: the rest are counted as "other"`);
    }
    const lines = scrape.split('\n').filter((l) => l && !l.startsWith('#')).length;
    assert.ok(lines < 5000, `the scrape stays small (${lines} series lines)`);
    const requests = scrape
      .split('\n')
      .filter((l) => l.startsWith('llmtap_requests_total{'))
      .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
    assert.equal(requests, N, 'every request is still counted');
  });
});
