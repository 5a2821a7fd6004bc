// The simulator's HTTP server: reads each request, routes it to its dialect, and ends every stream on close().
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { anthropic } from './anthropic.ts';
import { ollama } from './ollama.ts';
import { openai } from './openai.ts';
import type { PacingOptions } from './pacing.ts';
import { asRecord, isSimError, simError, type Dialect, type Json, type SimError } from './wire.ts';

export interface SimulatorOptions extends PacingOptions {
  /** 0 (the default) picks a free port */
  port?: number;
  /** default 127.0.0.1 */
  host?: string;
}

export interface RunningSimulator {
  /** http://host:port, without a trailing slash */
  url: string;
  port: number;
  /** ends open streams (their clients see the connection drop), stops listening, and resolves */
  close(): Promise<void>;
}

// Far above any demo or test prompt, yet small enough that a runaway client cannot exhaust memory.
const MAX_BODY_BYTES = 8 * 1024 * 1024;

function dialectFor(path: string): Dialect {
  if (path.startsWith('/api/')) return ollama;
  if (path === '/v1/messages' || path.startsWith('/v1/messages/')) return anthropic;
  return openai;
}

/**
 * The request body, or null once it passes `limit`. The rest is left unread rather than destroyed, so the
 * 413 can still reach the client before the connection closes.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise<Buffer | null>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        resolve(null);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error('the client went away before sending its whole request'));
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
    req.once('close', onClose);
  });
}

function parseBody(raw: Buffer, dialect: Dialect): Json {
  if (raw.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw simError(400, 'invalid_request', dialect.badJsonMessage((err as Error).message));
  }
  const body = asRecord(parsed);
  if (!body) throw simError(400, 'invalid_request', dialect.badJsonMessage('the body must be a JSON object'));
  return body;
}

function sendError(res: ServerResponse, dialect: Dialect, err: SimError): void {
  if (res.headersSent) {
    // Mid-stream there is no status left to send: drop the connection so the client sees a cut stream.
    res.destroy();
    return;
  }
  const { contentType, body } = dialect.errorBody(err);
  const headers: Record<string, string | number> = { 'content-type': contentType, 'content-length': Buffer.byteLength(body) };
  // A body we stopped reading is still arriving; closing is the only way to be rid of it.
  if (err.status === 413) headers.connection = 'close';
  res.writeHead(err.status, headers);
  res.end(body);
}

export async function startSimulator(opts: SimulatorOptions = {}): Promise<RunningSimulator> {
  const pacing: PacingOptions = { tokenDelayMs: opts.tokenDelayMs, firstTokenDelayMs: opts.firstTokenDelayMs };
  // Each request's abort switch: close() flips them all so no timer outlives the server.
  const active = new Set<AbortController>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const receivedAt = process.hrtime.bigint();
    const controller = new AbortController();
    active.add(controller);
    res.once('close', () => {
      controller.abort();
      active.delete(controller);
    });
    res.setHeader('server', 'llmtap-simulator');
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'http://simulator').pathname;
    const dialect = dialectFor(path);
    try {
      const raw = await readBody(req, MAX_BODY_BYTES);
      if (raw === null) throw simError(413, 'too_large', `request body larger than ${MAX_BODY_BYTES} bytes`);
      const handler = dialect.route(method, path);
      if (!handler) throw simError(404, 'not_found', dialect.notFoundMessage(method, path));
      const body = method === 'GET' || method === 'HEAD' ? {} : parseBody(raw, dialect);
      await handler({ method, path, headers: req.headers, body, res, signal: controller.signal, pacing, receivedAt });
    } catch (err) {
      if (controller.signal.aborted) return;
      sendError(res, dialect, isSimError(err) ? err : simError(500, 'server_error', `the simulator failed: ${(err as Error).message}`));
    } finally {
      // A handler returns early only when its client left or close() was called: make sure the socket goes too.
      if (!res.writableEnded && !res.destroyed) res.destroy();
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;

  let closing: Promise<void> | null = null;
  return {
    url: `http://${host}:${port}`,
    port,
    close() {
      if (!closing) {
        closing = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const c of active) c.abort();
        server.closeAllConnections();
      }
      return closing;
    },
  };
}
