// The per-client token bucket (src/limits/rate-limit.ts) on simulated time, the client key it is kept under, and the LLMTAP_RATE_LIMIT format.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientKey, createRateLimiter, type RateVerdict } from '../../src/limits/rate-limit.ts';
import { ConfigError, configWith, type RateLimit } from '../../src/config.ts';

const FIVE_PER_S: RateLimit = { requests: 5, perMs: 1000, text: '5/s' };

function refused(v: RateVerdict): number {
  assert.equal(v.ok, false, 'expected a refusal');
  return (v as { ok: false; retryAfterMs: number }).retryAfterMs;
}

function near(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual}, expected ${expected} ± ${tolerance}`);
}

describe('rate limit: the token bucket', () => {
  it('5/s: 5 pass at once, the 6th is refused with retryAfterMs ≈ 200, and 200 ms later one more passes', () => {
    const rl = createRateLimiter(FIVE_PER_S);
    for (let i = 0; i < 5; i++) assert.deepEqual(rl.take('c', 1000), { ok: true }, `request ${i + 1}`);
    near(refused(rl.take('c', 1000)), 200, 1, 'retry after');
    assert.equal(rl.limited(), 1);
    near(refused(rl.take('c', 1100)), 100, 1, 'half-way there');
    assert.deepEqual(rl.take('c', 1200), { ok: true }, 'one token refilled after 200 ms');
    near(refused(rl.take('c', 1200)), 200, 1, 'and then empty again');
    assert.equal(rl.limited(), 3, 'every refusal counted');
  });

  it('separate keys have separate buckets', () => {
    const rl = createRateLimiter(FIVE_PER_S);
    for (let i = 0; i < 5; i++) assert.equal(rl.take('alice', 0).ok, true);
    assert.equal(rl.take('alice', 0).ok, false);
    for (let i = 0; i < 5; i++) assert.equal(rl.take('bob', 0).ok, true, `bob's request ${i + 1} is not held back by alice's`);
    assert.equal(rl.take('bob', 0).ok, false);
    assert.equal(rl.limited(), 2);
  });

  it('an idle client refills to the capacity, never beyond', () => {
    const rl = createRateLimiter(FIVE_PER_S);
    for (let i = 0; i < 5; i++) rl.take('c', 0);
    let passed = 0;
    for (let i = 0; i < 20; i++) if (rl.take('c', 60_000).ok) passed++;
    assert.equal(passed, 5, 'a minute idle gives back 5, not 300');
  });

  it('at a steady 20 requests/s for 10 s, the bucket passes 5 + 10 × 5 to within one', () => {
    const rl = createRateLimiter(FIVE_PER_S);
    let passed = 0;
    for (let t = 0; t <= 10_000; t += 50) if (rl.take('c', t).ok) passed++;
    near(passed, 55, 1, 'passed');
    assert.equal(rl.limited(), 201 - passed);
  });

  it('60/min: the 61st waits a second', () => {
    const rl = createRateLimiter({ requests: 60, perMs: 60_000, text: '60/min' });
    for (let i = 0; i < 60; i++) assert.equal(rl.take('c', 0).ok, true);
    near(refused(rl.take('c', 0)), 1000, 1, 'retry after');
    assert.equal(rl.take('c', 999).ok, false);
    assert.equal(rl.take('c', 1000 + 17).ok, true);
  });
});

describe('rate limit: who the client is', () => {
  const SECRET = 'sk-proj-very-secret-key-123456';

  it('a hash of the API key, never the key itself', () => {
    for (const [name, value] of [['authorization', `Bearer ${SECRET}`], ['x-api-key', SECRET], ['api-key', SECRET]] as const) {
      const k = clientKey({ [name]: value }, '10.0.0.1');
      assert.match(k, /^key:[0-9a-f]+$/, `${name}: ${k}`);
      assert.ok(!k.includes(SECRET) && !k.includes('secret') && !k.includes('sk-'), `${name}: the key does not appear in ${k}`);
      assert.ok(!k.includes('10.0.0.1'), 'the key wins over the address');
    }
  });

  it('the same key from two addresses is one client; two keys from one address are two', () => {
    assert.equal(clientKey({ authorization: 'Bearer a' }, '10.0.0.1'), clientKey({ authorization: 'Bearer a' }, '10.0.0.2'));
    assert.notEqual(clientKey({ authorization: 'Bearer a' }, '10.0.0.1'), clientKey({ authorization: 'Bearer b' }, '10.0.0.1'));
  });

  it('no key: the address; an empty key header counts as none', () => {
    assert.equal(clientKey({}, '127.0.0.1'), 'addr:127.0.0.1');
    assert.equal(clientKey({ authorization: '' }, '::1'), 'addr:::1', 'empty authorization: by address');
    assert.notEqual(clientKey({}, '127.0.0.1'), clientKey({}, '127.0.0.2'));
    assert.match(clientKey({}, undefined), /^addr:/);
  });
});

describe('rate limit: LLMTAP_RATE_LIMIT', () => {
  it('N/s, N/min, N/h; off, none or empty for no limit', () => {
    assert.deepEqual(configWith({ rateLimit: '5/s' }).rateLimit, { requests: 5, perMs: 1000, text: '5/s' });
    assert.deepEqual(configWith({ rateLimit: '60/min' }).rateLimit, { requests: 60, perMs: 60_000, text: '60/min' });
    assert.deepEqual(configWith({ rateLimit: '1000/h' }).rateLimit, { requests: 1000, perMs: 3_600_000, text: '1000/h' });
    assert.equal(configWith({ rateLimit: 'off' }).rateLimit, null);
    assert.equal(configWith({ rateLimit: '' }).rateLimit, null);
    assert.equal(configWith({}).rateLimit, null, 'off by default');
  });

  it('anything else is a one-line ConfigError naming the setting and the allowed forms', () => {
    for (const bad of ['0/s', '5', '5/fortnight', 'five/s', '-1/s', '5/s/s']) {
      assert.throws(
        () => configWith({ rateLimit: bad }),
        (err: unknown) => err instanceof ConfigError && /LLMTAP_RATE_LIMIT/.test(err.message) && /N\/s/.test(err.message) && !err.message.includes('\n'),
        bad,
      );
    }
  });
});
