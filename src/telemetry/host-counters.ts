// Counters other features keep (cost from the usage store, capture drops and failures), exported as llmtap.* metrics.
import type { ObservedCounter } from '../../otel/index.ts';
import { captureStats } from '../capture/feature.ts';
import type { FeatureContext } from '../features.ts';
import type { UpstreamStatus } from '../upstreams/pool.ts';
import { onUsageCost } from '../usage/feature.ts';

/**
 * With routing: llmtap.rate_limited and, with several upstreams, the llmtap.upstream.* gauges.
 * llmtap.cost (USD, by provider, upstream and model — at most maxModels models, the rest as 'other'),
 * llmtap.capture.dropped and llmtap.capture.write_failures. Read at collection: nothing is done per request
 * here but one map update per priced exchange.
 */
export function hostCounters(maxModels: number, routing?: Pick<FeatureContext, 'upstreams' | 'rateLimited'>): { counters: ObservedCounter[]; stop(): void } {
  const cost = new Map<string, { value: number; attributes: { 'gen_ai.provider.name': string; 'llmtap.upstream': string; 'gen_ai.request.model': string } }>();
  const models = new Set<string>();
  const stop = onUsageCost((usd, a) => {
    let model = a.model;
    if (!models.has(model)) {
      if (models.size >= maxModels) model = 'other';
      else models.add(model);
    }
    const key = `${a.provider}\u0000${a.upstream}\u0000${model}`;
    const entry = cost.get(key);
    if (entry) entry.value += usd;
    else cost.set(key, { value: usd, attributes: { 'gen_ai.provider.name': a.provider, 'llmtap.upstream': a.upstream, 'gen_ai.request.model': model } });
  });
  const counters: ObservedCounter[] = [
    { name: 'llmtap.cost', unit: 'USD', description: 'Cost of the exchanges priced by the usage store (USD, list prices or LLMTAP_PRICES).', read: () => [...cost.values()] },
    { name: 'llmtap.capture.dropped', unit: '{record}', description: 'Capture records dropped because the capture queue was full.', read: () => [{ value: captureStats().dropped }] },
    { name: 'llmtap.capture.write_failures', unit: '{failure}', description: 'Capture writes that failed (unwritable folder, full disk).', read: () => [{ value: captureStats().failures }] },
  ];
  if (routing) {
    const rateLimited = routing.rateLimited;
    counters.push({ name: 'llmtap.rate_limited', unit: '{request}', description: 'Requests refused with 429 by the per-client rate limit (LLMTAP_RATE_LIMIT).', read: () => [{ value: rateLimited() }] });
  }
  const pool = routing?.upstreams;
  if (pool) {
    // One status() per gauge per collection: a handful of upstreams, read every scrape, nothing per request.
    const gauge = (name: string, unit: string, description: string, value: (u: UpstreamStatus) => number): ObservedCounter => ({
      kind: 'gauge',
      name,
      unit,
      description,
      read: () => pool.status().map((u) => ({ value: value(u), attributes: { 'llmtap.upstream': u.name, 'gen_ai.provider.name': u.dialect } })),
    });
    counters.push(
      gauge('llmtap.upstream.up', '1', 'Whether the upstream is up: 1 when its breaker lets requests through and its last health probe was answered.', (u) => (u.status === 'up' ? 1 : 0)),
      gauge('llmtap.upstream.breaker_state', '1', "The upstream's circuit breaker: 0 closed, 1 open, 2 half-open.", (u) => pool.breakerGauge[u.breaker]),
      gauge('llmtap.upstream.in_flight', '{request}', 'Requests in flight at the upstream.', (u) => u.inFlight),
      gauge('llmtap.upstream.queue_depth', '{request}', "Requests waiting for a slot at the upstream's max_concurrent.", (u) => u.queued),
    );
  }
  return { counters, stop };
}
