// Starts llmtap in this process: builds the app from a Config, listens, and returns a handle to stop it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { createRequestListener } from './app.ts';
import { ConfigError, readUpstreams, type Config } from './config.ts';
import { createExchangeBus, type ExchangeBus } from './exchange/bus.ts';
import { logTap } from './exchange/log-tap.ts';
import { createLogger, type JsonLineWriter, type Logger } from './log.ts';
import { createRouter } from './proxy/route.ts';
import type { Feature, FeatureFactory } from './features.ts';
import { loadTokenCounter } from './tokens/estimate.ts';
import { createRateLimiter } from './limits/rate-limit.ts';
import { modelListRoute } from './upstreams/models-route.ts';
import { createUpstreamPool, type UpstreamPool } from './upstreams/pool.ts';

export interface RunningLlmtap {
  /** http://host:port of the proxy */
  url: string;
  port: number;
  config: Config;
  bus: ExchangeBus;
  /** exchanges in flight right now */
  inFlight(): number;
  /** several upstreams: their state right now; null with the single upstream per dialect */
  upstreams: UpstreamPool | null;
  /** SIGHUP: reads the config file's upstream list again; a bad file is refused and the current list kept */
  reloadUpstreams(): Promise<{ ok: boolean; message: string }>;
  /** graceful: stop accepting, let in-flight exchanges finish up to shutdownGraceMs, close subscribers */
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export interface StartOptions {
  logger?: Logger;
  jsonLine?: JsonLineWriter | null;
  /** optional features to start (src/feature-list.ts has them all; main and the demo pass ALL_FEATURES) */
  features?: readonly FeatureFactory[];
  /** the environment features read their standard variables from (OTEL_*); main passes process.env */
  env?: Readonly<Record<string, string | undefined>>;
}

export async function startLlmtap(config: Config, opts: StartOptions = {}): Promise<RunningLlmtap> {
  const handle = opts.logger ? null : createLogger(config);
  const log = opts.logger ?? handle!.logger;
  const bus = createExchangeBus((f) =>
    log.error({ tap: f.tap, hook: f.hook, err: f.error }, `subscriber "${f.tap}" failed in ${f.hook}: ${f.error.message} (proxying goes on; further failures are counted, not logged)`),
  );
  bus.subscribe(logTap(log, opts.jsonLine ?? handle?.jsonLine ?? null));
  // Estimates load a tokenizer (~20 MB, ~150 ms of blocking work): do it now, not in the middle of traffic.
  await loadTokenCounter();

  const inflight = new Set<Promise<unknown>>();
  const features: Feature[] = [];
  const pool = config.upstreams ? startPool(config, log) : null;
  const rateLimiter = config.rateLimit ? createRateLimiter(config.rateLimit) : null;
  const ctx = { config, log, bus, env: opts.env ?? {}, inFlight: () => inflight.size, upstreams: pool, rateLimited: () => rateLimiter?.limited() ?? 0 };
  if (pool) {
    // Discovered models must be known before the first request is routed; a silent upstream does not hold start-up.
    await Promise.race([pool.probeAll(), sleep(5500)]);
    const st = pool.status();
    log.info({ upstreams: st.map((u) => ({ name: u.name, dialect: u.dialect, status: u.status, models: u.models.length })) }, `routing over ${st.length} upstreams (${config.routingStrategy}): ${st.map((u) => `${u.name} ${u.status}, ${u.models.length} model(s) ${u.modelsSource}`).join('; ')}`);
  }
  try {
    for (const start of opts.features ?? []) {
      const f = await start(ctx);
      if (!f) continue;
      features.push(f);
      for (const tap of f.taps ?? []) bus.subscribe(tap);
    }
  } catch (err) {
    pool?.close();
    await Promise.allSettled(features.map((f) => f.close?.()));
    throw err;
  }
  const tracer = features.find((f) => f.tracer)?.tracer ?? null;

  const agent = new Agent({
    keepAliveTimeout: 30_000,
    connect: { timeout: config.connectTimeoutMs },
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  let internalErrors = 0;
  const listener = createRequestListener({
    config,
    agent,
    bus,
    log,
    inflight,
    tracer,
    // Several upstreams: the model lists are the union of theirs, answered by llmtap.
    routes: [...features.flatMap((f) => f.routes ?? []), ...(pool ? [modelListRoute(pool)] : [])],
    route: createRouter(config, pool !== null),
    pool,
    rateLimiter,
    onInternalError(err, where) {
      internalErrors++;
      log.error({ err, exchange: where.id, url: where.url, count: internalErrors }, `llmtap internal error on ${where.url}: ${(err as Error)?.message ?? String(err)}`);
    },
  });

  const server = http.createServer(listener);
  // LLM calls can take minutes: Node's 5-minute whole-request timeout would cut long generations.
  server.requestTimeout = 0;
  await listen(server, config).catch(async (err: unknown) => {
    pool?.close();
    await Promise.allSettled(features.map((f) => f.close?.()));
    throw err;
  });
  const port = (server.address() as AddressInfo).port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      server.close();
      server.closeIdleConnections();
      if (inflight.size > 0) {
        await Promise.race([Promise.allSettled([...inflight]), sleep(config.shutdownGraceMs)]);
      }
      if (inflight.size > 0) {
        log.warn(`shutdown grace (${config.shutdownGraceMs} ms) is over: cutting ${inflight.size} exchange(s) still in flight`);
        server.closeAllConnections();
        // Cut exchanges still produce their records; give them a moment to do so.
        await Promise.race([Promise.allSettled([...inflight]), sleep(1000)]);
      }
      server.closeAllConnections();
      pool?.close();
      await bus.close();
      for (const f of features) {
        try {
          await f.close?.();
        } catch (err) {
          log.error({ err, feature: f.name }, `${f.name} failed to close: ${(err as Error).message}`);
        }
      }
      await agent.close().catch(() => agent.destroy());
    })();
    return closing;
  };

  return {
    url: `http://${host}:${port}`,
    port,
    config,
    bus,
    inFlight: () => inflight.size,
    upstreams: pool,
    reloadUpstreams: async () => {
      const file = config.configFile;
      if (!pool || !file) return { ok: false, message: 'nothing to reload: llmtap was not started with an upstreams list in a config file' };
      try {
        const specs = readUpstreams(file, opts.env ?? {});
        pool.update(specs);
        await Promise.race([pool.probeAll(), sleep(5500)]);
        const message = `upstreams reloaded from ${file}: ${pool.status().map((u) => `${u.name} (${u.dialect}, ${u.status})`).join(', ')}`;
        log.info(message);
        return { ok: true, message };
      } catch (err) {
        const message = `${(err as Error).message.replace(/^llmtap: /, '')}; kept the previous upstreams`;
        log.error(`upstream reload refused: ${message}`);
        return { ok: false, message };
      }
    },
    close,
  };
}

function startPool(config: Config, log: Logger): UpstreamPool {
  return createUpstreamPool(config.upstreams ?? [], {
    strategy: config.routingStrategy,
    queueTimeoutMs: config.queueTimeoutMs,
    queueMax: config.queueMax,
    healthIntervalMs: config.healthIntervalMs,
    modelsTtlMs: config.modelsTtlMs,
    breaker: { failures: config.breakerFailures, cooldownMs: config.breakerCooldownMs, successes: config.breakerSuccesses },
  }, log);
}

function listen(server: http.Server, config: Config): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'the port is already in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
      reject(new ConfigError(`llmtap: cannot listen on ${config.host}:${config.port}: ${why} (set LLMTAP_PORT / --port, LLMTAP_HOST / --host)`));
    };
    server.once('error', onError);
    server.listen(config.port, config.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
