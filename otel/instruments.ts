// The instruments read at collection time from llmtap's state (in-flight exchanges, export failures), created once per meter.
import type { Attributes, Meter } from '@opentelemetry/api';
import type { FailureTracker } from './failures.ts';
import { ATTR, METRIC } from './semconv.ts';

export interface InstrumentSources {
  /** exchanges in flight right now, read at each collection (no per-request work) */
  activeRequests(): number;
  failures: FailureTracker;
  /** monotonic counters the host keeps itself (cost, dropped captures), observed at each collection */
  observedCounters?: readonly ObservedCounter[];
}

export interface ObservedCounter {
  /** counter (the default: a monotonic total) or gauge (a value right now: an upstream's state, its queue) */
  kind?: 'counter' | 'gauge';
  name: string;
  unit: string;
  description: string;
  /** the current totals, one per attribute set */
  read(): ReadonlyArray<{ value: number; attributes?: Attributes }>;
}

/**
 * llmtap.active_requests (up-down counter) and llmtap.telemetry.export_failures (counter), both observed when a
 * reader collects. The per-exchange histograms and counters are aggregated by metrics.ts (see there for why).
 */
export function createInstruments(meter: Meter, sources: InstrumentSources): void {
  const active = meter.createObservableUpDownCounter(METRIC.activeRequests.name, { unit: METRIC.activeRequests.unit, description: METRIC.activeRequests.description });
  active.addCallback((r) => r.observe(sources.activeRequests()));
  const failures = meter.createObservableCounter(METRIC.exportFailures.name, { unit: METRIC.exportFailures.unit, description: METRIC.exportFailures.description });
  failures.addCallback((r) => {
    for (const f of sources.failures.counts()) r.observe(f.count, { [ATTR.llmtapSignal]: f.signal, [ATTR.llmtapExporter]: f.exporter });
  });
  for (const c of sources.observedCounters ?? []) {
    const options = { unit: c.unit, description: c.description };
    const counter = c.kind === 'gauge' ? meter.createObservableGauge(c.name, options) : meter.createObservableCounter(c.name, options);
    counter.addCallback((r) => {
      for (const v of c.read()) r.observe(v.value, v.attributes);
    });
  }
}
