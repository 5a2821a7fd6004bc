// GET /health: llmtap and each upstream's reachability, probed with a short timeout and cached for a few seconds.
import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import { describeCause } from '../errors.ts';
import type { UpstreamPool, UpstreamStatus } from '../upstreams/pool.ts';
import { publicUrl } from '../proxy/route.ts';

export interface UpstreamTarget {
  name: string;
  url: string;
}

export interface UpstreamHealth {
  url: string;
  status: 'ok' | 'down';
  /** several upstreams: the routing state (breaker, load, models) */
  dialect?: string;
  breaker?: UpstreamStatus['breaker'];
  inFlight?: number;
  queued?: number;
  models?: readonly string[];
  /** the HTTP status the probe got (any answer means reachable) */
  httpStatus?: number;
  latencyMs?: number;
  error?: string;
  checkedAt: string;
}

export interface HealthReport {
  status: 'ok' | 'degraded';
  message: string;
  llmtap: { status: 'ok'; version: string; uptimeS: number; inFlight: number };
  upstreams: Record<string, UpstreamHealth>;
}

export interface HealthOptions {
  upstreams: readonly UpstreamTarget[];
  version: string;
  inFlight(): number;
  timeoutMs?: number;
  ttlMs?: number;
  /** several upstreams: their state comes from the pool's own probes and breakers */
  pool?: UpstreamPool | null;
}

/** /health's view of a pooled upstream. */
function fromPool(u: UpstreamStatus): UpstreamHealth {
  return {
    // the pool's status already shows URLs without credentials
    url: u.url,
    status: u.status === 'up' ? 'ok' : 'down',
    dialect: u.dialect,
    breaker: u.breaker,
    inFlight: u.inFlight,
    queued: u.queued,
    models: u.models,
    ...(u.lastProbe?.httpStatus != null ? { httpStatus: u.lastProbe.httpStatus } : {}),
    ...(u.lastProbe?.latencyMs != null ? { latencyMs: u.lastProbe.latencyMs } : {}),
    ...(u.error !== null ? { error: u.error } : {}),
    checkedAt: u.lastProbe?.at ?? new Date().toISOString(),
  };
}

async function probe(url: string, timeoutMs: number): Promise<Omit<UpstreamHealth, 'checkedAt'>> {
  const t0 = performance.now();
  try {
    // Any HTTP answer, 404 or 401 included, shows the upstream is there; only no answer is "down".
    // undici's request rather than fetch: fetch refuses some ports (9, 25, ...) that an upstream may well use.
    const res = await request(url, { method: 'GET', reset: true, signal: AbortSignal.timeout(timeoutMs) });
    res.body.resume();
    res.body.on('error', () => {});
    return { url, status: 'ok', httpStatus: res.statusCode, latencyMs: Math.round((performance.now() - t0) * 10) / 10 };
  } catch (err) {
    const timedOut = (err as Error).name === 'TimeoutError';
    return { url, status: 'down', error: timedOut ? `no answer within ${timeoutMs} ms` : describeCause(err) };
  }
}

export function createHealth(opts: HealthOptions): { check(only?: string): Promise<{ healthy: boolean; report: HealthReport }>; readonly names: string[] } {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const ttlMs = opts.ttlMs ?? 5000;
  const started = Date.now();
  // One probe per URL at a time, shared by every caller within the cache time.
  const cache = new Map<string, { at: number; result: Promise<Omit<UpstreamHealth, 'checkedAt'> & { checkedAt: string }> }>();

  const probeCached = (url: string): Promise<UpstreamHealth> => {
    const hit = cache.get(url);
    if (hit && Date.now() - hit.at < ttlMs) return hit.result;
    const result = probe(url, timeoutMs).then((r) => ({ ...r, url: publicUrl(url), checkedAt: new Date().toISOString() }));
    cache.set(url, { at: Date.now(), result });
    return result;
  };

  const pool = opts.pool ?? null;
  const verdict = (results: ReadonlyArray<readonly [string, UpstreamHealth]>): { healthy: boolean; report: HealthReport } => {
    const down = results.filter(([, h]) => h.status === 'down');
    const healthy = down.length === 0;
    const message = healthy
      ? `llmtap is up; ${results.length === 1 ? 'its upstream answers' : `all ${results.length} upstreams answer`}`
      : pool
        ? `upstream ${down.map(([name, h]) => `${name} (${h.url}) is down: ${h.error}`).join('; upstream ')}`
        : `upstream ${down.map(([name, h]) => `${name} (${h.url}) is unreachable: ${h.error}`).join('; upstream ')}`;
    return {
      healthy,
      report: {
        status: healthy ? 'ok' : 'degraded',
        message,
        llmtap: { status: 'ok', version: opts.version, uptimeS: Math.round((Date.now() - started) / 1000), inFlight: opts.inFlight() },
        upstreams: Object.fromEntries(results),
      },
    };
  };

  return {
    get names() {
      return pool ? pool.status().map((u) => u.name) : opts.upstreams.map((u) => u.name);
    },
    async check(only) {
      if (pool) {
        const st = pool.status().filter((u) => only === undefined || u.name === only);
        return verdict(st.map((u) => [u.name, fromPool(u)] as const));
      }
      const targets = only === undefined ? opts.upstreams : opts.upstreams.filter((u) => u.name === only);
      return verdict(await Promise.all(targets.map(async (u) => [u.name, await probeCached(u.url)] as const)));
    },
  };
}
