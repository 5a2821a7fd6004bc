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

/** llmtap's own endpoints under /v1 (usage and diagnostics): never forwarded to OpenAI, whatever the method. */
function ownV1Path(path: string): boolean {
  return path === '/v1/usage' || path.startsWith('/v1/usage/') || path === '/v1/diagnostics' || path.startsWith('/v1/diagnostics/');
}

/** An upstream URL fit to store and show: user:password@ taken out (keys in a configured URL stay out of files and endpoints). */
export function publicUrl(url: string): string {
  if (!url.includes('@')) return url;
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    const s = u.toString();
    return url.endsWith('/') ? s : s.replace(/\/$/, '');
  } catch {
    return url;
  }
}

export function upstreamOf(name: string, url: string): Upstream {
  const u = new URL(url);
  return { name, url, origin: u.origin, basePath: u.pathname.replace(/\/+$/, '') };
}

/** The route of a request to another upstream (several upstreams: the one picked for it). */
export function routeTo(route: Route, upstream: Upstream, url: string): Route {
  return { dialect: route.dialect, upstream, upstreamPath: upstreamPathFor(upstream, url, route.path), path: route.path };
}

function upstreamPathFor(upstream: Upstream, url: string, path: string): string {
  // A configured URL that already ends in /v1 (as vLLM users write it) must not get a second /v1.
  const first = path.slice(0, path.indexOf('/', 1));
  const base = upstream.basePath.endsWith(first) ? upstream.basePath.slice(0, -first.length) : upstream.basePath;
  return base + url;
}

/** Until one is picked for it, a request to several upstreams names none. */
export const UNCHOSEN: Upstream = Object.freeze({ name: '-', url: '', origin: '', basePath: '' });

/** Maps a client URL to its dialect and upstream; with several upstreams (pooled) the upstream is picked later. */
export function createRouter(config: Config, pooled = false): (url: string) => Route | null {
  const upstreams: Record<DialectName, Upstream> = pooled
    ? { openai: UNCHOSEN, anthropic: UNCHOSEN, ollama: UNCHOSEN }
    : {
        openai: upstreamOf('openai', config.openaiUrl),
        anthropic: upstreamOf('anthropic', config.anthropicUrl),
        ollama: upstreamOf('ollama', config.ollamaUrl),
      };
  return (url) => {
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    let dialect: DialectName;
    if (path === '/v1/messages' || path.startsWith('/v1/messages/')) dialect = 'anthropic';
    else if (path.startsWith('/v1/') && !ownV1Path(path)) dialect = 'openai';
    else if (path.startsWith('/api/') && !OWN_API_PATHS.has(path)) dialect = 'ollama';
    else return null;
    const upstream = upstreams[dialect];
    return { dialect, upstream, upstreamPath: upstreamPathFor(upstream, url, path), path };
  };
}
