// What an optional feature (telemetry, captures, usage store) plugs into: taps, endpoints, a tracer, a close.
import type { Middleware } from 'koa';
import type { Config } from './config.ts';
import type { ExchangeBus, ExchangeTap } from './exchange/bus.ts';
import type { RequestTracer } from './exchange/tracing.ts';
import type { Logger } from './log.ts';
import type { UpstreamPool } from './upstreams/pool.ts';

export interface FeatureContext {
  config: Config;
  log: Logger;
  bus: ExchangeBus;
  /** the environment as given to llmtap (OTEL_* variables are read by the telemetry feature from here) */
  env: Readonly<Record<string, string | undefined>>;
  /** exchanges in flight right now */
  inFlight(): number;
  /** several upstreams (config file `upstreams:`): their state for /health, diagnostics and gauges; null otherwise */
  upstreams: UpstreamPool | null;
  /** requests refused by LLMTAP_RATE_LIMIT since start */
  rateLimited(): number;
}

export interface Feature {
  name: string;
  taps?: ExchangeTap[];
  /**
   * Koa middleware answering llmtap's own endpoints; mounted before the proxy, in order. Only GET and HEAD reach
   * them on a path the router forwards: other methods there go straight to the proxy (app.ts). An endpoint that
   * must answer other methods gets a path the router does not forward (proxy/route.ts).
   */
  routes?: Middleware[];
  tracer?: RequestTracer;
  /** flush and release, after in-flight exchanges finished and the bus drained */
  close?(): Promise<void>;
}

/** Starts a feature, or returns null when its settings leave it off. A thrown ConfigError stops start-up. */
export type FeatureFactory = (ctx: FeatureContext) => Promise<Feature | null>;
