// GET /health: llmtap and each upstream's reachability, probed with a short timeout and cached for a few seconds.
import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import { describeCause } from '../errors.ts';
import { publicUrl } from './record.ts';

export interface UpstreamTarget {
  name: string;
  url: string;
}

export interface UpstreamHealth {
  url: string;
  status: 'ok' | 'down';
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

export function createHealth(opts: HealthOptions): { check(only?: string): Promise<{ healthy: boolean; report: HealthReport }>; names: string[] } {
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

  return {
    names: opts.upstreams.map((u) => u.name),
    async check(only) {
      const targets = only === undefined ? opts.upstreams : opts.upstreams.filter((u) => u.name === only);
      const results = await Promise.all(targets.map(async (u) => [u.name, await probeCached(u.url)] as const));
      const upstreams = Object.fromEntries(results);
      const down = results.filter(([, h]) => h.status === 'down');
      const healthy = down.length === 0;
      const message = healthy
        ? `llmtap is up; ${results.length === 1 ? 'its upstream answers' : `all ${results.length} upstreams answer`}`
        : `upstream ${down.map(([name, h]) => `${name} (${h.url}) is unreachable: ${h.error}`).join('; upstream ')}`;
      return {
        healthy,
        report: {
          status: healthy ? 'ok' : 'degraded',
          message,
          llmtap: { status: 'ok', version: opts.version, uptimeS: Math.round((Date.now() - started) / 1000), inFlight: opts.inFlight() },
          upstreams,
        },
      };
    },
  };
}
