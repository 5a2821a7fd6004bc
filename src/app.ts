// createApp: llmtap's middleware in the order a request meets it.
import Koa, { type Middleware } from 'koa';
import type { Logger } from 'pino';
import type { RequestTracer, TraceHandle } from './exchange/tracing.ts';
import type { ExchangeDeps } from './proxy/exchange.ts';
import { runExchange } from './proxy/exchange.ts';
import type { Route } from './proxy/route.ts';

export interface AppDeps extends ExchangeDeps {
  route(url: string): Route | null;
  log: Logger;
  /** exchanges in flight, so shutdown can wait for them */
  inflight: Set<Promise<unknown>>;
  /** tracing, when a feature provides it */
  tracer: RequestTracer | null;
  /** llmtap's own endpoints (metrics, usage, health), answered before anything is proxied */
  routes: Middleware[];
}

export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.silent = true;
  app.on('error', (err: Error) => deps.log.error({ err }, `request handling failed: ${err.message}`));

  // 1. Every response carries its trace id; the SERVER span starts as the request arrives.
  if (deps.tracer) {
    const tracer = deps.tracer;
    app.use(async (ctx, next) => {
      let trace: TraceHandle | null = null;
      try {
        trace = tracer.begin(ctx.method, ctx.path, ctx.req.headers);
        ctx.res.setHeader('x-llmtap-trace-id', trace.traceId);
      } catch (err) {
        deps.onInternalError(err, { id: '-', url: ctx.url });
      }
      ctx.state.trace = trace;
      await next();
      // Proxied exchanges end their spans from the record; everything else ends here.
      if (trace && ctx.respond !== false) {
        try {
          trace.endRequest(ctx.status);
        } catch (err) {
          deps.onInternalError(err, { id: '-', url: ctx.url });
        }
      }
    });
  }

  // 2. llmtap's own endpoints.
  for (const route of deps.routes) app.use(route);

  // 3. The proxy.
  app.use(async (ctx, next) => {
    const route = deps.route(ctx.url);
    if (!route) return next();
    // The relay writes to the raw response itself: Koa must not buffer or end it.
    ctx.respond = false;
    const trace = (ctx.state.trace as TraceHandle | null | undefined) ?? null;
    const done = runExchange(deps, route, ctx.req, ctx.res, trace).catch((err: unknown) => {
      deps.onInternalError(err, { id: '-', url: ctx.url });
      if (!ctx.res.headersSent) {
        ctx.res.writeHead(500, { 'content-type': 'application/json' });
        ctx.res.end(JSON.stringify({ error: { message: 'llmtap failed to handle this request; see its log', code: 'LLMTAP_INTERNAL' } }));
      } else ctx.res.destroy();
    });
    deps.inflight.add(done);
    try {
      await done;
    } finally {
      deps.inflight.delete(done);
    }
  });

  // 4. Anything else.
  app.use((ctx) => {
    ctx.status = 404;
    ctx.set('x-llmtap-error', 'LLMTAP_NOT_PROXIED');
    ctx.body = {
      error: {
        message: `llmtap does not serve ${ctx.method} ${ctx.path}: it forwards /v1/* (OpenAI, Anthropic /v1/messages) and /api/* (Ollama)`,
        code: 'LLMTAP_NOT_PROXIED',
      },
    };
  });
  return app;
}
