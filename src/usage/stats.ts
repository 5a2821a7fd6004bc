// Totals and p50/p95/p99 of ttft and duration over records and rollups, overall and per model and upstream, with filters.
import type { UsageRecord } from './record.ts';
import { addRecord, emptyTotals, mergeTotals, type Rollup, type Totals } from './rollup.ts';
import { addToSketch, emptySketch, exactQuantile, mergeSketch, sketchQuantile, type Sketch } from './sketch.ts';

export interface StatsFilter {
  model?: string;
  provider?: string;
  upstream?: string;
  /** ISO 8601 bounds on the request time, inclusive */
  since?: string;
  until?: string;
}

export interface Percentiles {
  count: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  /** false when rolled-up history is included: then these come from log-bucket sketches (within ~4.5%) */
  exact: boolean;
}

/** The store's Totals as the API shows them: cost in USD instead of nano-dollars, plus percentiles. */
export interface Summary extends Omit<Totals, 'costNanos'> {
  /** USD over the requests that had a price */
  cost: number;
  unpricedRequests: number;
  ttftMs: Percentiles;
  durationMs: Percentiles;
}

export interface Stats {
  filters: StatsFilter;
  totals: Summary;
  byModel: Array<Summary & { model: string; provider: string }>;
  byUpstream: Array<Summary & { upstream: string; upstreamUrl: string }>;
  sources: { records: number; rollups: number; rollupsLeftOut: number; oldest: string | null; newest: string | null };
}

interface Group {
  totals: Totals;
  ttft: number[];
  duration: number[];
  ttftSketch: Sketch | null;
  durationSketch: Sketch | null;
}

const newGroup = (): Group => ({ totals: emptyTotals(), ttft: [], duration: [], ttftSketch: null, durationSketch: null });

function percentiles(values: number[], sketch: Sketch | null): Percentiles {
  if (sketch) {
    const s = emptySketch();
    mergeSketch(s, sketch);
    for (const v of values) addToSketch(s, v);
    return { count: s.count, p50: sketchQuantile(s, 0.5), p95: sketchQuantile(s, 0.95), p99: sketchQuantile(s, 0.99), exact: false };
  }
  const sorted = values.slice().sort((a, b) => a - b);
  return { count: sorted.length, p50: exactQuantile(sorted, 0.5), p95: exactQuantile(sorted, 0.95), p99: exactQuantile(sorted, 0.99), exact: true };
}

export function summarize(g: Group): Summary {
  const t = g.totals;
  return {
    requests: t.requests,
    errors: t.errors,
    inputTokens: t.inputTokens,
    outputTokens: t.outputTokens,
    totalTokens: t.totalTokens,
    cachedTokens: t.cachedTokens,
    reasoningTokens: t.reasoningTokens,
    estimatedRequests: t.estimatedRequests,
    requestBytes: t.requestBytes,
    responseBytes: t.responseBytes,
    cost: t.costNanos / 1e9,
    pricedRequests: t.pricedRequests,
    unpricedRequests: t.requests - t.pricedRequests,
    ttftMs: percentiles(g.ttft, g.ttftSketch),
    durationMs: percentiles(g.duration, g.durationSketch),
  };
}

const matches = (f: StatsFilter, r: { model: string; provider: string; upstream: string }): boolean =>
  (f.model === undefined || r.model === f.model) && (f.provider === undefined || r.provider === f.provider) && (f.upstream === undefined || r.upstream === f.upstream);

/** Whether a record's time (ISO 8601, as toISOString writes it) is inside the filter's window; the strings compare in time order. */
const inWindow = (f: StatsFilter, time: string): boolean => (f.since === undefined || time >= f.since) && (f.until === undefined || time <= f.until);

export function computeStats(records: readonly UsageRecord[], rollups: readonly Rollup[], f: StatsFilter): Stats {
  const all = newGroup();
  const byModel = new Map<string, { model: string; provider: string; g: Group }>();
  const byUpstream = new Map<string, { upstream: string; upstreamUrl: string; g: Group }>();
  const groupsOf = (r: { model: string; provider: string; upstream: string; upstreamUrl: string }): Group[] => {
    const mk = `${r.provider}\u0000${r.model}`;
    let m = byModel.get(mk);
    if (!m) byModel.set(mk, (m = { model: r.model, provider: r.provider, g: newGroup() }));
    let u = byUpstream.get(r.upstream);
    if (!u) byUpstream.set(r.upstream, (u = { upstream: r.upstream, upstreamUrl: r.upstreamUrl, g: newGroup() }));
    return [all, m.g, u.g];
  };

  let used = 0;
  let leftOut = 0;
  let oldest: string | null = null;
  let newest: string | null = null;
  // Rolled-up days count only when the whole of what they hold is inside the window: a day is never split.
  for (const b of rollups) {
    if (!matches(f, b)) continue;
    if (!inWindow(f, b.first) || !inWindow(f, b.last)) {
      if (inWindow(f, b.first) || inWindow(f, b.last)) leftOut++;
      continue;
    }
    used++;
    if (oldest === null || b.first < oldest) oldest = b.first;
    if (newest === null || b.last > newest) newest = b.last;
    for (const g of groupsOf(b)) {
      mergeTotals(g.totals, b);
      g.ttftSketch ??= emptySketch();
      g.durationSketch ??= emptySketch();
      mergeSketch(g.ttftSketch, b.ttft);
      mergeSketch(g.durationSketch, b.duration);
    }
  }
  let count = 0;
  for (const r of records) {
    if (!matches(f, r) || !inWindow(f, r.time)) continue;
    count++;
    if (oldest === null || r.time < oldest) oldest = r.time;
    if (newest === null || r.time > newest) newest = r.time;
    for (const g of groupsOf(r)) {
      addRecord(g.totals, r);
      if (r.ttft !== null) g.ttft.push(r.ttft);
      g.duration.push(r.duration);
    }
  }
  const byRequests = (a: { s: Summary }, b: { s: Summary }): number => b.s.requests - a.s.requests;
  return {
    filters: f,
    totals: summarize(all),
    byModel: [...byModel.values()]
      .map((m) => ({ s: summarize(m.g), m }))
      .sort(byRequests)
      .map(({ s, m }) => ({ model: m.model, provider: m.provider, ...s })),
    byUpstream: [...byUpstream.values()]
      .map((u) => ({ s: summarize(u.g), u }))
      .sort(byRequests)
      .map(({ s, u }) => ({ upstream: u.upstream, upstreamUrl: u.upstreamUrl, ...s })),
    sources: { records: count, rollups: used, rollupsLeftOut: leftOut, oldest, newest },
  };
}
