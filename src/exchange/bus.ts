// Fans exchange events out to subscribers (logs, telemetry, captures, usage) without letting them touch the relay.
import type { ExchangeRecord, DialectName, Operation } from './record.ts';

export interface ExchangeStart {
  id: string;
  startedAt: string;
  method: string;
  url: string;
  dialect: DialectName;
  upstream: { name: string; url: string };
  model: string;
  stream: boolean;
  operation: Operation;
  /** headers as forwarded to the upstream (credentials included: a tap that stores them must redact) */
  requestHeaders: Readonly<Record<string, string | string[]>>;
  /** the body as forwarded to the upstream */
  requestBody: Uint8Array | null;
}

/**
 * A subscriber. The synchronous hooks run on the request path, so they must be cheap (queue, don't write);
 * whatever they throw is caught, counted and reported once. onEnd runs after the client has its last byte.
 */
export interface ExchangeTap {
  name: string;
  onStart?(start: ExchangeStart): void;
  onResponseHead?(id: string, status: number, headers: Readonly<Record<string, string | string[]>>): void;
  /** a body chunk as relayed; `at` is ms since the exchange started (monotonic) */
  onChunk?(id: string, direction: 'request' | 'response', chunk: Uint8Array, at: number): void;
  onEnd?(record: ExchangeRecord): void | Promise<void>;
  /** flush and release; called once at shutdown after in-flight exchanges finished */
  close?(): void | Promise<void>;
}

export interface TapFailure {
  tap: string;
  hook: string;
  error: Error;
}

export interface ExchangeBus {
  subscribe(tap: ExchangeTap): () => void;
  /** true when some tap wants chunks, so the relay can skip the call entirely otherwise */
  readonly wantsChunks: boolean;
  /** true when some tap wants onStart, so the relay can skip building its argument otherwise */
  readonly wantsStart: boolean;
  start(start: ExchangeStart): void;
  responseHead(id: string, status: number, headers: Readonly<Record<string, string | string[]>>): void;
  chunk(id: string, direction: 'request' | 'response', chunk: Uint8Array, at: number): void;
  end(record: ExchangeRecord): void;
  /** resolves when every onEnd handed out so far has settled */
  drain(): Promise<void>;
  /** drains, then closes every tap */
  close(): Promise<void>;
  /** failures per tap name, for diagnostics and metrics */
  failureCounts(): Record<string, number>;
}

export function createExchangeBus(onFirstFailure: (f: TapFailure) => void): ExchangeBus {
  let taps: ExchangeTap[] = [];
  let chunkTaps: ExchangeTap[] = [];
  let startTaps: ExchangeTap[] = [];
  const failures = new Map<string, number>();
  let queue: ExchangeRecord[] = [];
  let scheduled = false;
  const pending = new Set<Promise<void>>();
  let idle: Promise<void> | null = null;

  const fail = (tap: ExchangeTap, hook: string, err: unknown): void => {
    const n = (failures.get(tap.name) ?? 0) + 1;
    failures.set(tap.name, n);
    if (n === 1) onFirstFailure({ tap: tap.name, hook, error: err instanceof Error ? err : new Error(String(err)) });
  };

  const refresh = (): void => {
    chunkTaps = taps.filter((t) => t.onChunk);
    startTaps = taps.filter((t) => t.onStart);
  };

  const deliver = (): void => {
    scheduled = false;
    const batch = queue;
    queue = [];
    // Tap by tap, each over the whole batch: one tap's code and data stay in the CPU's caches from record to record.
    for (const tap of taps) {
      if (!tap.onEnd) continue;
      for (const record of batch) {
        try {
          const r = tap.onEnd(record);
          if (r && typeof (r as Promise<void>).then === 'function') {
            const p: Promise<void> = (r as Promise<void>).catch((err: unknown) => fail(tap, 'onEnd', err)).finally(() => pending.delete(p));
            pending.add(p);
          }
        } catch (err) {
          fail(tap, 'onEnd', err);
        }
      }
    }
  };

  const safely = (hook: 'onStart' | 'onResponseHead', call: (t: ExchangeTap) => void, list: ExchangeTap[]): void => {
    for (const tap of list) {
      if (!tap[hook]) continue;
      try {
        call(tap);
      } catch (err) {
        fail(tap, hook, err);
      }
    }
  };

  const bus: ExchangeBus = {
    subscribe(tap) {
      taps = [...taps, tap];
      refresh();
      return () => {
        taps = taps.filter((t) => t !== tap);
        refresh();
      };
    },
    get wantsChunks() {
      return chunkTaps.length > 0;
    },
    get wantsStart() {
      return startTaps.length > 0;
    },
    start(start) {
      safely('onStart', (t) => t.onStart!(start), startTaps);
    },
    responseHead(id, status, headers) {
      safely('onResponseHead', (t) => t.onResponseHead!(id, status, headers), taps);
    },
    chunk(id, direction, chunk, at) {
      // Called for every chunk of every stream: a plain loop, without the closure safely() would take.
      for (const tap of chunkTaps) {
        try {
          tap.onChunk!(id, direction, chunk, at);
        } catch (err) {
          fail(tap, 'onChunk', err);
        }
      }
    },
    end(record) {
      queue.push(record);
      if (!scheduled) {
        scheduled = true;
        // Off the request path: the client already has its last byte when subscribers run.
        setImmediate(deliver);
      }
    },
    async drain() {
      // setImmediate callbacks queued before this call run before ours.
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
    async close() {
      if (!idle) {
        idle = (async () => {
          await bus.drain();
          for (const tap of taps) {
            if (!tap.close) continue;
            try {
              await tap.close();
            } catch (err) {
              fail(tap, 'close', err);
            }
          }
        })();
      }
      return idle;
    },
    failureCounts() {
      return Object.fromEntries(failures);
    },
  };
  return bus;
}
