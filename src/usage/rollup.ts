// Daily totals per upstream, provider and model: what the oldest records become once the store passes its cap.
import type { DialectName } from '../exchange/record.ts';
import { isError, type UsageRecord } from './record.ts';
import { addToSketch, emptySketch, type Sketch } from './sketch.ts';
import { toNanos } from './prices.ts';

/** Exact sums (cost in integer nano-dollars, so the order of addition never changes a total). */
export interface Totals {
  requests: number;
  errors: number;
  inputTokens: number;
  outputTokens: number;
  totalTokens: number;
  cachedTokens: number;
  reasoningTokens: number;
  /** requests whose tokens llmtap estimated (the upstream reported none) */
  estimatedRequests: number;
  requestBytes: number;
  responseBytes: number;
  costNanos: number;
  /** requests that had a price (the rest have cost null) */
  pricedRequests: number;
}

export interface Rollup extends Totals {
  /** UTC day, YYYY-MM-DD */
  day: string;
  upstream: string;
  upstreamUrl: string;
  provider: DialectName;
  model: string;
  ttft: Sketch;
  duration: Sketch;
  /** time of the first and last request rolled in */
  first: string;
  last: string;
}

/** Distinct models kept per day and upstream; a client inventing model names cannot grow the file without bound. */
export const ROLLUP_MODELS_PER_DAY = 100;
export const OTHER_MODEL = '(other)';

export const emptyTotals = (): Totals => ({
  requests: 0,
  errors: 0,
  inputTokens: 0,
  outputTokens: 0,
  totalTokens: 0,
  cachedTokens: 0,
  reasoningTokens: 0,
  estimatedRequests: 0,
  requestBytes: 0,
  responseBytes: 0,
  costNanos: 0,
  pricedRequests: 0,
});

export function addRecord(t: Totals, r: UsageRecord): void {
  t.requests++;
  if (isError(r)) t.errors++;
  t.inputTokens += r.inputTokens ?? 0;
  t.outputTokens += r.outputTokens ?? 0;
  t.totalTokens += r.totalTokens ?? (r.inputTokens ?? 0) + (r.outputTokens ?? 0);
  t.cachedTokens += r.cachedTokens ?? 0;
  t.reasoningTokens += r.reasoningTokens ?? 0;
  if (r.tokensSource === 'estimated') t.estimatedRequests++;
  t.requestBytes += r.requestBytes;
  t.responseBytes += r.responseBytes;
  if (r.cost !== null) {
    t.costNanos += toNanos(r.cost);
    t.pricedRequests++;
  }
}

export function mergeTotals(into: Totals, from: Totals): void {
  into.requests += from.requests;
  into.errors += from.errors;
  into.inputTokens += from.inputTokens;
  into.outputTokens += from.outputTokens;
  into.totalTokens += from.totalTokens;
  into.cachedTokens += from.cachedTokens;
  into.reasoningTokens += from.reasoningTokens;
  into.estimatedRequests += from.estimatedRequests;
  into.requestBytes += from.requestBytes;
  into.responseBytes += from.responseBytes;
  into.costNanos += from.costNanos;
  into.pricedRequests += from.pricedRequests;
}

const dayOf = (iso: string): string => iso.slice(0, 10);

/** Folds records into the daily rollups (in place): the records' totals move over exactly, their timings into sketches. */
export function rollUp(rollups: Rollup[], records: readonly UsageRecord[]): void {
  const index = new Map<string, Rollup>();
  const modelsPerDay = new Map<string, number>();
  for (const b of rollups) {
    index.set(keyOf(b.day, b.upstream, b.provider, b.model), b);
    const dayKey = `${b.day}\u0000${b.upstream}`;
    modelsPerDay.set(dayKey, (modelsPerDay.get(dayKey) ?? 0) + 1);
  }
  for (const r of records) {
    const day = dayOf(r.time);
    let key = keyOf(day, r.upstream, r.provider, r.model);
    let bucket = index.get(key);
    if (!bucket) {
      const dayKey = `${day}\u0000${r.upstream}`;
      const n = modelsPerDay.get(dayKey) ?? 0;
      let model = r.model;
      if (n >= ROLLUP_MODELS_PER_DAY) {
        model = OTHER_MODEL;
        key = keyOf(day, r.upstream, r.provider, model);
        bucket = index.get(key);
      }
      if (!bucket) {
        bucket = { day, upstream: r.upstream, upstreamUrl: r.upstreamUrl, provider: r.provider, model, ...emptyTotals(), ttft: emptySketch(), duration: emptySketch(), first: r.time, last: r.time };
        index.set(key, bucket);
        rollups.push(bucket);
        modelsPerDay.set(dayKey, n + 1);
      }
    }
    addRecord(bucket, r);
    addToSketch(bucket.ttft, r.ttft);
    addToSketch(bucket.duration, r.duration);
    if (r.time < bucket.first) bucket.first = r.time;
    if (r.time > bucket.last) bucket.last = r.time;
  }
}

const keyOf = (day: string, upstream: string, provider: string, model: string): string => `${day}\u0000${upstream}\u0000${provider}\u0000${model}`;

