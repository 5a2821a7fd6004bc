// Counts and percentiles of ttft and duration per model, for the inspector's --stats.
import type { ExchangeSummary } from './exchanges.ts';

export interface Percentiles {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface ModelStats {
  model: string;
  count: number;
  errors: number;
  tokensIn: number;
  tokensOut: number;
  ttft: Percentiles;
  duration: Percentiles;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

function pcts(values: number[]): Percentiles {
  const s = values.sort((a, b) => a - b);
  return { p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99) };
}

/** One row per model, busiest first, then a row for all of them ('*'). */
export function statsByModel(rows: readonly ExchangeSummary[]): ModelStats[] {
  const groups = new Map<string, ExchangeSummary[]>();
  for (const r of rows) {
    const g = groups.get(r.model);
    if (g) g.push(r);
    else groups.set(r.model, [r]);
  }
  const one = (model: string, g: readonly ExchangeSummary[]): ModelStats => ({
    model,
    count: g.length,
    errors: g.filter((r) => r.outcome !== 'ok' || (r.status !== null && r.status >= 400)).length,
    tokensIn: g.reduce((n, r) => n + (r.tokensIn ?? 0), 0),
    tokensOut: g.reduce((n, r) => n + (r.tokensOut ?? 0), 0),
    ttft: pcts(g.flatMap((r) => (r.ttft === null ? [] : [r.ttft]))),
    duration: pcts(g.flatMap((r) => (r.duration === null ? [] : [r.duration]))),
  });
  const out = [...groups.entries()].map(([m, g]) => one(m, g)).sort((a, b) => b.count - a.count || a.model.localeCompare(b.model));
  if (groups.size > 1) out.push(one('*', rows));
  return out;
}
