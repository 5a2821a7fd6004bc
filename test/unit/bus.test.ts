// The exchange bus: taps that fail are contained, onEnd runs off the request path, drain and close settle.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createExchangeBus, type ExchangeStart, type TapFailure } from '../../src/exchange/bus.ts';
import type { ExchangeRecord } from '../../src/exchange/record.ts';

const rec = (id: string): ExchangeRecord => ({ id }) as unknown as ExchangeRecord;
const start = (id: string): ExchangeStart => ({ id }) as unknown as ExchangeStart;

describe('exchange bus', () => {
  it('a tap throwing in onEnd is reported once, counted every time, and other taps still get every record', async () => {
    const failures: TapFailure[] = [];
    const bus = createExchangeBus((f) => failures.push(f));
    const before: string[] = [];
    const afterIds: string[] = [];
    bus.subscribe({ name: 'before', onEnd: (r) => void before.push(r.id) });
    bus.subscribe({
      name: 'broken',
      onEnd: () => {
        throw new Error('disk full');
      },
    });
    bus.subscribe({ name: 'after', onEnd: (r) => void afterIds.push(r.id) });
    bus.end(rec('a'));
    bus.end(rec('b'));
    await bus.drain();
    bus.end(rec('c'));
    await bus.drain();
    assert.deepEqual(before, ['a', 'b', 'c']);
    assert.deepEqual(afterIds, ['a', 'b', 'c']);
    assert.equal(failures.length, 1);
    assert.equal(failures[0]!.tap, 'broken');
    assert.equal(failures[0]!.hook, 'onEnd');
    assert.equal(failures[0]!.error.message, 'disk full');
    assert.deepEqual(bus.failureCounts(), { broken: 3 });
  });

  it('an async onEnd that rejects is counted too; a thrown non-Error is wrapped', async () => {
    const failures: TapFailure[] = [];
    const bus = createExchangeBus((f) => failures.push(f));
    bus.subscribe({ name: 'async-broken', onEnd: async () => Promise.reject(new Error('nope')) });
    bus.subscribe({
      name: 'string-thrower',
      onEnd: () => {
        throw 'plain string'; // eslint-disable-line no-throw-literal
      },
    });
    bus.end(rec('a'));
    bus.end(rec('b'));
    await bus.drain();
    assert.deepEqual(bus.failureCounts(), { 'async-broken': 2, 'string-thrower': 2 });
    assert.equal(failures.length, 2);
    const s = failures.find((f) => f.tap === 'string-thrower')!;
    assert.ok(s.error instanceof Error);
    assert.match(s.error.message, /plain string/);
  });

  it('onEnd runs after end() returns, not synchronously (nor in the same microtask turn)', async () => {
    const bus = createExchangeBus(() => {});
    const seen: string[] = [];
    bus.subscribe({ name: 't', onEnd: (r) => void seen.push(r.id) });
    bus.end(rec('x'));
    assert.deepEqual(seen, [], 'not during end()');
    await Promise.resolve();
    assert.deepEqual(seen, [], 'not in the same microtask turn');
    await bus.drain();
    assert.deepEqual(seen, ['x']);
  });

  it('drain() waits for async onEnd handlers to settle', async () => {
    const bus = createExchangeBus(() => {});
    let finished = 0;
    bus.subscribe({
      name: 'slow',
      onEnd: async () => {
        await sleep(50);
        finished++;
      },
    });
    bus.end(rec('1'));
    bus.end(rec('2'));
    await bus.drain();
    assert.equal(finished, 2);
  });

  it('drain() resolves, with every onEnd handed out before it settled, while new records keep arriving', async () => {
    const bus = createExchangeBus(() => {});
    const done: string[] = [];
    bus.subscribe({
      name: 'slow',
      onEnd: async (r) => {
        await sleep(20);
        done.push(r.id);
      },
    });
    bus.end(rec('1'));
    const drained = bus.drain();
    setTimeout(() => bus.end(rec('2')), 5);
    await drained;
    assert.ok(done.includes('1'));
  });

  it('close() drains, then calls each tap close once, even when called twice; a throwing close is counted', async () => {
    const failures: TapFailure[] = [];
    const bus = createExchangeBus((f) => failures.push(f));
    const order: string[] = [];
    let closesA = 0;
    let closesB = 0;
    bus.subscribe({
      name: 'a',
      onEnd: async () => {
        await sleep(20);
        order.push('a.onEnd');
      },
      close: async () => {
        closesA++;
        order.push('a.close');
      },
    });
    bus.subscribe({
      name: 'b',
      close: () => {
        closesB++;
        order.push('b.close');
        throw new Error('close failed');
      },
    });
    bus.subscribe({ name: 'c' });
    bus.end(rec('r'));
    await Promise.all([bus.close(), bus.close()]);
    await bus.close();
    assert.equal(closesA, 1);
    assert.equal(closesB, 1);
    assert.deepEqual(order, ['a.onEnd', 'a.close', 'b.close']);
    assert.deepEqual(bus.failureCounts(), { b: 1 });
    assert.equal(failures[0]?.hook, 'close');
  });

  it('synchronous hooks: a throwing onStart/onChunk is counted and does not stop the other taps', () => {
    const failures: TapFailure[] = [];
    const bus = createExchangeBus((f) => failures.push(f));
    const got: string[] = [];
    assert.equal(bus.wantsChunks, false);
    bus.subscribe({
      name: 'bad',
      onStart: () => {
        throw new Error('s');
      },
      onChunk: () => {
        throw new Error('c');
      },
    });
    const unsubscribe = bus.subscribe({
      name: 'good',
      onStart: (s) => void got.push(`start ${s.id}`),
      onResponseHead: (id, status) => void got.push(`head ${id} ${status}`),
      onChunk: (id, dir, chunk) => void got.push(`chunk ${id} ${dir} ${chunk.length}`),
    });
    assert.equal(bus.wantsChunks, true);
    bus.start(start('e1'));
    bus.responseHead('e1', 200, {});
    bus.chunk('e1', 'response', new Uint8Array(3), 1);
    bus.chunk('e1', 'response', new Uint8Array(4), 2);
    assert.deepEqual(got, ['start e1', 'head e1 200', 'chunk e1 response 3', 'chunk e1 response 4']);
    assert.deepEqual(bus.failureCounts(), { bad: 3 });
    assert.equal(failures.length, 1);
    assert.equal(failures[0]!.hook, 'onStart');
    unsubscribe();
    bus.chunk('e1', 'response', new Uint8Array(5), 3);
    assert.equal(got.length, 4, 'unsubscribed taps get nothing more');
  });
});
