// Spans as plain data (built once, at the exchange's end), their ids, times and sampling: no SDK Span objects per request.
import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { SamplerName } from './settings.ts';

export type AttrValue = string | number | boolean | ReadonlyArray<string | number | boolean | null | undefined>;
/** Attributes as a flat list of key, value pairs (cheaper to build and to walk than an object); null/undefined values are skipped. */
export type SpanAttrs = Array<string | AttrValue | null | undefined>;

/** SpanKind as @opentelemetry/api numbers it (SERVER 1, CLIENT 2); OTLP adds one. */
export const KIND = { server: 1, client: 2 } as const;
/** SpanStatusCode: UNSET 0, ERROR 2 (the same numbers in OTLP). */
export const STATUS = { unset: 0, error: 2 } as const;

export interface SpanEventData {
  name: string;
  /** performance.now() milliseconds */
  at: number;
  attributes: SpanAttrs;
}

/** One finished, sampled span. Times are performance.now() milliseconds, turned into epoch nanos when exported. */
export interface SpanData {
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  /** the parent span is another process's (an incoming traceparent) */
  parentRemote: boolean;
  traceState: string | null;
  name: string;
  kind: number;
  start: number;
  end: number;
  attributes: SpanAttrs;
  events: SpanEventData[];
  statusCode: number;
  statusMessage: string | null;
}

// Ids from a pool of random bytes refilled 4 KiB at a time: one crypto call per ~170 requests instead of per id.
const POOL = Buffer.allocUnsafe(4096);
let poolAt = POOL.length;

function randomHex(bytes: number): string {
  for (;;) {
    if (poolAt + bytes > POOL.length) {
      randomFillSync(POOL);
      poolAt = 0;
    }
    const at = poolAt;
    poolAt += bytes;
    // All-zero ids are invalid in W3C Trace Context; vanishingly rare, but never sent.
    let any = 0;
    for (let i = at; i < at + bytes; i++) any |= POOL[i]!;
    if (any !== 0) return POOL.toString('hex', at, at + bytes);
  }
}

export const newTraceId = (): string => randomHex(16);
export const newSpanId = (): string => randomHex(8);

export interface ParentContext {
  traceId: string;
  spanId: string;
  sampled: boolean;
  traceState: string | null;
}

const TRACEPARENT = /^\s?([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\s?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** The W3C traceparent (and tracestate) a request came with, null when absent or invalid (as the SDK's propagator reads it). */
export function parseTraceparent(traceparent: string | string[] | undefined, tracestate: string | string[] | undefined): ParentContext | null {
  const tp = Array.isArray(traceparent) ? traceparent[0] : traceparent;
  if (!tp) return null;
  const m = TRACEPARENT.exec(tp);
  if (!m) return null;
  const [, version, traceId, spanId, flags, rest] = m;
  if (version === 'ff' || (version === '00' && rest)) return null;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return null;
  const ts = Array.isArray(tracestate) ? tracestate.join(',') : tracestate;
  return { traceId: traceId!, spanId: spanId!, sampled: (parseInt(flags!, 16) & 1) === 1, traceState: ts ? ts.trim() || null : null };
}

/** OTEL_TRACES_SAMPLER's decision for a new SERVER span, as the SDK's samplers decide (remote parent's flag for parentbased_*). */
export function createSampler(s: { name: SamplerName; ratio: number }): (traceId: string, parent: ParentContext | null) => boolean {
  const ratio = Math.min(1, Math.max(0, Number.isFinite(s.ratio) ? s.ratio : 0));
  const upper = ratio === 1 ? 0x100000000 : Math.floor(ratio * 0xffffffff);
  const byRatio = (traceId: string): boolean => {
    let acc = 0;
    for (let i = 0; i < 32; i += 8) acc = (acc ^ parseInt(traceId.slice(i, i + 8), 16)) >>> 0;
    return acc < upper;
  };
  switch (s.name) {
    case 'always_on':
      return () => true;
    case 'always_off':
      return () => false;
    case 'traceidratio':
      return (id) => byRatio(id);
    case 'parentbased_always_on':
      return (_id, p) => (p ? p.sampled : true);
    case 'parentbased_always_off':
      return (_id, p) => (p ? p.sampled : false);
    case 'parentbased_traceidratio':
      return (id, p) => (p ? p.sampled : byRatio(id));
  }
}

// performance.timeOrigin split into whole ms and the fraction, so epoch nanos keep sub-microsecond precision.
const ORIGIN = performance.timeOrigin;
const ORIGIN_MS = Math.floor(ORIGIN);
const ORIGIN_FRAC = ORIGIN - ORIGIN_MS;

/** A performance.now() reading as epoch [seconds, nanoseconds]. */
export function epochOf(perfMs: number): [number, number] {
  const r = ORIGIN_FRAC + perfMs;
  const whole = Math.floor(r);
  const ms = ORIGIN_MS + whole;
  const s = Math.floor(ms / 1000);
  let ns = (ms - s * 1000) * 1e6 + Math.round((r - whole) * 1e6);
  if (ns >= 1e9) return [s + 1, ns - 1e9];
  if (ns < 0) ns = 0;
  return [s, ns];
}

/** Epoch nanos as a decimal string (OTLP/JSON's int64 spelling), exact without BigInt. */
export function nanosString(perfMs: number): string {
  const [s, ns] = epochOf(perfMs);
  return `${s}${String(ns).padStart(9, '0')}`;
}
