// Which dialect and upstream a client path goes to (CONTRACT §2); null for paths llmtap does not forward.
import type { Config } from '../config.ts';
import type { DialectName } from '../exchange/record.ts';

export interface Upstream {
  name: string;
  /** the URL as configured, for messages and records */
  url: string;
  /** scheme://host:port, what the connection pool is keyed by */
  origin: string;
  /** path prefix of the configured URL ('' for none), put before the client's path */
  basePath: string;
}

export interface Route {
  dialect: DialectName;
  upstream: Upstream;
  /** the path and query to request from the upstream */
  upstreamPath: string;
  /** the client's path without its query, as the dialects know paths */
  path: string;
}

/** llmtap's own endpoints under /api (CONTRACT §5): never forwarded to Ollama. */
const OWN_API_PATHS = new Set(['/api/usage', '/api/token_counts', '/api/usage-stream']);

export function upstreamOf(name: string, url: string): Upstream {
  const u = new URL(url);
  return { name, url, origin: u.origin, basePath: u.pathname.replace(/\/+$/, '') };
}

export function createRouter(config: Config): (url: string) => Route | null {
  const upstreams: Record<DialectName, Upstream> = {
    openai: upstreamOf('openai', config.openaiUrl),
    anthropic: upstreamOf('anthropic', config.anthropicUrl),
    ollama: upstreamOf('ollama', config.ollamaUrl),
  };
  return (url) => {
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    let dialect: DialectName;
    if (path === '/v1/messages' || path.startsWith('/v1/messages/')) dialect = 'anthropic';
    else if (path.startsWith('/v1/')) dialect = 'openai';
    else if (path.startsWith('/api/') && !OWN_API_PATHS.has(path)) dialect = 'ollama';
    else return null;
    const upstream = upstreams[dialect];
    // A configured URL that already ends in /v1 (as vLLM users write it) must not get a second /v1.
    const first = path.slice(0, path.indexOf('/', 1));
    const base = upstream.basePath.endsWith(first) ? upstream.basePath.slice(0, -first.length) : upstream.basePath;
    return { dialect, upstream, upstreamPath: base + url, path };
  };
}
