// The benchmark's reference: the leanest honest passthrough proxy (node:http + undici), with no telemetry and no parsing.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { Agent, type Dispatcher } from 'undici';
import { CHILD_ENV, isMain, serveAsChild } from './serve.ts';

// RFC 9110 §7.6.1 connection-specific fields, plus host (the upstream's own is set by undici from the origin).
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

type UpstreamHeaders = Record<string, string | string[] | undefined>;

function endToEnd(headers: IncomingHttpHeaders | UpstreamHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

export interface BareProxy {
  server: Server;
  agent: Agent;
}

/** A proxy that forwards every request to `upstreamUrl` and relays the answer chunk by chunk, honouring backpressure. */
export function createBareProxy(upstreamUrl: string): BareProxy {
  const origin = new URL(upstreamUrl).origin;
  // connections: null is undici's "no limit": the pool grows to the client's concurrency, as a production proxy's would.
  const agent = new Agent({ connections: null, pipelining: 1, keepAliveTimeout: 30_000 });

  const server = createServer((req, res) => {
    let controller: Dispatcher.DispatchController | null = null;
    res.on('drain', () => controller?.resume());
    res.on('close', () => {
      if (!res.writableFinished && controller && !controller.aborted) controller.abort(new Error('client went away'));
    });
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    if (!hasBody) req.resume();
    agent.dispatch(
      {
        origin,
        path: req.url ?? '/',
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        headers: endToEnd(req.headers),
        body: hasBody ? req : null,
      },
      {
        onRequestStart(c) {
          controller = c;
        },
        onResponseStart(_c, statusCode, headers) {
          res.writeHead(statusCode, endToEnd(headers));
        },
        onResponseData(c, chunk) {
          if (!res.write(chunk)) c.pause();
        },
        onResponseEnd() {
          res.end();
        },
        onResponseError(_c, err) {
          if (res.headersSent) {
            res.destroy(err);
            return;
          }
          const body = JSON.stringify({ error: { message: `bare proxy: upstream ${origin} failed: ${err.message}`, type: 'proxy_error' } });
          res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
          res.end(body);
        },
      },
    );
  });
  server.keepAliveTimeout = 60_000;
  server.on('close', () => void agent.close());
  return { server, agent };
}

if (isMain(import.meta.url)) {
  const upstream = process.env[CHILD_ENV.upstream];
  if (!upstream) {
    process.stderr.write(`bare proxy: ${CHILD_ENV.upstream} must name the upstream URL\n`);
    process.exit(1);
  }
  serveAsChild(createBareProxy(upstream).server, 'bare proxy').catch((err: unknown) => {
    process.stderr.write(`bare proxy: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
