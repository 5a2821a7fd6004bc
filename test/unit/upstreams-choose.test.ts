// The routing strategies (src/upstreams/choose.ts): round_robin's exact rotation, weighted's exact shares without long runs, least_busy's pick and tie rotation.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createChooser, type Choosable } from '../../src/upstreams/choose.ts';

const up = (name: string, weight = 1, inFlight = 0): Choosable => ({ name, weight, inFlight });

function picks(strategy: 'round_robin' | 'weighted' | 'least_busy', list: readonly Choosable[], n: number, key = 'openai\u0000m'): string[] {
  const choose = createChooser(strategy);
  return Array.from({ length: n }, () => choose(key, list).name);
}

function counts(names: readonly string[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const n of names) c[n] = (c[n] ?? 0) + 1;
  return c;
}

/** The longest run of the same name in a row. */
function longestRun(names: readonly string[], name: string): number {
  let best = 0;
  let run = 0;
  for (const n of names) {
    run = n === name ? run + 1 : 0;
    best = Math.max(best, run);
  }
  return best;
}

describe('round_robin', () => {
  it('rotates in list order, exactly', () => {
    assert.deepEqual(picks('round_robin', [up('a'), up('b'), up('c')], 9), ['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('ignores weights and load', () => {
    assert.deepEqual(picks('round_robin', [up('a', 5, 9), up('b', 1, 0)], 4), ['a', 'b', 'a', 'b']);
  });

  it('keeps one rotation per key (dialect and model): one model does not skew another', () => {
    const choose = createChooser('round_robin');
    const list = [up('a'), up('b'), up('c')];
    const x: string[] = [];
    const y: string[] = [];
    for (let i = 0; i < 3; i++) {
      x.push(choose('openai\u0000x', list).name);
      x.push(choose('openai\u0000x', list).name);
      y.push(choose('openai\u0000y', list).name);
    }
    assert.deepEqual(x, ['a', 'b', 'c', 'a', 'b', 'c']);
    assert.deepEqual(y, ['a', 'b', 'c']);
  });

  it('over a long run every upstream gets the same count', () => {
    assert.deepEqual(counts(picks('round_robin', [up('a'), up('b'), up('c'), up('d')], 1000)), { a: 250, b: 250, c: 250, d: 250 });
  });
});

describe('weighted', () => {
  it('weights 3:1 over 400 picks: 300/100, never more than 3 in a row, 3:1 in every cycle of 4', () => {
    const seq = picks('weighted', [up('a', 3), up('b', 1)], 400);
    assert.deepEqual(counts(seq), { a: 300, b: 100 });
    assert.ok(longestRun(seq, 'a') <= 3, `longest run of a: ${longestRun(seq, 'a')}`);
    assert.equal(longestRun(seq, 'b'), 1, 'b never twice in a row');
    for (let i = 0; i < 400; i += 4) assert.deepEqual(counts(seq.slice(i, i + 4)), { a: 3, b: 1 }, `cycle at ${i}: ${seq.slice(i, i + 4).join('')}`);
  });

  it('weights 5:3:2 over 1000 picks: 500/300/200, exact in every cycle of 10', () => {
    const seq = picks('weighted', [up('a', 5), up('b', 3), up('c', 2)], 1000);
    assert.deepEqual(counts(seq), { a: 500, b: 300, c: 200 });
    for (let i = 0; i < 1000; i += 10) assert.deepEqual(counts(seq.slice(i, i + 10)), { a: 5, b: 3, c: 2 }, `cycle at ${i}`);
    assert.ok(longestRun(seq, 'a') <= 2, `smooth: a's runs stay short (${longestRun(seq, 'a')})`);
  });

  it('equal weights behave as round robin; fractional weights keep their ratio', () => {
    assert.deepEqual(counts(picks('weighted', [up('a'), up('b'), up('c')], 300)), { a: 100, b: 100, c: 100 });
    assert.deepEqual(counts(picks('weighted', [up('a', 0.5), up('b', 1.5)], 400)), { a: 100, b: 300 });
  });

  it('a key with a smaller candidate list (one upstream excluded) still gets exact shares among the rest', () => {
    const choose = createChooser('weighted');
    const seq = Array.from({ length: 80 }, () => choose('k', [up('a', 3), up('c', 1)]).name);
    assert.deepEqual(counts(seq), { a: 60, c: 20 });
  });
});

describe('least_busy', () => {
  it('picks the upstream with the fewest requests in flight', () => {
    const choose = createChooser('least_busy');
    assert.equal(choose('k', [up('a', 1, 2), up('b', 1, 0), up('c', 1, 1)]).name, 'b');
    assert.equal(choose('k', [up('a', 1, 3), up('b', 1, 4), up('c', 1, 1)]).name, 'c');
    assert.equal(choose('k', [up('a', 1, 0), up('b', 1, 7), up('c', 1, 7)]).name, 'a');
  });

  it('rotates among the tied ones instead of always taking the first', () => {
    const choose = createChooser('least_busy');
    const list = [up('a', 1, 5), up('b', 1, 0), up('c', 1, 0)];
    const seq = Array.from({ length: 6 }, () => choose('k', list).name);
    assert.deepEqual(counts(seq), { b: 3, c: 3 }, `ties b and c share, a (busy) never: ${seq.join(',')}`);
    for (let i = 1; i < seq.length; i++) assert.notEqual(seq[i], seq[i - 1], `alternates: ${seq.join(',')}`);
  });

  it('follows the load as it changes: each pick goes to the idlest, as a pool updating inFlight sees it', () => {
    const choose = createChooser('least_busy');
    const list = [up('a'), up('b'), up('c')];
    // Nothing finishes: the picks must spread evenly, one per upstream per round.
    for (let round = 1; round <= 4; round++) {
      const got = new Set<string>();
      for (let i = 0; i < 3; i++) {
        const c = list.find((x) => x.name === choose('k', list).name)!;
        c.inFlight++;
        got.add(c.name);
      }
      assert.equal(got.size, 3, `round ${round}: each upstream got one`);
      assert.deepEqual(list.map((x) => x.inFlight), [round, round, round]);
    }
  });

  it('weights do not matter to it', () => {
    const choose = createChooser('least_busy');
    assert.equal(choose('k', [up('a', 100, 1), up('b', 1, 0)]).name, 'b');
  });
});
