// Lifecycle of a bench server run as a child of bench.ts: listen where told, stop when told.
import type { Server } from 'node:http';
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** The env a child server reads; bench.ts sets it. */
export const CHILD_ENV = {
  port: 'BENCH_PORT',
  upstream: 'BENCH_UPSTREAM',
  /** 1 when stdin is a pipe from bench.ts that closes when it goes (read by exit-with-parent.mjs) */
  parentPipe: 'BENCH_PARENT_PIPE',
} as const;

/** Listens on 127.0.0.1:BENCH_PORT (0 if unset) and exits on SIGTERM/SIGINT. */
export async function serveAsChild(server: Server, name: string): Promise<void> {
  const raw = process.env[CHILD_ENV.port] ?? '0';
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${name}: ${CHILD_ENV.port}=${JSON.stringify(raw)} is not a port number`);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  process.stderr.write(`${name} listening on http://127.0.0.1:${bound}\n`);
}

/** True when `metaUrl` is the module node was asked to run (not merely imported). */
export function isMain(metaUrl: string): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return metaUrl === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}
