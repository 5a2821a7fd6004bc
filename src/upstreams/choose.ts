// Routing strategies: which of the upstreams able to take a request gets it (least_busy, round_robin, weighted).
import type { RoutingStrategy } from '../config.ts';

export interface Choosable {
  name: string;
  weight: number;
  inFlight: number;
}

/** Picks one of a non-empty list; key groups the requests that share a rotation (dialect and model). */
export type Chooser = <T extends Choosable>(key: string, candidates: readonly T[]) => T;

/** Rotation state is kept per key; past this many keys (random model names) it starts afresh. */
const MAX_KEYS = 10_000;

function remember<V>(map: Map<string, V>, key: string, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    if (map.size >= MAX_KEYS) map.clear();
    v = make();
    map.set(key, v);
  }
  return v;
}

export function createChooser(strategy: RoutingStrategy): Chooser {
  const turns = new Map<string, { n: number }>();
  if (strategy === 'round_robin') {
    return (key, list) => {
      const t = remember(turns, key, () => ({ n: 0 }));
      return list[t.n++ % list.length]!;
    };
  }
  if (strategy === 'least_busy') {
    return (key, list) => {
      let least = Infinity;
      for (const c of list) if (c.inFlight < least) least = c.inFlight;
      const idle = list.filter((c) => c.inFlight === least);
      // Ties rotate, so equally idle upstreams share the load instead of the first taking it all.
      const t = remember(turns, key, () => ({ n: 0 }));
      return idle[t.n++ % idle.length]!;
    };
  }
  // weighted: nginx's smooth weighted round robin; exact shares, spread out rather than in runs.
  const current = new Map<string, Map<string, number>>();
  return (key, list) => {
    const cw = remember(current, key, () => new Map<string, number>());
    let total = 0;
    let best: (typeof list)[number] | null = null;
    let bestWeight = -Infinity;
    for (const c of list) {
      const w = (cw.get(c.name) ?? 0) + c.weight;
      cw.set(c.name, w);
      total += c.weight;
      if (w > bestWeight) {
        bestWeight = w;
        best = c;
      }
    }
    cw.set(best!.name, bestWeight - total);
    return best!;
  };
}
