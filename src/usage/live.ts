// GET /api/usage-stream: Server-Sent Events with a snapshot on connect, then coalesced updates as exchanges start and end.
import { PassThrough } from 'node:stream';
import type { Context } from 'koa';
import type { UsageRecord } from './record.ts';

export interface LiveOptions {
  /** the current state (NOMYO Router's usage_counts / token_usage_counts, plus llmtap's own fields) */
  snapshot(): Record<string, unknown>;
  /** the newest records, for a client that just connected */
  recent(n: number): UsageRecord[];
  /** at most one update per this many ms (default 250: four a second) */
  minIntervalMs?: number;
  /** a comment line this often keeps proxies and browsers from closing an idle stream (default 15 s) */
  heartbeatMs?: number;
  maxClients?: number;
}

export interface LiveStream {
  /** answers the request with the event stream; false when too many clients are connected */
  attach(ctx: Context): boolean;
  /** something changed (an exchange started or ended): an update goes out within minIntervalMs */
  changed(): void;
  ended(r: UsageRecord): void;
  clients(): number;
  close(): void;
}

/** Finished exchanges carried by one update; beyond this a burst is summarized by the totals alone. */
const MAX_FINISHED_PER_UPDATE = 200;
/** A client this far behind (bytes queued) is too slow to follow: it is dropped rather than buffered without end. */
const MAX_QUEUED_BYTES = 4 * 1024 * 1024;

export function createLiveStream(opts: LiveOptions): LiveStream {
  const minInterval = opts.minIntervalMs ?? 250;
  const maxClients = opts.maxClients ?? 64;
  const clients = new Set<PassThrough>();
  let finished: UsageRecord[] = [];
  let timer: NodeJS.Timeout | null = null;
  let lastSent = 0;
  let seq = 0;
  let heartbeat: NodeJS.Timeout | null = null;

  const send = (out: PassThrough, text: string): void => {
    if (out.destroyed) return;
    if (out.writableLength > MAX_QUEUED_BYTES) {
      out.destroy();
      return;
    }
    out.write(text);
  };

  const event = (payload: unknown): string => `id: ${++seq}\ndata: ${JSON.stringify(payload)}\n\n`;

  const update = (): void => {
    timer = null;
    lastSent = Date.now();
    const batch = finished;
    finished = [];
    if (clients.size === 0) return;
    const text = event({ ...opts.snapshot(), type: 'update', finished: batch });
    for (const c of clients) send(c, text);
  };

  const startHeartbeat = (): void => {
    if (heartbeat) return;
    heartbeat = setInterval(() => {
      const line = `: ping ${new Date().toISOString()}\n\n`;
      for (const c of clients) send(c, line);
    }, opts.heartbeatMs ?? 15_000);
    heartbeat.unref();
  };

  const changed = (): void => {
    if (timer || clients.size === 0) return;
    timer = setTimeout(update, Math.max(0, lastSent + minInterval - Date.now()));
    timer.unref();
  };

  return {
    attach(ctx) {
      if (clients.size >= maxClients) return false;
      const out = new PassThrough();
      clients.add(out);
      const drop = (): void => {
        clients.delete(out);
        if (!out.destroyed) out.destroy();
        if (clients.size === 0 && heartbeat) {
          clearInterval(heartbeat);
          heartbeat = null;
        }
      };
      out.once('close', drop);
      ctx.req.once('close', drop);
      ctx.res.once('close', drop);
      ctx.req.socket.setNoDelay(true);
      ctx.status = 200;
      ctx.set('content-type', 'text/event-stream; charset=utf-8');
      ctx.set('cache-control', 'no-cache, no-transform');
      ctx.set('x-accel-buffering', 'no');
      ctx.body = out;
      out.write('retry: 2000\n\n');
      // Oldest first, so a page can replay them in order into its charts.
      out.write(event({ ...opts.snapshot(), type: 'snapshot', finished: opts.recent(60).reverse() }));
      startHeartbeat();
      return true;
    },
    changed,
    ended(r) {
      if (clients.size === 0) return;
      finished.push(r);
      if (finished.length > MAX_FINISHED_PER_UPDATE) finished.shift();
      changed();
    },
    clients: () => clients.size,
    close() {
      if (timer) clearTimeout(timer);
      if (heartbeat) clearInterval(heartbeat);
      for (const c of clients) c.end();
      clients.clear();
    },
  };
}
