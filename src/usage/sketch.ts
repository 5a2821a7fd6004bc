// A fixed log-bucket histogram of milliseconds: small, mergeable, and good for p50/p95/p99 within about 4.5%.

/** Bucket boundaries grow by 2^(1/8) from 0.01 ms: bucket i holds values in (0.01·γ^(i-1), 0.01·γ^i]. */
const GAMMA = 2 ** (1 / 8);
const LOG_GAMMA = Math.log(GAMMA);
const FLOOR_MS = 0.01;
/** 0.01 ms · γ^240 ≈ 11 days: anything longer lands in the last bucket. */
const TOP = 240;

export interface Sketch {
  count: number;
  /** exact extremes, so estimates never leave the range seen */
  min: number | null;
  max: number | null;
  /** bucket index → count; only buckets in use */
  bins: Record<string, number>;
}

export const emptySketch = (): Sketch => ({ count: 0, min: null, max: null, bins: {} });

export function bucketOf(ms: number): number {
  if (!(ms > FLOOR_MS)) return 0;
  return Math.min(TOP, Math.ceil(Math.log(ms / FLOOR_MS) / LOG_GAMMA - 1e-9));
}

/** The value a bucket stands for: the geometric middle of its range. */
const valueOf = (bucket: number): number => (bucket === 0 ? FLOOR_MS : FLOOR_MS * GAMMA ** (bucket - 0.5));

export function addToSketch(s: Sketch, ms: number | null): void {
  if (ms === null || !Number.isFinite(ms)) return;
  const b = String(bucketOf(ms));
  s.bins[b] = (s.bins[b] ?? 0) + 1;
  s.count++;
  s.min = s.min === null ? ms : Math.min(s.min, ms);
  s.max = s.max === null ? ms : Math.max(s.max, ms);
}

export function mergeSketch(into: Sketch, from: Sketch): void {
  for (const [b, n] of Object.entries(from.bins)) into.bins[b] = (into.bins[b] ?? 0) + n;
  into.count += from.count;
  if (from.min !== null) into.min = into.min === null ? from.min : Math.min(into.min, from.min);
  if (from.max !== null) into.max = into.max === null ? from.max : Math.max(into.max, from.max);
}

/** The q-quantile (0 < q ≤ 1) by nearest rank, estimated from the buckets; null when empty. */
export function sketchQuantile(s: Sketch, q: number): number | null {
  if (s.count === 0) return null;
  const rank = Math.max(1, Math.ceil(q * s.count));
  if (rank >= s.count) return s.max;
  const buckets = Object.keys(s.bins)
    .map(Number)
    .sort((a, b) => a - b);
  let seen = 0;
  for (const b of buckets) {
    seen += s.bins[String(b)]!;
    if (seen >= rank) return clamp(valueOf(b), s.min!, s.max!);
  }
  return s.max;
}

/** The q-quantile by nearest rank of values already sorted ascending; null when empty. */
export function exactQuantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length))) - 1]!;
}

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));
