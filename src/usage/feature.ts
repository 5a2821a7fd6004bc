// The usage feature: every exchange into the store, live activity, and the usage, health and diagnostics endpoints.
import { readFileSync } from 'node:fs';
import type { Middleware } from 'koa';
import type { ExchangeTap } from '../exchange/bus.ts';
import type { FeatureFactory } from '../features.ts';
import { createActivity } from './activity.ts';
import { createHealth } from './health.ts';
import { createLiveStream } from './live.ts';
import { costOfExchange, loadPrices, toNanos } from './prices.ts';
import { toUsageRecord } from './record.ts';
import { emptyTotals, mergeTotals } from './rollup.ts';
import { nomyoCounts, usageRoutes } from './routes.ts';
import { openUsageStore } from './store.ts';

export interface UsageFeatureOptions {
  /** SSE: most updates a second is 1000 / this (default 250) */
  streamIntervalMs?: number;
  /** SSE heartbeat (default 15 s) */
  heartbeatMs?: number;
  /** /health: probe timeout and how long a probe's answer is reused (defaults 2 s, 5 s) */
  healthTimeoutMs?: number;
  healthTtlMs?: number;
}

// Cost seen by every usage feature in this process since it started, in nano-dollars: the OTel helper's
// llmtap.cost counter reads it (usageCostTotal) or subscribes per exchange (onUsageCost).
let costNanosSinceStart = 0;
const costListeners = new Set<(usd: number, attrs: { model: string; provider: string; upstream: string }) => void>();

/** USD spent through this process's usage features since start (a monotonic counter). */
export function usageCostTotal(): number {
  return costNanosSinceStart / 1e9;
}

/** Called once per priced exchange with its cost in USD; returns the unsubscribe function. */
export function onUsageCost(listener: (usd: number, attrs: { model: string; provider: string; upstream: string }) => void): () => void {
  costListeners.add(listener);
  return () => costListeners.delete(listener);
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** GET /health alone, for when the usage store is off. */
function healthOnly(health: ReturnType<typeof createHealth>): Middleware {
  return async (ctx, next) => {
    if (ctx.path !== '/health' || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
    const { healthy, report } = await health.check();
    ctx.status = healthy ? 200 : 503;
    ctx.set('cache-control', 'no-store');
    ctx.body = report;
  };
}

export function createUsageFeature(opts: UsageFeatureOptions = {}): FeatureFactory {
  return async (ctx) => {
    const { config, log, bus } = ctx;
    const health = createHealth({
      upstreams: [
        { name: 'openai', url: config.openaiUrl },
        { name: 'anthropic', url: config.anthropicUrl },
        { name: 'ollama', url: config.ollamaUrl },
      ],
      version: version(),
      inFlight: ctx.inFlight,
      timeoutMs: opts.healthTimeoutMs,
      ttlMs: opts.healthTtlMs,
      pool: ctx.upstreams,
    });
    // /health belongs to llmtap, not to the store: it answers with the usage store off too.
    if (!config.usage) return { name: 'health', routes: [healthOnly(health)] };
    const prices = await loadPrices(config.prices);
    let failures = 0;
    const store = await openUsageStore({
      file: config.usageFile,
      flushMs: config.usageFlushMs,
      maxRecords: config.usageMaxRecords,
      onWriteError(err, n) {
        if (n === 1) log.error({ err, file: config.usageFile }, `usage store: cannot write ${config.usageFile}: ${err.message} (records are kept in memory and the write retried; proxying goes on; later failures are counted in /v1/diagnostics)`);
      },
    });
    if (store.readOnlyOwner !== null) {
      log.warn(
        { file: store.file, owner: store.readOnlyOwner },
        `usage store ${store.file} is in use by another llmtap (pid ${store.readOnlyOwner}): this one serves its usage API from memory and does not write the file (give it its own LLMTAP_USAGE_FILE to keep its records)`,
      );
    }

    let live: ReturnType<typeof createLiveStream>;
    const activity = createActivity(() => live.changed());
    live = createLiveStream({
      minIntervalMs: opts.streamIntervalMs,
      heartbeatMs: opts.heartbeatMs,
      recent: (n) => store.recent(n),
      snapshot() {
        const models = new Map<string, ReturnType<typeof emptyTotals> & { model: string; provider: string }>();
        const totals = emptyTotals();
        for (const t of store.modelTotals()) {
          const key = `${t.provider}\u0000${t.model}`;
          let m = models.get(key);
          if (!m) models.set(key, (m = { model: t.model, provider: t.provider, ...emptyTotals() }));
          mergeTotals(m, t);
          mergeTotals(totals, t);
        }
        const usd = <T extends { costNanos: number }>(t: T): Omit<T, 'costNanos'> & { cost: number } => {
          const { costNanos, ...rest } = t;
          return { ...rest, cost: costNanos / 1e9 };
        };
        return {
          ...nomyoCounts(store, activity),
          at: new Date().toISOString(),
          totals: usd(totals),
          models: [...models.values()].sort((a, b) => b.requests - a.requests).map(usd),
          active: activity.list(),
        };
      },
    });

    const storeTap: ExchangeTap = {
      name: 'usage-store',
      onEnd(record) {
        let cost: number | null = null;
        try {
          cost = costOfExchange(prices, record);
        } catch {
          failures++;
        }
        const u = toUsageRecord(record, cost);
        store.add(u);
        if (cost !== null) {
          costNanosSinceStart += toNanos(cost);
          for (const l of costListeners) {
            try {
              l(cost, { model: u.model, provider: u.provider, upstream: u.upstream });
            } catch {
              failures++;
            }
          }
        }
        live.ended(u);
      },
    };

    return {
      name: 'usage',
      taps: [activity.tap, storeTap],
      routes: [usageRoutes({ store, activity, live, health, bus, adminToken: config.adminToken, version: version(), inFlight: ctx.inFlight, failures: () => failures, upstreams: ctx.upstreams, rateLimited: ctx.rateLimited })],
      async close() {
        live.close();
        await store.close();
      },
    };
  };
}

export const usageFeature: FeatureFactory = createUsageFeature();
