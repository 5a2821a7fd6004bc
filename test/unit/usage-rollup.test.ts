// Unit: the log-bucket sketch's quantiles, daily rollups that keep totals exact, and the per-day cap on distinct models.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { addToSketch, emptySketch, exactQuantile, mergeSketch, sketchQuantile } from '../../src/usage/sketch.ts';
import { ROLLUP_MODELS_PER_DAY, OTHER_MODEL, rollUp, type Rollup } from '../../src/usage/rollup.ts';
import { computeStats } from '../../src/usage/stats.ts';
import { seededRandom } from '../helpers/fixtures.ts';
import { sampleRecord } from './usage-records.ts';

describe('sketch', () => {
  it('estimates p50/p95/p99 within 4.5% of the exact values over skewed data', () => {
    const rnd = seededRandom(7);
    const values: number[] = [];
    const s = emptySketch();
    for (let i = 0; i < 20_000; i++) {
      // log-normal-ish: most calls fast, a long tail
      const v = Math.exp(4 + 1.5 * (rnd() + rnd() + rnd() - 1.5)) + rnd();
      values.push(v);
      addToSketch(s, v);
    }
    values.sort((a, b) => a - b);
    for (const q of [0.5, 0.95, 0.99]) {
      const exact = exactQuantile(values, q)!;
      const est = sketchQuantile(s, q)!;
      assert.ok(Math.abs(est - exact) / exact < 0.045, `q${q}: estimate ${est} vs exact ${exact}`);
    }
    assert.equal(s.count, 20_000);
    assert.equal(sketchQuantile(s, 1), values[values.length - 1]);
  });

  it('merges: two halves give the same buckets as the whole', () => {
    const a = emptySketch();
    const b = emptySketch();
    const whole = emptySketch();
    for (let i = 1; i <= 1000; i++) {
      addToSketch(i % 2 ? a : b, i * 1.7);
      addToSketch(whole, i * 1.7);
    }
    mergeSketch(a, b);
    assert.deepEqual(a, whole);
    assert.equal(sketchQuantile(emptySketch(), 0.5), null);
  });
});

describe('rollUp', () => {
  it('moves records into daily totals per upstream/provider/model without changing any total', () => {
    const records = Array.from({ length: 500 }, (_, i) => sampleRecord(i));
    const before = computeStats(records, [], {});
    const rollups: Rollup[] = [];
    rollUp(rollups, records.slice(0, 300));
    const after = computeStats(records.slice(300), rollups, {});
    const { ttftMs: _a, durationMs: _b, ...totalsBefore } = before.totals;
    const { ttftMs: _c, durationMs: _d, ...totalsAfter } = after.totals;
    assert.deepEqual(totalsAfter, totalsBefore);
    assert.ok(totalsBefore.cost > 0 && totalsBefore.errors > 0, 'the sample has costs and errors to carry over');
    const days = new Set(records.slice(0, 300).map((r) => r.time.slice(0, 10)));
    assert.ok(rollups.length >= days.size && rollups.length <= days.size * 3 * 2, `one bucket per day and model (${rollups.length})`);
    for (const m of before.byModel) {
      const a = after.byModel.find((x) => x.model === m.model)!;
      assert.equal(a.requests, m.requests);
      assert.equal(a.cost, m.cost);
      assert.equal(a.ttftMs.exact, false, 'percentiles over rolled-up history come from sketches');
      if (m.ttftMs.p95 !== null) assert.ok(Math.abs(a.ttftMs.p95! - m.ttftMs.p95) / m.ttftMs.p95 < 0.05);
    }
  });

  it('keeps at most ROLLUP_MODELS_PER_DAY models per day and upstream; the rest count as (other)', () => {
    const records = Array.from({ length: ROLLUP_MODELS_PER_DAY + 50 }, (_, i) => ({ ...sampleRecord(i), time: '2025-03-01T10:00:00.000Z', model: `random-${i}`, upstream: 'openai', provider: 'openai' as const }));
    const rollups: Rollup[] = [];
    rollUp(rollups, records);
    assert.equal(rollups.length, ROLLUP_MODELS_PER_DAY + 1);
    const other = rollups.find((r) => r.model === OTHER_MODEL)!;
    assert.equal(other.requests, 50);
    assert.equal(rollups.reduce((a, r) => a + r.requests, 0), records.length);
  });
});
