// llmtap's request listener: Koa middleware in the order a request meets it, and the direct way in for LLM calls.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import Koa, { type Middleware } from 'koa';
import type { Logger } from 'pino';
import { TRACE_HEADER, type RequestTracer, type TraceHandle } from './exchange/tracing.ts';
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
  // The id header is not set here: a header set ahead of res.writeHead() sends the relay's response head down
  // Node's slower merging path. Proxied responses put it in their head; llmtap's own get it below, or (routes
  // that write the raw response) from ctx.state.trace themselves.
  if (deps.tracer) {
    const tracer = deps.tracer;
    app.use(async (ctx, next) => {
      let trace: TraceHandle | null = null;
      try {
        trace = tracer.begin(ctx.method, ctx.path, ctx.req.headers);
      } catch (err) {
        deps.onInternalError(err, { id: '-', url: ctx.url });
      }
      ctx.state.trace = trace;
      await next();
      // Proxied exchanges end their spans from the record; everything else ends here.
      if (trace && ctx.respond !== false) {
        if (!ctx.headerSent) ctx.set(TRACE_HEADER, trace.traceId);
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

  // 3. The proxy (requests that reached Koa: GET model lists and the like; see createRequestListener).
  app.use(async (ctx, next) => {
    const route = deps.route(ctx.url);
    if (!route) return next();
    // The relay writes to the raw response itself: Koa must not buffer or end it.
    ctx.respond = false;
    await proxy(deps, route, ctx.req, ctx.res, (ctx.state.trace as TraceHandle | null | undefined) ?? null);
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

/** Runs one proxied exchange, tracked as in flight; a failure of llmtap's own answers 500 (or cuts a started response). */
async function proxy(deps: AppDeps, route: Route, req: IncomingMessage, res: ServerResponse, trace: TraceHandle | null): Promise<void> {
  const done = runExchange(deps, route, req, res, trace).catch((err: unknown) => {
    deps.onInternalError(err, { id: '-', url: req.url ?? route.path });
    if (!res.headersSent) {
      res.writeHead(500, trace ? { 'content-type': 'application/json', [TRACE_HEADER]: trace.traceId } : { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'llmtap failed to handle this request; see its log', code: 'LLMTAP_INTERNAL' } }));
    } else res.destroy();
  });
  deps.inflight.add(done);
  try {
    await done;
  } finally {
    deps.inflight.delete(done);
  }
}

/**
 * The server's request listener. LLM calls (POST and the other methods that send a body to a forwarded path) go
 * straight to the proxy: llmtap's own endpoints answer GET and HEAD only, and the router already keeps their paths
 * out of forwarding, so Koa has nothing to decide for these, and its per-request context, finish listeners and
 * middleware promises cost about 7 µs of CPU a request, a tenth of llmtap's whole cost with a fast upstream (see
 * docs/bench.md). Everything else, GET model lists included, goes through Koa.
 */
export function createRequestListener(deps: AppDeps): RequestListener {
  const koa = createApp(deps).callback();
  const tracer = deps.tracer;
  return (req, res) => {
    const method = req.method;
    const route = method !== 'GET' && method !== 'HEAD' ? deps.route(req.url ?? '/') : null;
    if (!route) {
      void koa(req, res);
      return;
    }
    let trace: TraceHandle | null = null;
    if (tracer) {
      try {
        trace = tracer.begin(method ?? 'POST', route.path, req.headers);
      } catch (err) {
        deps.onInternalError(err, { id: '-', url: req.url ?? route.path });
      }
    }
    void proxy(deps, route, req, res, trace);
  };
}
