// Unit: the capture writer — rotation and pruning, records never split, a failing directory, a full queue.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeRecord, FILE_PATTERN, headerRecord, type ChunkRecord } from '../../src/capture/format.ts';
import { readAllRecords } from '../../src/capture/reader.ts';
import { createCaptureWriter, type WriterOptions } from '../../src/capture/writer.ts';

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'llmtap-capture-writer-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

const header = (sequence: number) => encodeRecord(headerRecord({ created: new Date().toISOString(), host: 'h', pid: process.pid, llmtap: '0', bodies: true, redacted: [], sequence }));
const chunk = (i: number, size: number): Uint8Array => encodeRecord({ type: 'chunk', id: `ex-${i}`, dir: 'response', at: i, wall: Date.now(), size, data: Buffer.alloc(size, i & 0xff) } satisfies ChunkRecord);

function options(dir: string, over: Partial<WriterOptions> = {}): WriterOptions & { warnings: string[] } {
  const warnings: string[] = [];
  return { dir, maxFileBytes: 10_000, maxFiles: 3, maxQueueBytes: 8 * 1024 * 1024, header, warn: (kind, msg) => void warnings.push(`${kind}: ${msg}`), warnings, ...over };
}

describe('rotation and pruning', () => {
  it('leaves at most maxFiles files, each a readable sequence of whole records under the size limit, newest records kept', async () => {
    const dir = join(root, 'rotate');
    const o = options(dir);
    const w = createCaptureWriter(o);
    const n = 400;
    // Written in bursts, as traffic does: each burst is one batch that spans file boundaries.
    for (let i = 0; i < n; i++) {
      w.write(chunk(i, 100 + (i % 7) * 50));
      if (i % 50 === 49) await w.flush();
    }
    await w.close();
    const files = readdirSync(dir).sort();
    assert.ok(files.length <= 3, `at most 3 files, got ${files.length}`);
    assert.equal(files.length, 3);
    assert.ok(files.every((f) => FILE_PATTERN.test(f)), files.join(', '));
    assert.ok(w.stats().files > 3, `rotated several times (${w.stats().files} files started)`);
    const seen: number[] = [];
    for (const f of files) {
      const path = join(dir, f);
      assert.ok(statSync(path).size <= 10_000, `${f} is ${statSync(path).size} bytes`);
      const { records, cuts } = await readAllRecords(path);
      assert.deepEqual(cuts, [], `${f} has no cut record`);
      assert.equal(records[0]!.type, 'header');
      for (const r of records.slice(1)) {
        assert.equal(r.type, 'chunk');
        const c = r as ChunkRecord;
        const i = Number(c.id.slice(3));
        assert.deepEqual(Buffer.from(c.data!), Buffer.alloc(c.size, i & 0xff), `record ${i} intact`);
        seen.push(i);
      }
    }
    // What is left is the newest, in order, ending with the last record written.
    assert.equal(seen.at(-1), n - 1);
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
    assert.deepEqual(seen, Array.from({ length: seen.length }, (_, k) => n - seen.length + k));
    assert.equal(w.stats().written, n);
    assert.deepEqual(o.warnings, []);
  });

  it('a record bigger than the limit gets a file of its own, whole', async () => {
    const dir = join(root, 'big');
    const w = createCaptureWriter(options(dir, { maxFileBytes: 1000, maxFiles: 10 }));
    w.write(chunk(1, 100));
    w.write(chunk(2, 5000));
    w.write(chunk(3, 100));
    await w.close();
    const files = readdirSync(dir).sort();
    assert.equal(files.length, 3);
    const ids = [];
    for (const f of files) {
      const { records, cuts } = await readAllRecords(join(dir, f));
      assert.deepEqual(cuts, []);
      ids.push(records.slice(1).map((r) => (r as ChunkRecord).id));
    }
    assert.deepEqual(ids, [['ex-1'], ['ex-2'], ['ex-3']]);
  });

  it('files are flushed on close: the last record is on disk', async () => {
    const dir = join(root, 'flush');
    const w = createCaptureWriter(options(dir, { maxFiles: 5 }));
    for (let i = 0; i < 10; i++) w.write(chunk(i, 10));
    await w.close();
    const { records } = await readAllRecords(dir);
    assert.equal(records.length, 11);
    assert.equal(w.write(chunk(99, 10)), false, 'writes after close are refused');
  });
});

describe('failures', () => {
  it('a directory that cannot be created (its path is a file): one warning, failures counted, nothing thrown', async () => {
    const blocker = join(root, 'not-a-dir');
    writeFileSync(blocker, 'a regular file');
    const o = options(join(blocker, 'captures'), { retryMs: 0 });
    const w = createCaptureWriter(o);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 5; i++) assert.equal(w.write(chunk(i, 10)), true, 'queued: the caller never sees the disk');
      await w.flush();
    }
    await w.close();
    const s = w.stats();
    assert.ok(s.failures >= 3, `failures ${s.failures}`);
    assert.equal(s.lost, 15);
    assert.equal(s.written, 0);
    assert.equal(o.warnings.length, 1, o.warnings.join('\n'));
    assert.match(o.warnings[0]!, /^write_failed: captures: cannot create a capture file in .*not-a-dir\/captures: (ENOTDIR|EEXIST)/);
    assert.equal(readFileSync(blocker, 'utf8'), 'a regular file');
  });

  it('a full queue drops and counts records and warns once', async () => {
    const dir = join(root, 'full');
    const o = options(dir, { maxQueueBytes: 2000, maxFiles: 5, maxFileBytes: 1e6 });
    const w = createCaptureWriter(o);
    let accepted = 0;
    for (let i = 0; i < 100; i++) if (w.write(chunk(i, 100))) accepted++;
    await w.close();
    const s = w.stats();
    assert.ok(accepted > 0 && accepted < 100);
    assert.equal(s.dropped, 100 - accepted);
    assert.equal(s.written, accepted);
    assert.equal(o.warnings.length, 1);
    assert.match(o.warnings[0]!, /^queue_full: captures: the disk is not keeping up/);
    const { records } = await readAllRecords(dir);
    assert.equal(records.length, accepted + 1);
  });
});

describe('the capture tap batches chunks', () => {
  async function tapIn(dir: string) {
    const { captureFeature } = await import('../../src/capture/feature.ts');
    const { configWith } = await import('../../src/config.ts');
    const pino = (await import('pino')).default;
    const feature = (await captureFeature({ config: configWith({ capture: true, captureDir: dir }), log: pino({ level: 'silent' }), env: {}, bus: null as never, inFlight: () => 0, upstreams: null, rateLimited: () => 0 })) as import('../../src/capture/feature.ts').CaptureFeature;
    return { feature, tap: feature.taps![0]! };
  }
  const start = (id: string) => ({ id, startedAt: new Date().toISOString(), method: 'POST', url: '/api/chat', dialect: 'ollama' as const, upstream: { name: 'ollama', url: 'http://127.0.0.1:1' }, model: 'm', stream: true, operation: 'chat' as const, requestHeaders: { authorization: 'Bearer sk-x' }, requestBody: Buffer.from('{}') });

  it('writes request, request batch, head, one batch of all response chunks, end — in that order; a stray chunk is written alone', async () => {
    const dir = join(root, 'tap');
    const { feature, tap } = await tapIn(dir);
    tap.onStart!(start('ex-1'));
    tap.onChunk!('ex-1', 'request', Buffer.from('{}'), 0.5);
    tap.onResponseHead!('ex-1', 200, { 'content-type': 'application/x-ndjson' });
    for (let i = 0; i < 5; i++) tap.onChunk!('ex-1', 'response', Buffer.from(`line ${i}\n`), 1 + i);
    tap.onChunk!('stray', 'response', Buffer.from('late'), 9);
    await feature.flush();
    // Exchanges interleave in a file (the stray chunk may come first); each one's records are in order.
    const of = (records: { type: string; id?: string }[], id: string) => records.filter((r) => r.id === id).map((r) => r.type);
    const mid = (await readAllRecords(dir)).records as { type: string; id?: string }[];
    assert.equal(mid[0]!.type, 'header');
    assert.equal(mid.length, 5);
    assert.deepEqual(of(mid, 'ex-1'), ['request', 'chunks', 'response'], 'the exchange\'s response chunks wait for its end');
    assert.deepEqual(of(mid, 'stray'), ['chunks'], 'the stray chunk does not wait');
    // onEnd reads only the fields the end record copies.
    tap.onEnd!({ id: 'ex-1', startedAt: '', method: 'POST', url: '/api/chat', dialect: 'ollama', upstream: { name: 'o', url: 'u' }, operation: 'chat', model: 'm', stream: true, timings: {}, usage: {}, bytes: {}, finishReasons: [] } as never);
    await feature.close!();
    const { records } = await readAllRecords(dir);
    assert.equal(records.length, 7);
    assert.deepEqual(of(records as { type: string; id?: string }[], 'ex-1'), ['request', 'chunks', 'response', 'chunks', 'end']);
    const batch = records.filter((r) => r.type === 'chunks' && r.id === 'ex-1')[1] as import('../../src/capture/format.ts').ChunksRecord;
    assert.equal(batch.id, 'ex-1');
    assert.deepEqual(batch.at, [1, 2, 3, 4, 5]);
    assert.deepEqual(batch.data!.map((d) => Buffer.from(d).toString()), [0, 1, 2, 3, 4].map((i) => `line ${i}\n`));
    assert.deepEqual(of(records as { type: string; id?: string }[], 'stray'), ['chunks']);
    assert.equal(readFileSync(join(dir, readdirSync(dir)[0]!)).indexOf('sk-x'), -1);
  });
  it('an exchange whose records cannot be encoded is left out, once reported; the others are written and the process goes on', async () => {
    const dir = join(root, 'tap-bad');
    const { captureFeature } = await import('../../src/capture/feature.ts');
    const { configWith } = await import('../../src/config.ts');
    const pino = (await import('pino')).default;
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    const feature = (await captureFeature({ config: configWith({ capture: true, captureDir: dir }), log, env: {}, bus: null as never, inFlight: () => 0, upstreams: null, rateLimited: () => 0 }))!;
    const tap = feature.taps![0]!;
    const poisoned = { get authorization(): string { throw new Error('poisoned header'); } };
    for (const id of ['bad-1', 'good-1', 'bad-2']) {
      tap.onStart!({ ...start(id), requestHeaders: id.startsWith('bad') ? (poisoned as never) : { authorization: 'Bearer sk-x' } });
      tap.onEnd!({ id, startedAt: '', method: 'POST', url: '/api/chat', dialect: 'ollama', upstream: { name: 'o', url: 'u' }, operation: 'chat', model: 'm', stream: true, timings: {}, usage: {}, bytes: {}, finishReasons: [] } as never);
    }
    // The encoding runs from a timer, outside any caller's try/catch: a throw there would end the process.
    await new Promise((r) => setTimeout(r, 50));
    await feature.close!();
    const { records } = await readAllRecords(dir);
    assert.deepEqual(records.filter((r) => r.type === 'request').map((r) => r.id), ['good-1']);
    assert.deepEqual(records.filter((r) => r.type === 'end').map((r) => [r.id, (r as { dropped: number }).dropped]), [['bad-1', 1], ['good-1', 0], ['bad-2', 1]]);
    assert.equal(lines.filter((l) => l.includes('cannot encode')).length, 1, lines.join(''));
  });
});
