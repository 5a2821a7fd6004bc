// Exchanges in flight right now, with bytes counted as they flow: fed by the bus's synchronous hooks, so each is a few field writes.
import { performance } from 'node:perf_hooks';
import type { ExchangeStart, ExchangeTap } from '../exchange/bus.ts';
import type { DialectName, Operation } from '../exchange/record.ts';
import { publicUrl } from '../proxy/route.ts';

interface Live {
  id: string;
  startedAt: string;
  t0: number;
  dialect: DialectName;
  operation: Operation;
  model: string;
  upstream: string;
  upstreamUrl: string;
  stream: boolean;
  status: number | null;
  requestBytes: number;
  /** body bytes sent on to the upstream */
  toUpstream: number;
  /** body bytes relayed from the upstream to the client (llmtap passes them on as they arrive) */
  toClient: number;
  chunks: number;
}

export interface ActiveExchange {
  id: string;
  startedAt: string;
  ageMs: number;
  dialect: DialectName;
  operation: Operation;
  model: string;
  upstream: string;
  upstreamUrl: string;
  stream: boolean;
  /** the upstream's status once its response head arrived */
  status: number | null;
  phase: 'waiting' | 'receiving';
  bytes: {
    /** request body received from the client */
    fromClient: number;
    sentUpstream: number;
    /** response body received from the upstream so far, as relayed */
    fromUpstream: number;
    sentToClient: number;
  };
  chunks: number;
}

export interface UpstreamActivity {
  upstream: string;
  upstreamUrl: string;
  active: number;
  bytesFromUpstream: number;
  bytesToClient: number;
}

export interface Activity {
  tap: ExchangeTap;
  count(): number;
  list(): ActiveExchange[];
  perUpstream(): UpstreamActivity[];
  /** active count per upstream URL and model (NOMYO Router's usage_counts) */
  countsByEndpoint(): Record<string, Record<string, number>>;
}

/** An exchange that never ends (a bug elsewhere) must not hold memory forever: the oldest go past this many. */
const MAX_TRACKED = 10_000;

export function createActivity(onChange: () => void = () => {}): Activity {
  const live = new Map<string, Live>();

  const tap: ExchangeTap = {
    name: 'usage-activity',
    onStart(s: ExchangeStart) {
      if (live.size >= MAX_TRACKED) {
        const oldest = live.keys().next();
        if (!oldest.done) live.delete(oldest.value);
      }
      const requestBytes = s.requestBody?.length ?? 0;
      live.set(s.id, {
        id: s.id,
        startedAt: s.startedAt,
        t0: performance.now(),
        dialect: s.dialect,
        operation: s.operation,
        model: s.model,
        upstream: s.upstream.name,
        upstreamUrl: publicUrl(s.upstream.url),
        stream: s.stream,
        status: null,
        requestBytes,
        toUpstream: 0,
        toClient: 0,
        chunks: 0,
      });
      onChange();
    },
    onResponseHead(id, status) {
      const a = live.get(id);
      if (a) a.status = status;
    },
    onChunk(id, direction, chunk) {
      const a = live.get(id);
      if (!a) return;
      if (direction === 'response') {
        a.toClient += chunk.length;
        a.chunks++;
      } else a.toUpstream += chunk.length;
    },
    onEnd(record) {
      if (live.delete(record.id)) onChange();
    },
  };

  const view = (a: Live, now: number): ActiveExchange => ({
    id: a.id,
    startedAt: a.startedAt,
    ageMs: Math.round(now - a.t0),
    dialect: a.dialect,
    operation: a.operation,
    model: a.model,
    upstream: a.upstream,
    upstreamUrl: a.upstreamUrl,
    stream: a.stream,
    status: a.status,
    phase: a.status === null ? 'waiting' : 'receiving',
    bytes: { fromClient: a.requestBytes, sentUpstream: a.toUpstream, fromUpstream: a.toClient, sentToClient: a.toClient },
    chunks: a.chunks,
  });

  return {
    tap,
    count: () => live.size,
    list() {
      const now = performance.now();
      return [...live.values()].map((a) => view(a, now)).sort((x, y) => y.ageMs - x.ageMs);
    },
    perUpstream() {
      const by = new Map<string, UpstreamActivity>();
      for (const a of live.values()) {
        let u = by.get(a.upstream);
        if (!u) {
          u = { upstream: a.upstream, upstreamUrl: a.upstreamUrl, active: 0, bytesFromUpstream: 0, bytesToClient: 0 };
          by.set(a.upstream, u);
        }
        u.active++;
        u.bytesFromUpstream += a.toClient;
        u.bytesToClient += a.toClient;
      }
      return [...by.values()];
    },
    countsByEndpoint() {
      const out: Record<string, Record<string, number>> = {};
      for (const a of live.values()) {
        const m = (out[a.upstreamUrl] ??= {});
        m[a.model] = (m[a.model] ?? 0) + 1;
      }
      return out;
    },
  };
}
