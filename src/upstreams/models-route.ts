// With several upstreams, GET /v1/models and GET /api/tags list every model the upstreams of that dialect serve, not one upstream's.
import type { Middleware } from 'koa';
import type { UpstreamPool } from './pool.ts';

export function modelListRoute(pool: UpstreamPool): Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    if (ctx.path === '/v1/models') {
      const data = [...pool.listedModels('openai')].map(([id, by]) => ({ id, object: 'model', created: 0, owned_by: by.join(',') }));
      ctx.body = { object: 'list', data };
    } else if (ctx.path === '/api/tags') {
      ctx.body = { models: [...pool.listedModels('ollama')].map(([name, by]) => ({ name, model: name, llmtap_upstreams: by })) };
    } else return next();
    ctx.set('cache-control', 'no-store');
  };
}
