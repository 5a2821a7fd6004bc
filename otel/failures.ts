// Wraps exporters so a failing backend is logged once (endpoint and cause), then only counted; nothing reaches the host.
import type { ExportResult } from '@opentelemetry/core';
import type { SpanExporter, ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics';

/** ExportResultCode.FAILED, spelled out so this module needs no runtime import of @opentelemetry/core. */
const FAILED = 1;

export interface ExportFailure {
  signal: 'traces' | 'metrics';
  exporter: string;
  endpoint: string;
  /** the lowest-level cause, in words ("connect ECONNREFUSED 127.0.0.1:4318") */
  cause: string;
}

export interface FailureTracker {
  /** counts a failure; the first of each exporter goes to the log */
  report(signal: ExportFailure['signal'], exporter: string, endpoint: string, error: unknown): void;
  /** failures so far, per signal and exporter (read by the llmtap.telemetry.export_failures instrument) */
  counts(): ReadonlyArray<{ signal: ExportFailure['signal']; exporter: string; count: number }>;
}

/** The innermost cause of an export error, with its code when the message lacks it. */
export function describeExportError(err: unknown): string {
  let e: unknown = err;
  for (let i = 0; i < 5 && e instanceof Error && e.cause instanceof Error; i++) e = e.cause;
  if (e instanceof AggregateError && e.errors.length > 0) e = e.errors[0];
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    const msg = e.message || e.name;
    return code && !msg.includes(String(code)) ? `${code}: ${msg}` : msg;
  }
  return err === undefined ? 'export failed (no error given)' : String(err);
}

export function createFailureTracker(logFirst: (f: ExportFailure, message: string) => void): FailureTracker {
  const byExporter = new Map<string, { signal: ExportFailure['signal']; exporter: string; count: number }>();
  return {
    report(signal, exporter, endpoint, error) {
      const key = `${signal} ${exporter}`;
      let entry = byExporter.get(key);
      if (!entry) {
        entry = { signal, exporter, count: 0 };
        byExporter.set(key, entry);
      }
      entry.count++;
      if (entry.count !== 1) return;
      const f: ExportFailure = { signal, exporter, endpoint, cause: describeExportError(error) };
      try {
        logFirst(
          f,
          `telemetry: ${signal} export to ${exporter} (${endpoint}) failed: ${f.cause} (proxying goes on; further failures are counted in llmtap.telemetry.export_failures, not logged)`,
        );
      } catch {
        // a broken logger must not break exporting either
      }
    },
    counts: () => [...byExporter.values()],
  };
}

type Done = (result: ExportResult) => void;

/** After a failure, exports are skipped for a while (doubling up to the cap, reset by a success). */
const BACKOFF = { firstMs: 1000, maxMs: 30_000 } as const;

/**
 * Calls the exporter unless it failed recently, turning a throw or a FAILED result into one report; the SDK's
 * callback always gets a result. Skipping matters: a backend that refuses at once would otherwise have every batch
 * serialized and sent in a tight loop, and that CPU is taken from proxying.
 */
interface Guard {
  (run: (done: Done) => void, done: Done): void;
  /** the backend failed recently: an export now would be skipped */
  paused(): boolean;
}

const skippedError = (): Error => new Error('export skipped: the backend failed recently');

function createGuard(fail: (error: unknown) => void): Guard {
  let retryAt = 0;
  let backoffMs: number = BACKOFF.firstMs;
  const paused = (): boolean => retryAt !== 0 && Date.now() < retryAt;
  const guard: Guard = (run, done) => {
    if (paused()) {
      const skipped = skippedError();
      fail(skipped);
      done({ code: FAILED, error: skipped });
      return;
    }
    let settled = false;
    const finish: Done = (result) => {
      if (settled) return;
      settled = true;
      if (result.code === FAILED) {
        fail(result.error);
        retryAt = Date.now() + backoffMs;
        backoffMs = Math.min(backoffMs * 2, BACKOFF.maxMs);
      } else {
        retryAt = 0;
        backoffMs = BACKOFF.firstMs;
      }
      try {
        done(result);
      } catch {
        // the SDK's own callback; nothing to do about it here
      }
    };
    try {
      run(finish);
    } catch (err) {
      finish({ code: FAILED, error: err instanceof Error ? err : new Error(String(err)) });
    }
  };
  guard.paused = paused;
  return guard;
}

export function guardSpanExporter(inner: SpanExporter, name: string, endpoint: string, tracker: FailureTracker): SpanExporter {
  const fail = (error: unknown) => tracker.report('traces', name, endpoint, error);
  const guarded = createGuard(fail);
  return {
    export(spans: ReadableSpan[], done: Done) {
      guarded((d) => inner.export(spans, d), done);
    },
    shutdown: () => Promise.resolve(inner.shutdown()).catch(fail),
    forceFlush: () => Promise.resolve(inner.forceFlush?.()).catch(fail),
  };
}

export function guardMetricExporter(inner: PushMetricExporter, name: string, endpoint: string, tracker: FailureTracker): PushMetricExporter {
  const fail = (error: unknown) => tracker.report('metrics', name, endpoint, error);
  const guard = createGuard(fail);
  const guarded: PushMetricExporter = {
    export(metrics: ResourceMetrics, done: Done) {
      guard((d) => inner.export(metrics, d), done);
    },
    shutdown: () => Promise.resolve(inner.shutdown()).catch(fail),
    forceFlush: () => Promise.resolve(inner.forceFlush()).catch(fail),
  };
  if (inner.selectAggregationTemporality) guarded.selectAggregationTemporality = inner.selectAggregationTemporality.bind(inner);
  if (inner.selectAggregation) guarded.selectAggregation = inner.selectAggregation.bind(inner);
  return guarded;
}

/** The guard for llmtap's own OTLP span exporter (otlp-trace-exporter.ts), whose queue asks it before encoding. */
export interface GuardedSpanSend<T> {
  /** sends unless the backend failed recently (then counts a skip); calls back when done either way */
  send(items: T, done: () => void): void;
  /** the backend failed recently: spans ending now would only be skipped, so they are not encoded */
  paused(): boolean;
  /** counts a batch's worth of spans dropped unencoded while paused, as send() counts a skipped batch */
  skipped(): void;
  /** a batch that could not be built (an encoding error) */
  failed(error: unknown): void;
}

export function guardSpanSend<T>(send: (items: T, done: (error: Error | null) => void) => void, name: string, endpoint: string, tracker: FailureTracker): GuardedSpanSend<T> {
  const fail = (error: unknown) => tracker.report('traces', name, endpoint, error);
  const guarded = createGuard(fail);
  return {
    send: (items, done) => guarded((d) => send(items, (error) => d(error ? { code: FAILED, error } : { code: 0 })), () => done()),
    paused: guarded.paused,
    skipped: () => fail(skippedError()),
    failed: fail,
  };
}
