// Collects the exchange records a running llmtap publishes, and waits (bounded) for the one a test is about.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExchangeBus } from '../../src/exchange/bus.ts';
import type { ExchangeRecord } from '../../src/exchange/record.ts';

export interface RecordSink {
  readonly all: ExchangeRecord[];
  /** the first record matching pred among exchanges started since the last clear(), after draining the bus; fails after timeoutMs */
  waitFor(pred: (r: ExchangeRecord) => boolean, timeoutMs?: number): Promise<ExchangeRecord>;
  /** every record so far, after draining the bus */
  settled(): Promise<ExchangeRecord[]>;
  clear(): void;
  stop(): void;
}

export function collectRecords(bus: ExchangeBus, name = 'e2e-test'): RecordSink {
  const all: ExchangeRecord[] = [];
  // Exchanges that started before clear() (a previous test's aborted stream ending late) are not this test's.
  let since = 0;
  const current = (r: ExchangeRecord): boolean => Date.parse(r.startedAt) >= since;
  const stop = bus.subscribe({ name, onEnd: (r) => void (current(r) && all.push(r)) });
  return {
    all,
    async waitFor(pred, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      // Records of aborted exchanges may arrive a little after the client noticed; poll, bounded.
      for (let i = 0; i < 1000; i++) {
        await bus.drain();
        const found = all.find((r) => current(r) && pred(r));
        if (found) return found;
        if (Date.now() > deadline) break;
        await sleep(20);
      }
      throw new Error(`no matching exchange record within ${timeoutMs} ms; have: ${all.map((r) => `${r.method} ${r.url} ${r.outcome}`).join(' | ') || 'none'}`);
    },
    async settled() {
      await bus.drain();
      return all;
    },
    clear() {
      all.length = 0;
      since = Date.now();
    },
    stop,
  };
}
