// The circuit breaker's state machine (src/upstreams/breaker.ts) on simulated time, and its one-trial-at-a-time rule as the pool applies it.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import {
  BREAKER_GAUGE,
  breakerAllows,
  breakerRetryInMs,
  breakerState,
  newBreaker,
  recordFailure,
  recordSuccess,
  type Breaker,
  type BreakerSettings,
} from '../../src/upstreams/breaker.ts';
import { createUpstreamPool, type Lease } from '../../src/upstreams/pool.ts';
import type { UpstreamSpec } from '../../src/upstreams/spec.ts';
import { LlmtapError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';

const S: BreakerSettings = { failures: 3, cooldownMs: 1000, successes: 2 };

/** A breaker opened at time `at` by S.failures consecutive failures. */
function openedAt(at: number): Breaker {
  const b = newBreaker();
  for (let i = 0; i < S.failures; i++) recordFailure(b, S, at, `boom ${i}`);
  assert.equal(b.state, 'open');
  return b;
}

describe('breaker: closed → open', () => {
  it('starts closed and lets requests through', () => {
    const b = newBreaker();
    assert.equal(breakerState(b, S, 0), 'closed');
    assert.equal(breakerAllows(b, S, 0), true);
    assert.equal(breakerRetryInMs(b, S, 0), 0);
  });

  it('opens on the N-th consecutive failure, not before; the change is reported once', () => {
    const b = newBreaker();
    assert.equal(recordFailure(b, S, 10, 'e1'), null);
    assert.equal(recordFailure(b, S, 20, 'e2'), null);
    assert.equal(breakerState(b, S, 20), 'closed', 'N-1 failures: still closed');
    assert.equal(breakerAllows(b, S, 20), true);
    assert.deepEqual(recordFailure(b, S, 30, 'e3'), { from: 'closed', to: 'open' });
    assert.equal(breakerState(b, S, 30), 'open');
    assert.equal(breakerAllows(b, S, 30), false, 'an open breaker refuses');
    assert.equal(b.lastError, 'e3', 'it keeps the error that opened it');
    assert.equal(recordFailure(b, S, 40, 'e4'), null, 'failures while open change nothing');
    assert.equal(breakerState(b, S, 40), 'open');
  });

  it('a success in between resets the count: failures must be consecutive', () => {
    const b = newBreaker();
    recordFailure(b, S, 1, 'a');
    recordFailure(b, S, 2, 'b');
    assert.equal(recordSuccess(b, S, 3), null);
    recordFailure(b, S, 4, 'c');
    recordFailure(b, S, 5, 'd');
    assert.equal(breakerState(b, S, 5), 'closed', '2 + 2 failures split by a success do not open it (N = 3)');
    assert.deepEqual(recordFailure(b, S, 6, 'e'), { from: 'closed', to: 'open' });
  });

  it('N = 1 opens on the first failure', () => {
    const one = { ...S, failures: 1 };
    const b = newBreaker();
    assert.deepEqual(recordFailure(b, one, 0, 'x'), { from: 'closed', to: 'open' });
  });
});

describe('breaker: open → half-open after the cool-down', () => {
  it('stays open until the cool-down is over, counting down the wait', () => {
    const b = openedAt(5000);
    assert.equal(breakerRetryInMs(b, S, 5000), 1000);
    assert.equal(breakerRetryInMs(b, S, 5600), 400);
    assert.equal(breakerState(b, S, 5999), 'open');
    assert.equal(breakerAllows(b, S, 5999), false);
    assert.equal(breakerState(b, S, 6000), 'half_open', 'exactly the cool-down later: half-open');
    assert.equal(breakerRetryInMs(b, S, 6000), 0);
  });

  it('half-open lets one trial through at a time', () => {
    const b = openedAt(0);
    assert.equal(breakerAllows(b, S, 1000), true, 'no trial in flight: allowed');
    b.trials = 1; // what the pool does when it hands a half-open upstream a request
    assert.equal(breakerAllows(b, S, 1001), false, 'a trial in flight: the next request waits for its verdict');
    b.trials = 0;
    assert.equal(breakerAllows(b, S, 1002), true);
  });

  it('a success while still open (a late answer) does not close it', () => {
    const b = openedAt(0);
    assert.equal(recordSuccess(b, S, 500), null);
    assert.equal(breakerState(b, S, 500), 'open');
  });
});

describe('breaker: half-open → closed after M successes, → open again on a failure', () => {
  it('M successes close it; M-1 do not', () => {
    const b = openedAt(0);
    assert.equal(recordSuccess(b, S, 1100), null, 'first success: still half-open');
    assert.equal(breakerState(b, S, 1100), 'half_open');
    assert.deepEqual(recordSuccess(b, S, 1200), { from: 'half_open', to: 'closed' });
    assert.equal(breakerState(b, S, 1200), 'closed');
    assert.equal(b.lastError, null, 'closed again: no error kept');
    // Closed afresh: it again takes N consecutive failures to open.
    assert.equal(recordFailure(b, S, 1300, 'x'), null);
    assert.equal(recordFailure(b, S, 1301, 'y'), null);
    assert.deepEqual(recordFailure(b, S, 1302, 'z'), { from: 'closed', to: 'open' });
  });

  it('one failure in half-open reopens it and restarts the cool-down from then', () => {
    const b = openedAt(0);
    recordSuccess(b, S, 1100);
    assert.deepEqual(recordFailure(b, S, 1500, 'still broken'), { from: 'half_open', to: 'open' });
    assert.equal(breakerState(b, S, 1500), 'open');
    assert.equal(b.lastError, 'still broken');
    assert.equal(breakerRetryInMs(b, S, 1500), 1000, 'a full cool-down from the failure');
    assert.equal(breakerState(b, S, 2499), 'open');
    assert.equal(breakerState(b, S, 2500), 'half_open');
    // The success before the failure does not count towards closing it the second time.
    assert.equal(recordSuccess(b, S, 2600), null);
    assert.equal(breakerState(b, S, 2600), 'half_open');
    assert.deepEqual(recordSuccess(b, S, 2700), { from: 'half_open', to: 'closed' });
  });

  it('the gauge values are 0 closed, 1 open, 2 half-open', () => {
    assert.deepEqual({ ...BREAKER_GAUGE }, { closed: 0, open: 1, half_open: 2 });
  });
});

describe('breaker in the pool: one trial request at a time in half-open', () => {
  const spec: UpstreamSpec = { name: 'solo', dialect: 'openai', url: 'http://127.0.0.1:9', models: ['m'], apiKeyEnv: null, apiKey: null, maxConcurrent: null, maxQueue: null, weight: 1 };
  const log = createLogger({ logLevel: 'silent' }, { pretty: false }).logger;
  const settings = { strategy: 'round_robin' as const, queueTimeoutMs: 1000, queueMax: 10, healthIntervalMs: 3_600_000, modelsTtlMs: 300_000, breaker: { failures: 2, cooldownMs: 60, successes: 2 } };

  function acquire(pool: ReturnType<typeof createUpstreamPool>): Lease {
    const got = pool.acquire({ dialect: 'openai', model: 'm', exclude: new Set(), deadline: performance.now() + 1000, signal: new AbortController().signal });
    assert.ok(!(got instanceof Promise), 'no max_concurrent: a lease at once');
    return got;
  }

  function refusal(pool: ReturnType<typeof createUpstreamPool>): LlmtapError {
    try {
      acquire(pool);
    } catch (err) {
      assert.ok(err instanceof LlmtapError, String(err));
      return err;
    }
    assert.fail('expected the pool to refuse');
  }

  it('opens after the failures, refuses with Retry-After, admits exactly one trial after the cool-down, closes after the successes', async () => {
    const pool = createUpstreamPool([spec], settings, log);
    try {
      acquire(pool).release({ kind: 'failure', error: 'refused' });
      acquire(pool).release({ kind: 'failure', error: 'refused' });
      assert.equal(pool.status()[0]!.breaker, 'open');
      const open = refusal(pool);
      assert.equal(open.code, 'LLMTAP_NO_HEALTHY_UPSTREAM');
      assert.match(open.message, /solo/);
      assert.ok((open.retryAfterS ?? 0) >= 1, 'Retry-After on the refusal');

      await sleep(settings.breaker.cooldownMs + 20);
      assert.equal(pool.status()[0]!.breaker, 'half_open');
      const trial = acquire(pool);
      assert.equal(refusal(pool).code, 'LLMTAP_NO_HEALTHY_UPSTREAM', 'a second request while the trial runs is refused');
      trial.release({ kind: 'success' });
      acquire(pool).release({ kind: 'success' });
      assert.equal(pool.status()[0]!.breaker, 'closed', 'M = 2 successes close it');
      // Closed: requests run side by side again.
      const a = acquire(pool);
      const b = acquire(pool);
      assert.equal(pool.status()[0]!.inFlight, 2);
      a.release({ kind: 'success' });
      b.release({ kind: 'success' });
      assert.equal(pool.status()[0]!.inFlight, 0);
    } finally {
      pool.close();
    }
  });

  it('a failed trial reopens it at once', async () => {
    const pool = createUpstreamPool([spec], settings, log);
    try {
      acquire(pool).release({ kind: 'failure', error: 'x' });
      acquire(pool).release({ kind: 'failure', error: 'x' });
      await sleep(settings.breaker.cooldownMs + 20);
      acquire(pool).release({ kind: 'failure', error: 'still down' });
      assert.equal(pool.status()[0]!.breaker, 'open');
      assert.match(refusal(pool).message, /still down/, 'the refusal names the last error');
    } finally {
      pool.close();
    }
  });
});
