// Turns the load figures into the bench's verdict: the issue's targets checked, one table for people, JSON for machines.
import type { LoadResult, RunFigures, RunName, TargetFigures } from './load.ts';

/**
 * How a target takes part in the report: candidates are checked against the reference; a control is a second copy
 * of another target, whose ratio to it shows how far this machine moves a ratio between two identical processes.
 */
export type Role = 'baseline' | 'reference' | 'candidate' | 'control';

export interface ReportMeta {
  node: string;
  cpus: number;
  pinned: boolean;
  durationS: number;
  connections: number;
  ttfbRequests: number;
  roles: Record<string, Role>;
  /** candidates compared with another target than the reference (telemetry vs plain llmtap), with their own ratio limit */
  against?: Record<string, { target: string; ratio: number }>;
  /** controls and the target each is a copy of */
  controls?: Record<string, string>;
}

/** A target of the issue. `ratio`: candidate req/s ÷ reference req/s ≥ limit; `delta`: candidate p50 − reference p50 ≤ limit ms. */
export interface CheckSpec {
  run: RunName;
  kind: 'ratio' | 'delta';
  limit: number;
}

export const CHECKS: readonly CheckSpec[] = [
  { run: 'nonStreaming', kind: 'ratio', limit: 0.8 },
  { run: 'streaming', kind: 'ratio', limit: 0.8 },
  { run: 'ttfb', kind: 'delta', limit: 1 },
];

export interface CheckResult extends CheckSpec {
  candidate: string;
  reference: string;
  /** ratio checks: the median of the rounds' ratios (see pairedRatio); delta checks: the difference of the medians */
  value: number;
  /** ratio checks: candidate ÷ reference req/s in each round, in round order (null when the runs had no rounds to pair) */
  rounds: number[] | null;
  pass: boolean;
  /** why a check fails whatever its value: a run with errors or a target that answered wrongly */
  spoiled: string | null;
}

/** A control's throughput ÷ its twin's, paired by round as the checks are: a ratio both would have without noise is 1. */
export interface NoiseFigure {
  run: RunName;
  control: string;
  twin: string;
  value: number;
  rounds: number[] | null;
}

export interface Report {
  meta: ReportMeta;
  targets: TargetFigures[];
  checks: CheckResult[];
  /** the controls' ratios (no checks: they only tell how far noise alone moves a ratio in this run) */
  noise: NoiseFigure[];
  /** true when there were checks and every one passed */
  pass: boolean;
}

/** Slices of one run further apart than this (relative to their mean) mean the machine was not steady. */
export const UNSTEADY_SPREAD = 0.2;

const RUN_LABEL: Record<RunName, string> = {
  nonStreaming: 'non-streaming',
  streaming: 'streaming',
  ttfb: 'ttfb',
};

export function median(values: readonly number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/**
 * Candidate ÷ reference throughput, pairing the slices that ran in the same round (seconds apart) and taking the
 * median over the rounds. On a shared machine the capacity left to the bench swings by 20-40% from one second to
 * the next; a ratio of whole-run totals carries every swing that fell on one target and not the other, while a
 * round's two slices mostly see the same machine, and the median drops the rounds a burst split.
 */
export function pairedRatio(candidate: RunFigures, reference: RunFigures): { value: number; rounds: number[] | null } {
  const c = candidate.sliceRps;
  const r = reference.sliceRps;
  if (!c || !r || c.length !== r.length || c.length < 2) return { value: (candidate.rps ?? NaN) / (reference.rps ?? NaN), rounds: null };
  const rounds = c.map((rate, i) => rate / r[i]!);
  return { value: median(rounds), rounds };
}

export function failures(run: RunFigures): number {
  return run.non2xx + run.errors;
}

export function buildReport(result: LoadResult, meta: ReportMeta): Report {
  const defaultReference = result.targets.find((t) => meta.roles[t.name] === 'reference');
  const checks: CheckResult[] = [];
  if (defaultReference) {
    for (const candidate of result.targets.filter((t) => meta.roles[t.name] === 'candidate')) {
      const other = meta.against?.[candidate.name];
      const reference = (other && result.targets.find((t) => t.name === other.target)) || defaultReference;
      for (const base of CHECKS) {
        const spec = other && base.kind === 'ratio' ? { ...base, limit: other.ratio } : base;
        const c = candidate.runs[spec.run];
        const r = reference.runs[spec.run];
        const { value, rounds } = spec.kind === 'ratio' ? pairedRatio(c, r) : { value: (c.p50Ms ?? NaN) - (r.p50Ms ?? NaN), rounds: null };
        const spoiled =
          [candidate, reference].flatMap((t) => [
            ...(t.sanity.length ? [`${t.name} answered wrongly`] : []),
            ...(failures(t.runs[spec.run]) ? [`${t.name} had errors`] : []),
          ])[0] ?? null;
        const withinLimit = spec.kind === 'ratio' ? value >= spec.limit : value <= spec.limit;
        checks.push({ ...spec, candidate: candidate.name, reference: reference.name, value, rounds, pass: withinLimit && !spoiled && Number.isFinite(value), spoiled });
      }
    }
  }
  const noise: NoiseFigure[] = [];
  for (const [control, twin] of Object.entries(meta.controls ?? {})) {
    const c = result.targets.find((t) => t.name === control);
    const r = result.targets.find((t) => t.name === twin);
    if (!c || !r) continue;
    for (const run of ['nonStreaming', 'streaming'] as const) noise.push({ run, control, twin, ...pairedRatio(c.runs[run], r.runs[run]) });
  }
  return { meta, targets: result.targets, checks, noise, pass: checks.length > 0 && checks.every((c) => c.pass) };
}

/** Each ratio check's pair compared by CPU per request: reference µs ÷ candidate µs, the throughput ratio if both had the same CPU. */
export function equalCpuRatios(report: Report): string[] {
  const out: string[] = [];
  for (const c of report.checks) {
    if (c.kind !== 'ratio') continue;
    const run = c.run;
    const cand = report.targets.find((t) => t.name === c.candidate)?.runs[run].cpuUsPerReq;
    const ref = report.targets.find((t) => t.name === c.reference)?.runs[run].cpuUsPerReq;
    if (!cand || !ref) continue;
    out.push(`${c.candidate} ${fixed(ref / cand, 2)}× ${c.reference} (${RUN_LABEL[run]})`);
  }
  return out;
}

function fixed(n: number | null, digits: number): string {
  if (n === null || !Number.isFinite(n)) return '—';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function describeCheck(c: CheckResult, referenceName: string): string {
  // Rounded first, so that −0.001 reads +0.00 rather than −0.00.
  const shown = Math.round(c.value * 100) / 100 || 0;
  const range = c.rounds ? ` [${fixed(Math.min(...c.rounds), 2)}–${fixed(Math.max(...c.rounds), 2)}]` : '';
  const figure = c.kind === 'ratio' ? `${fixed(shown, 2)}×${range}` : `${shown >= 0 ? '+' : ''}${fixed(shown, 2)} ms`;
  const limit = c.kind === 'ratio' ? `≥ ${fixed(c.limit, 2)}×` : `≤ +${c.limit} ms`;
  return `${figure} (${limit}) ${c.pass ? 'PASS' : 'FAIL'}${c.spoiled ? ` (${c.spoiled})` : ''}${c.reference !== referenceName ? ` vs ${c.reference}` : ''}`;
}

function describeNoise(n: NoiseFigure): string {
  const range = n.rounds ? ` [${fixed(Math.min(...n.rounds), 2)}–${fixed(Math.max(...n.rounds), 2)}]` : '';
  return `${fixed(Math.round(n.value * 100) / 100, 2)}×${range} vs ${n.twin} (the same build: noise)`;
}

function table(rows: string[][], rightAligned: ReadonlySet<number>): string {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => (r[col] ?? '').length)));
  return rows
    .map((r) => r.map((cell, col) => (rightAligned.has(col) ? cell.padStart(widths[col]!) : cell.padEnd(widths[col]!))).join('  ').trimEnd())
    .join('\n');
}

/** The one table: a row per run and target, the candidate rows carrying the comparison with the reference. */
export function formatReport(report: Report): string {
  const { meta } = report;
  const reference = report.targets.find((t) => meta.roles[t.name] === 'reference')?.name ?? 'reference';
  const header = ['run', 'target', 'req/s', 'CPU µs/req', 'p50 ms', 'p99 ms', 'errors', `vs ${reference}`];
  const rows: string[][] = [header];
  const notes: string[] = [];
  const unsteadyRuns: string[] = [];
  for (const run of ['nonStreaming', 'streaming', 'ttfb'] as const) {
    report.targets.forEach((t, i) => {
      const f = t.runs[run];
      const bad = failures(f);
      if (bad) notes.push(`! ${RUN_LABEL[run]} · ${t.name}: ${f.non2xx} non-2xx responses, ${f.errors} connection errors/timeouts (${f.ok} ok)`);
      const unsteady = f.spread !== null && f.spread > UNSTEADY_SPREAD;
      if (unsteady) unsteadyRuns.push(`${RUN_LABEL[run]} ${t.name} ${Math.round(f.spread! * 100)}%`);
      const check = report.checks.find((c) => c.run === run && c.candidate === t.name);
      const noise = report.noise.find((n) => n.run === run && n.control === t.name);
      rows.push([
        i === 0 ? RUN_LABEL[run] : '',
        t.name,
        `${fixed(f.rps, 0)}${unsteady ? ' ~' : ''}`,
        fixed(f.cpuUsPerReq, 0),
        fixed(f.p50Ms, 2),
        fixed(f.p99Ms, 2),
        bad ? `${bad} !` : '0',
        check ? describeCheck(check, reference) : noise ? describeNoise(noise) : '',
      ]);
    });
  }
  for (const t of report.targets) for (const problem of t.sanity) notes.push(`! ${t.name}: ${problem}`);
  const paired = report.checks.find((c) => c.rounds);
  if (paired) {
    notes.push(
      `ratios: the median over ${paired.rounds!.length} rounds of the two targets' req/s in the same round, seconds apart; [the lowest–the highest round]`,
    );
  }
  const atEqualCpu = equalCpuRatios(report);
  if (atEqualCpu.length) {
    notes.push(
      `CPU µs/req: the servers' CPU time (proxy and upstream) per response. At equal CPU, throughput would compare as ${atEqualCpu.join(', ')}`,
    );
  }
  if (report.noise.length) {
    const worst = Math.max(...report.noise.map((n) => Math.abs(n.value - 1)));
    const pairs = [...new Set(report.noise.map((n) => `${n.control} is ${n.twin} started twice`))].join('; ');
    notes.push(
      `noise: ${pairs}. Their ratio read ${report.noise.map((n) => `${fixed(n.value, 2)}× (${RUN_LABEL[n.run]})`).join(', ')}:`,
      `  a ratio check within ±${fixed(worst, 2)} of its limit is within what this run's noise did to two identical processes`,
    );
  }
  if (unsteadyRuns.length) {
    notes.push(
      `~ unsteady: the slices of a run differed by more than ${UNSTEADY_SPREAD * 100}% of their mean (${unsteadyRuns.join(', ')});`,
      '  something else was using the CPUs: rerun on a quiet machine or lengthen --duration',
    );
  }

  const setup = [
    `llmtap bench · node ${meta.node} · ${meta.cpus} CPUs · ${meta.pinned ? 'servers on CPU 1, load on CPU 0' : 'unpinned'}`,
    `${meta.durationS} s per throughput run, ${meta.connections} connections; ttfb over ${meta.ttfbRequests} sequential streamed requests per target`,
  ];
  const passed = report.checks.filter((c) => c.pass).length;
  const verdict = report.checks.length
    ? `targets: ${report.pass ? 'PASS' : 'FAIL'} (${passed}/${report.checks.length} met)`
    : 'targets: not checked (no reference and candidate both ran)';
  return [...setup, '', table(rows, new Set([2, 3, 4, 5, 6])), '', ...notes, ...(notes.length ? [''] : []), verdict].join('\n');
}
