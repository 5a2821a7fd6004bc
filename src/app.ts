// createApp: llmtap's middleware in the order a request meets it.
import Koa from 'koa';
import type { Logger } from 'pino';
import type { ExchangeDeps } from './proxy/exchange.ts';
import { runExchange } from './proxy/exchange.ts';
import type { Route } from './proxy/route.ts';

export interface AppDeps extends ExchangeDeps {
  route(url: string): Route | null;
  log: Logger;
  /** exchanges in flight, so shutdown can wait for them */
  inflight: Set<Promise<unknown>>;
}

export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.silent = true;
  app.on('error', (err: Error) => deps.log.error({ err }, `request handling failed: ${err.message}`));

  // llmtap's own endpoints (metrics, usage, health) are mounted here, before the proxy, by the features that own them.

  app.use(async (ctx, next) => {
    const route = deps.route(ctx.url);
    if (!route) return next();
    // The relay writes to the raw response itself: Koa must not buffer or end it.
    ctx.respond = false;
    const done = runExchange(deps, route, ctx.req, ctx.res).catch((err: unknown) => {
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
