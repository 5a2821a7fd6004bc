// Unit: the usage store file: created with its folder, reopened, refused when newer or damaged (and left untouched),
// bounded by rollups with totals intact, and kept in memory through a failing disk.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ConfigError } from '../../src/config.ts';
import { openUsageStore, STORE_VERSION, type StoreData } from '../../src/usage/store.ts';
import { computeStats } from '../../src/usage/stats.ts';
import { sampleRecord } from './usage-records.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'llmtap-store-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const readStore = (file: string): StoreData => JSON.parse(readFileSync(file, 'utf8')) as StoreData;
const totalsOf = (s: ReturnType<typeof computeStats>) => {
  const { ttftMs: _t, durationMs: _d, ...rest } = s.totals;
  return rest;
};

describe('usage store', () => {
  it('creates its folder and a versioned file at once, and reopens what it wrote', async () => {
    const file = join(dir, 'a', 'deep', 'usage.json');
    const store = await openUsageStore({ file, flushMs: 60_000, maxRecords: 1000 });
    const fresh = readStore(file);
    assert.equal(fresh.format, 'llmtap-usage');
    assert.equal(fresh.version, STORE_VERSION);
    assert.deepEqual(fresh.records, []);
    for (let i = 0; i < 25; i++) store.add(sampleRecord(i));
    assert.equal(readStore(file).records.length, 0, 'nothing is written before the flush');
    await store.close();
    const written = readStore(file);
    assert.deepEqual(written.records, Array.from({ length: 25 }, (_, i) => sampleRecord(i)));
    const again = await openUsageStore({ file, flushMs: 60_000, maxRecords: 1000 });
    assert.equal(again.records().length, 25);
    assert.deepEqual(again.recent(2).map((r) => r.id), ['rec-24', 'rec-23']);
    assert.equal(again.modelTotals().reduce((a, t) => a + t.requests, 0), 25);
    await again.close();
  });

  it('writes a batch within the flush interval, not per record', async () => {
    const file = join(dir, 'batch.json');
    const store = await openUsageStore({ file, flushMs: 150, maxRecords: 1000 });
    for (let i = 0; i < 10; i++) store.add(sampleRecord(i));
    const writesBefore = store.flushInfo().writes;
    const deadline = Date.now() + 3000;
    while (readStore(file).records.length < 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(readStore(file).records.length, 10);
    assert.equal(store.flushInfo().writes, writesBefore + 1, 'ten records, one write');
    await store.close();
  });

  for (const [label, content, pattern] of [
    ['a file from a newer llmtap', JSON.stringify({ format: 'llmtap-usage', version: STORE_VERSION + 1, rollups: [], records: [] }), /written by a newer llmtap \(store version 2; this llmtap reads up to 1\)/],
    ['a file that does not parse', '{"format":"llmtap-usage","version":1,"records":[{"id":', /is not valid JSON/],
    ['JSON that is not a usage store', '[1,2,3]', /is not an llmtap usage store/],
  ] as const) {
    it(`refuses ${label}, names it, says how to move it aside, and leaves it untouched`, async () => {
      const file = join(dir, `refuse-${label.length}.json`);
      writeFileSync(file, content);
      const before = statSync(file);
      await assert.rejects(openUsageStore({ file, flushMs: 100, maxRecords: 100 }), (e: Error) => {
        assert.ok(e instanceof ConfigError, 'a start-up error');
        assert.match(e.message, pattern);
        assert.ok(e.message.includes(file), 'names the file');
        assert.ok(e.message.includes(`mv '${file}' '${file}.bad'`), 'says how to move it aside');
        assert.ok(!e.message.includes('\n'), 'one line');
        return true;
      });
      assert.equal(readFileSync(file, 'utf8'), content);
      assert.equal(statSync(file).mtimeMs, before.mtimeMs);
    });
  }

  it('takes an empty file as a new store', async () => {
    const file = join(dir, 'empty.json');
    writeFileSync(file, '');
    const store = await openUsageStore({ file, flushMs: 100, maxRecords: 100 });
    store.add(sampleRecord(1));
    await store.close();
    assert.equal(readStore(file).records.length, 1);
  });

  it('past the cap rolls the oldest into daily totals: totals identical, file bounded', async () => {
    const file = join(dir, 'capped.json');
    const cap = 400;
    const store = await openUsageStore({ file, flushMs: 60_000, maxRecords: cap });
    for (let i = 0; i < cap; i++) store.add(sampleRecord(i));
    await store.flush();
    const before = computeStats(store.records(), store.rollups(), {});
    const sizeAtCap = statSync(file).size;
    for (let i = cap; i < cap * 3; i++) store.add(sampleRecord(i));
    await store.flush();
    const all = Array.from({ length: cap * 3 }, (_, i) => sampleRecord(i));
    const expected = computeStats(all, [], {});
    const after = computeStats(store.records(), store.rollups(), {});
    assert.equal(store.records().length, cap);
    assert.deepEqual(totalsOf(after), totalsOf(expected), 'all-time totals are exact after the rollup');
    assert.equal(after.byModel.length, expected.byModel.length);
    // And from the file alone, as the next start reads it.
    const data = readStore(file);
    assert.equal(data.records.length, cap);
    assert.deepEqual(data.records.map((r) => r.id), all.slice(-cap).map((r) => r.id), 'the newest records stay whole');
    assert.deepEqual(totalsOf(computeStats(data.records, data.rollups, {})), totalsOf(expected));
    // Bound: the cap's worth of the longest record, plus the rollups (a few per day).
    const longest = Math.max(...all.map((r) => JSON.stringify(r).length + 2));
    const bound = cap * longest + JSON.stringify(data.rollups).length + 200;
    const size = statSync(file).size;
    assert.ok(size <= bound, `file ${size} bytes within its bound ${bound}`);
    assert.ok(size < sizeAtCap * 1.5, `three times the records, but the file grew only by the rollups (${sizeAtCap} -> ${size})`);
    assert.deepEqual(totalsOf(before), totalsOf(computeStats(all.slice(0, cap), [], {})));
    await store.close();
  });

  it('measures the flush time and file size at the default cap of 50,000 records', async () => {
    const file = join(dir, 'default-cap.json');
    const cap = 50_000;
    const store = await openUsageStore({ file, flushMs: 60_000, maxRecords: cap });
    const realistic = (i: number) => ({ ...sampleRecord(i), id: `mx${i.toString(36).padStart(8, '0')}-${(i * 2654435761 % 2 ** 32).toString(16).padStart(12, '0')}`, traceId: (i * 7919).toString(16).padStart(32, 'a') });
    for (let i = 0; i < cap; i++) store.add(realistic(i));
    let t = performance.now();
    await store.flush();
    const first = performance.now() - t;
    const times: number[] = [];
    for (let round = 0; round < 5; round++) {
      for (let k = 0; k < 200; k++) store.add(realistic(cap + round * 200 + k));
      t = performance.now();
      await store.flush();
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    const size = statSync(file).size;
    const data = readStore(file);
    assert.equal(data.records.length, cap);
    console.log(`# usage store at ${cap} records: file ${(size / 1e6).toFixed(1)} MB (${Math.round(size / cap)} B/record); first write ${first.toFixed(0)} ms, steady flush (+200 records, rollup) median ${times[2]!.toFixed(0)} ms, max ${times[4]!.toFixed(0)} ms; ${data.rollups.length} rollup buckets`);
    assert.ok(size < cap * 700, `about 600 bytes a record (${size})`);
    await store.close();
  });

  it('keeps records in memory through a failing disk, reports the first failure, and writes them once it can', async () => {
    const sub = join(dir, 'failing');
    const file = join(sub, 'usage.json');
    const errors: string[] = [];
    const store = await openUsageStore({ file, flushMs: 60_000, maxRecords: 100, onWriteError: (e, n) => errors.push(`${n}:${e.message}`) });
    // The folder turns into a file: every write fails.
    rmSync(sub, { recursive: true });
    writeFileSync(sub, 'not a folder');
    for (let i = 0; i < 5; i++) store.add(sampleRecord(i));
    await store.flush();
    await store.flush();
    assert.equal(store.flushInfo().failures >= 1, true);
    assert.match(errors[0] ?? '', /^1:.*(ENOTDIR|EEXIST)/);
    assert.equal(store.records().length, 5, 'the records are still there');
    rmSync(sub);
    mkdirSync(sub);
    await store.flush();
    assert.equal(readStore(file).records.length, 5);
    await store.close();
  });
});

describe('usage store lock', () => {
  it('one writer per file: a second store reads the file but keeps its records in memory; a dead writer\'s lock is taken over', async () => {
    const file = join(dir, 'locked.json');
    const first = await openUsageStore({ file, flushMs: 60_000, maxRecords: 100 });
    first.add(sampleRecord(1));
    await first.flush();
    assert.equal(readFileSync(`${file}.lock`, 'utf8').trim(), String(process.pid));
    // Pretend the lock belongs to another live process (the parent of this one).
    writeFileSync(`${file}.lock`, `${process.ppid}\n`);
    const second = await openUsageStore({ file, flushMs: 60_000, maxRecords: 100 });
    assert.equal(second.readOnlyOwner, process.ppid);
    assert.equal(second.records().length, 1, 'it reads what is there');
    second.add(sampleRecord(2));
    await second.close();
    assert.equal(readStore(file).records.length, 1, 'and never writes');
    assert.match(second.flushInfo().readOnlyBecause ?? '', new RegExp(`pid ${process.ppid}`));
    // A lock whose process is gone (and a temp file it left mid-write) are cleaned up by the next writer.
    writeFileSync(`${file}.lock`, '999999999\n');
    writeFileSync(join(dir, '.locked.json.999999999.tmp'), '{"half":');
    const third = await openUsageStore({ file, flushMs: 60_000, maxRecords: 100 });
    assert.equal(third.readOnlyOwner, null);
    assert.equal(existsSync(join(dir, '.locked.json.999999999.tmp')), false);
    third.add(sampleRecord(3));
    await third.close();
    assert.equal(readStore(file).records.length, 2);
    assert.equal(existsSync(`${file}.lock`), false, 'released on close');
    writeFileSync(`${file}.lock`, `${process.pid}\n`);
    await first.close();
  });
});
