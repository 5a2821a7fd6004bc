// The bench's verdict: throughput ratios pair the slices of each round, so one disturbed round cannot decide a check.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { LoadResult, RunFigures, TargetFigures } from '../../scripts/bench/load.ts';
import { buildReport, formatReport, pairedRatio, type ReportMeta } from '../../scripts/bench/report.ts';

function run(sliceRps: number[] | null, rps: number, cpuUsPerReq: number | null = null): RunFigures {
  return { rps, p50Ms: 1, p99Ms: 3, ok: 1000, non2xx: 0, errors: 0, durationS: 10, spread: 0.1, sliceRps, cpuUsPerReq };
}

function target(name: string, nonStreaming: RunFigures, streaming: RunFigures = nonStreaming): TargetFigures {
  return { name, sanity: [], runs: { nonStreaming, streaming, ttfb: run(null, NaN) } };
}

const META: ReportMeta = {
  node: 'v20',
  cpus: 2,
  pinned: true,
  durationS: 10,
  connections: 50,
  ttfbRequests: 300,
  roles: { bare: 'reference', llmtap: 'candidate' },
};

describe('bench report', () => {
  it('takes the median of the rounds\' ratios, so a burst that hit one slice does not fail the check', () => {
    // Round 3: the machine was busy during llmtap's slice only. Its whole-run total comes out at 0.75 of bare's.
    const bare = [10_000, 10_000, 10_000, 10_000, 10_000];
    const llmtap = [8_500, 8_400, 4_000, 8_600, 8_300];
    const totals = llmtap.reduce((a, b) => a + b) / bare.reduce((a, b) => a + b);
    assert.ok(totals < 0.8, `the totals' ratio is ${totals}`);

    const report = buildReport({ targets: [target('bare', run(bare, 10_000)), target('llmtap', run(llmtap, 7_560))] } as LoadResult, META);
    const check = report.checks.find((c) => c.run === 'nonStreaming' && c.candidate === 'llmtap')!;
    assert.equal(check.value, 0.84);
    assert.deepEqual(check.rounds, [0.85, 0.84, 0.4, 0.86, 0.83]);
    assert.equal(check.pass, true);

    const text = formatReport(report);
    assert.match(text, /0\.84× \[0\.40–0\.86\] \(≥ 0\.80×\) PASS/);
    assert.match(text, /ratios: the median over 5 rounds/);
  });

  it('fails a check whose rounds are mostly below the limit, however good the best one', () => {
    const r = pairedRatio(run([70, 75, 95, 78], 79.5), run([100, 100, 100, 100], 100));
    assert.ok(Math.abs(r.value - 0.765) < 1e-9, `median of 0.70 0.75 0.78 0.95 is ${r.value}`);
    const report = buildReport({ targets: [target('bare', run([100, 100, 100, 100], 100)), target('llmtap', run([70, 75, 95, 78], 79.5))] } as LoadResult, META);
    assert.equal(report.checks.find((c) => c.run === 'streaming')!.pass, false);
    assert.equal(report.pass, false);
  });

  it('shows each target\'s CPU per request and the throughput ratio it implies at equal CPU', () => {
    const report = buildReport(
      { targets: [target('bare', run([100, 100], 100, 80), run([50, 50], 50, 150)), target('llmtap', run([90, 90], 90, 100), run([40, 40], 40, 200))] } as LoadResult,
      META,
    );
    const text = formatReport(report);
    assert.match(text, /CPU µs\/req/);
    const llmtapRow = text.split('\n').find((l) => /^non-streaming\s+bare/.test(l) === false && /\sllmtap\s/.test(l))!;
    assert.match(llmtapRow, /\s100\s/, llmtapRow);
    assert.match(text, /At equal CPU, throughput would compare as llmtap 0\.80× bare \(non-streaming\), llmtap 0\.75× bare \(streaming\)/);
  });

  it('falls back to the whole runs\' ratio when the rounds cannot be paired', () => {
    assert.deepEqual(pairedRatio(run(null, 900), run(null, 1000)), { value: 0.9, rounds: null });
    assert.deepEqual(pairedRatio(run([900, 950], 925), run([1000, 1000, 1000], 1000)), { value: 0.925, rounds: null });
  });

  it('shows a control\'s ratio to its twin as the run\'s noise, and never checks it', () => {
    const meta: ReportMeta = { ...META, roles: { ...META.roles, 'llmtap (control)': 'control' }, controls: { 'llmtap (control)': 'llmtap' } };
    const report = buildReport(
      {
        targets: [
          target('bare', run([100, 100, 100], 100), run([55, 55, 55], 55)),
          target('llmtap', run([90, 90, 90], 90), run([50, 50, 50], 50)),
          // The same build, one noisy round: 0.80, 1.00, 0.95 → median 0.95; streaming 1.10, 1.00, 1.04 → 1.04.
          target('llmtap (control)', run([72, 90, 85.5], 82.5), run([55, 50, 52], 52.3)),
        ],
      } as LoadResult,
      meta,
    );
    assert.deepEqual(
      report.noise.map((n) => [n.run, n.control, n.twin, Math.round(n.value * 100) / 100]),
      [
        ['nonStreaming', 'llmtap (control)', 'llmtap', 0.95],
        ['streaming', 'llmtap (control)', 'llmtap', 1.04],
      ],
    );
    assert.equal(report.checks.some((c) => c.candidate === 'llmtap (control)'), false);
    assert.equal(report.pass, true);
    const text = formatReport(report);
    const row = text.split('\n').find((l) => l.includes('llmtap (control)') && /^non-streaming|^\s/.test(l))!;
    assert.match(row, /0\.95× \[0\.80–1\.00\] vs llmtap \(the same build: noise\)/, row);
    assert.match(text, /noise: llmtap \(control\) is llmtap started twice\. Their ratio read 0\.95× \(non-streaming\), 1\.04× \(streaming\):/);
    assert.match(text, /within ±0\.05 of its limit/);
  });
});
