// Counters other features keep (cost from the usage store, capture drops and failures), exported as llmtap.* metrics.
import type { ObservedCounter } from '../../otel/index.ts';
import { captureStats } from '../capture/feature.ts';
import { onUsageCost } from '../usage/feature.ts';

/**
 * llmtap.cost (USD, by provider, upstream and model — at most maxModels models, the rest as 'other'),
 * llmtap.capture.dropped and llmtap.capture.write_failures. Read at collection: nothing is done per request
 * here but one map update per priced exchange.
 */
export function hostCounters(maxModels: number): { counters: ObservedCounter[]; stop(): void } {
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
  return { counters, stop };
}
