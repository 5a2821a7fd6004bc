// llmtap's own usage, health and diagnostics endpoints (CONTRACT §5), as one Koa middleware answered before the proxy.
import type { Context, Middleware } from 'koa';
import type { ExchangeBus } from '../exchange/bus.ts';
import { checkAccess } from './access.ts';
import type { Activity } from './activity.ts';
import { DASHBOARD_HTML } from './dashboard.ts';
import { CONTENT_TYPES, EXPORT_FORMATS, exportStream } from './export.ts';
import type { createHealth } from './health.ts';
import type { UpstreamPool } from '../upstreams/pool.ts';
import type { LiveStream } from './live.ts';
import { BadParameter, readEnum, readInt, readQuery, readText, readTime } from './query.ts';
import type { UsageRecord } from './record.ts';
import { computeStats, type StatsFilter } from './stats.ts';
import type { UsageStore } from './store.ts';

export interface RouteDeps {
  store: UsageStore;
  activity: Activity;
  live: LiveStream;
  health: ReturnType<typeof createHealth>;
  bus: ExchangeBus;
  adminToken: string;
  version: string;
  /** several upstreams: their routing state; null with one upstream per dialect */
  upstreams: UpstreamPool | null;
  /** requests refused by LLMTAP_RATE_LIMIT since start */
  rateLimited(): number;
  inFlight(): number;
  /** counted failures of the usage feature itself (records it could not take) */
  failures(): number;
}

type Handler = (ctx: Context, q: Map<string, string>) => void | Promise<void>;

interface Endpoint {
  params: readonly string[];
  /** answered without the admin check (/health; the dashboard page itself holds no data) */
  open?: boolean | ((token: string) => boolean);
  handle: Handler;
}

const FILTER_PARAMS = ['model', 'provider', 'upstream', 'since', 'until'] as const;

function readFilter(q: Map<string, string>): StatsFilter {
  const f: StatsFilter = {};
  const model = readText('model', q.get('model'));
  const provider = readText('provider', q.get('provider'));
  const upstream = readText('upstream', q.get('upstream'));
  if (model !== undefined) f.model = model;
  if (provider !== undefined) f.provider = provider;
  if (upstream !== undefined) f.upstream = upstream;
  const since = q.get('since');
  const until = q.get('until');
  const now = Date.now();
  if (since !== undefined) f.since = readTime('since', since, { now });
  if (until !== undefined) f.until = readTime('until', until, { now, endOfDay: true });
  if (f.since !== undefined && f.until !== undefined && f.since > f.until) {
    throw new BadParameter('since', `query parameter "since" (${f.since}) is after "until" (${f.until})`);
  }
  return f;
}

const keepFor = (f: StatsFilter) => (r: UsageRecord): boolean =>
  (f.model === undefined || r.model === f.model) &&
  (f.provider === undefined || r.provider === f.provider) &&
  (f.upstream === undefined || r.upstream === f.upstream) &&
  (f.since === undefined || r.time >= f.since) &&
  (f.until === undefined || r.time <= f.until);

function errorBody(ctx: Context, status: number, code: string, message: string, extra: Record<string, unknown> = {}): void {
  ctx.status = status;
  ctx.set('cache-control', 'no-store');
  ctx.body = { error: { message, code, ...extra } };
}

/** NOMYO Router's shapes: per endpoint (upstream URL) and model, active requests and all-time tokens. */
export function nomyoCounts(store: UsageStore, activity: Activity): {
  usage_counts: Record<string, Record<string, number>>;
  token_usage_counts: Record<string, Record<string, number>>;
} {
  const usage = activity.countsByEndpoint();
  const tokens: Record<string, Record<string, number>> = {};
  for (const t of store.modelTotals()) {
    const m = (tokens[t.upstreamUrl] ??= {});
    m[t.model] = (m[t.model] ?? 0) + t.totalTokens;
    // Models seen before show with 0 active, as NOMYO Router's counters do once a model was used.
    const u = (usage[t.upstreamUrl] ??= {});
    u[t.model] ??= 0;
  }
  return { usage_counts: usage, token_usage_counts: tokens };
}

export function tokenCounts(store: UsageStore): { total_tokens: number; breakdown: Array<{ endpoint: string; model: string; input_tokens: number; output_tokens: number; total_tokens: number }> } {
  const by = new Map<string, { endpoint: string; model: string; input_tokens: number; output_tokens: number; total_tokens: number }>();
  let total = 0;
  for (const t of store.modelTotals()) {
    const key = `${t.upstreamUrl}\u0000${t.model}`;
    let row = by.get(key);
    if (!row) by.set(key, (row = { endpoint: t.upstreamUrl, model: t.model, input_tokens: 0, output_tokens: 0, total_tokens: 0 }));
    row.input_tokens += t.inputTokens;
    row.output_tokens += t.outputTokens;
    row.total_tokens += t.totalTokens;
    total += t.totalTokens;
  }
  return { total_tokens: total, breakdown: [...by.values()].sort((a, b) => b.total_tokens - a.total_tokens) };
}

export function usageRoutes(d: RouteDeps): Middleware {
  const endpoints = new Map<string, Endpoint>([
    [
      '/health',
      {
        params: ['upstream'],
        open: true,
        async handle(ctx, q) {
          const only = q.get('upstream');
          if (only !== undefined && !d.health.names.includes(only)) {
            throw new BadParameter('upstream', `query parameter "upstream" must be one of ${d.health.names.join(', ')}; got "${only}"`);
          }
          const { healthy, report } = await d.health.check(only);
          ctx.status = healthy ? 200 : 503;
          ctx.set('cache-control', 'no-store');
          ctx.body = report;
        },
      },
    ],
    [
      '/v1/usage/stats',
      {
        params: FILTER_PARAMS,
        handle(ctx, q) {
          const f = readFilter(q);
          ctx.body = computeStats(d.store.records(), d.store.rollups(), f);
        },
      },
    ],
    [
      '/v1/usage/recent',
      {
        params: ['limit'],
        handle(ctx, q) {
          const limit = readInt('limit', q.get('limit'), 1, 1000, 50);
          const records = d.store.recent(limit);
          ctx.body = { count: records.length, records };
        },
      },
    ],
    [
      '/v1/usage/export',
      {
        params: [...FILTER_PARAMS, 'format'],
        handle(ctx, q) {
          const format = readEnum('format', q.get('format'), EXPORT_FORMATS, 'json');
          const f = readFilter(q);
          ctx.status = 200;
          ctx.type = CONTENT_TYPES[format];
          ctx.set('content-disposition', `attachment; filename="llmtap-usage.${format}"`);
          ctx.set('cache-control', 'no-store');
          ctx.body = exportStream(d.store.records(), keepFor(f), format);
        },
      },
    ],
    [
      '/api/usage',
      {
        params: [],
        handle(ctx) {
          ctx.body = nomyoCounts(d.store, d.activity);
        },
      },
    ],
    [
      '/api/token_counts',
      {
        params: [],
        handle(ctx) {
          ctx.body = tokenCounts(d.store);
        },
      },
    ],
    [
      '/api/usage-stream',
      {
        params: [],
        handle(ctx) {
          if (!d.live.attach(ctx)) errorBody(ctx, 503, 'LLMTAP_TOO_MANY_STREAMS', 'too many usage streams are open; close one and retry');
        },
      },
    ],
    [
      '/v1/diagnostics',
      {
        params: [],
        handle(ctx) {
          const mem = process.memoryUsage();
          const flush = d.store.flushInfo();
          ctx.body = {
            llmtap: { version: d.version, pid: process.pid, uptimeS: Math.round(process.uptime()), inFlight: d.inFlight(), rssBytes: mem.rss, heapUsedBytes: mem.heapUsed },
            subscribers: { failures: d.bus.failureCounts() },
            usage: {
              file: d.store.file,
              records: d.store.records().length,
              pending: d.store.pendingCount(),
              rollups: d.store.rollups().length,
              failures: d.failures(),
              lastWrite: flush,
              streamClients: d.live.clients(),
            },
            active: { count: d.activity.count(), perUpstream: d.activity.perUpstream() },
            routing: d.upstreams ? { upstreams: d.upstreams.status() } : null,
            rateLimited: d.rateLimited(),
          };
        },
      },
    ],
    [
      '/v1/diagnostics/activity',
      {
        params: [],
        handle(ctx) {
          ctx.body = {
            at: new Date().toISOString(),
            count: d.activity.count(),
            active: d.activity.list(),
            perUpstream: d.activity.perUpstream(),
            // Several upstreams: each one's slots and queue beside the connections.
            ...(d.upstreams ? { upstreams: d.upstreams.status().map((u) => ({ name: u.name, status: u.status, breaker: u.breaker, inFlight: u.inFlight, queued: u.queued, maxConcurrent: u.maxConcurrent })) } : {}),
          };
        },
      },
    ],
    [
      '/dashboard',
      {
        params: [],
        // With a token set, the page (no data in it) loads for anyone; it asks for the token (or takes #token=...) to read the data.
        open: (token) => token !== '',
        handle(ctx) {
          ctx.type = 'text/html; charset=utf-8';
          ctx.set('cache-control', 'no-store');
          ctx.set('content-security-policy', "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:");
          ctx.body = DASHBOARD_HTML;
        },
      },
    ],
  ]);

  return async (ctx, next) => {
    let path = ctx.path;
    if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
    const ep = endpoints.get(path);
    if (!ep) {
      // Under llmtap's own prefixes, an unknown path is a typo, not something to forward to OpenAI.
      if (path.startsWith('/v1/usage/') || path.startsWith('/v1/diagnostics/')) {
        errorBody(ctx, 404, 'LLMTAP_NOT_FOUND', `llmtap has no endpoint ${path}; see /v1/usage/stats, /v1/usage/recent, /v1/usage/export, /v1/diagnostics, /v1/diagnostics/activity`);
        return;
      }
      return next();
    }
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.set('allow', 'GET, HEAD');
      errorBody(ctx, 405, 'LLMTAP_METHOD_NOT_ALLOWED', `${path} answers GET only`);
      return;
    }
    const open = typeof ep.open === 'function' ? ep.open(d.adminToken) : ep.open === true;
    if (!open) {
      const access = checkAccess(ctx, d.adminToken);
      if (!access.ok) {
        if (access.status === 401) ctx.set('www-authenticate', 'Bearer realm="llmtap"');
        errorBody(ctx, access.status, access.code, access.message);
        return;
      }
    }
    try {
      const q = readQuery(ctx.querystring, ep.params);
      await ep.handle(ctx, q);
    } catch (err) {
      if (err instanceof BadParameter) {
        errorBody(ctx, 400, err.code, err.message, { parameter: err.parameter });
        return;
      }
      throw err;
    }
  };
}
