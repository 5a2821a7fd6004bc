// Unit: the capture format — CBOR framing, reading files cut at any byte, refusing foreign or newer files, redaction, the queue.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Encoder } from 'cbor-x';
import { itemEnd, MalformedCbor } from '../../src/capture/cbor-scan.ts';
import { CaptureFormatError, decodeItem, encodeChunks, encodeRecord, expandChunks, headerRecord, newBatch, REDACTED, type ChunkBatch, type ChunkRecord, type ChunksRecord } from '../../src/capture/format.ts';
import { createAssembler } from '../../src/capture/exchanges.ts';
import { readAllRecords, readCapture } from '../../src/capture/reader.ts';
import { createRedactor, CREDENTIAL_HEADERS } from '../../src/capture/redact.ts';
import { createRecordQueue } from '../../src/capture/queue.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'llmtap-capture-format-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const header = () => headerRecord({ created: '2025-01-01T00:00:00.000Z', host: 'h', pid: 1, llmtap: '0.0.0', bodies: true, redacted: [...CREDENTIAL_HEADERS], sequence: 1 });
const chunk = (i: number, size = 40): ChunkRecord => ({ type: 'chunk', id: 'x-1', dir: 'response', at: i, wall: 1_700_000_000_000 + i, size, data: Buffer.alloc(size, i & 0xff) });
/** A batch of `n` chunks starting at chunk number `from`, as the capture tap builds it. */
const batch = (from: number, n: number, size = 40, bodies = true): ChunkBatch => {
  const b = newBatch(bodies);
  for (let i = from; i < from + n; i++) {
    b.at.push(i + 0.125);
    b.wall.push(1_700_000_000_000 + i);
    b.size.push(size);
    b.data?.push(Buffer.alloc(size, i & 0xff));
  }
  return b;
};

describe('CBOR framing', () => {
  it('finds the end of every kind of item, and says -1 for every cut', () => {
    const plain = new Encoder({ useRecords: false, tagUint8Array: false });
    const values: unknown[] = [0, 23, 24, 255, 65_536, 2 ** 40, -1, -1000, 1.5, 1e300, true, null, undefined, 'é', 'x'.repeat(300), Buffer.alloc(70_000, 1), [1, [2, [3]]], { a: { b: [1, 'c'] } }, new Date(0)];
    for (const v of values) {
      const bytes = plain.encode(v);
      assert.equal(itemEnd(bytes, 0), bytes.length, `end of ${String(v).slice(0, 20)}`);
      for (let cut = 0; cut < Math.min(bytes.length, 64); cut++) assert.equal(itemEnd(bytes.subarray(0, cut), 0), -1, `cut at ${cut} of ${String(v).slice(0, 20)}`);
    }
    // Indefinite-length array [1, "ab"] and indefinite byte string of two chunks.
    const indefinite = Buffer.from([0x9f, 0x01, 0x62, 0x61, 0x62, 0xff, 0x5f, 0x41, 0x00, 0x41, 0x01, 0xff]);
    assert.equal(itemEnd(indefinite, 0), 6);
    assert.equal(itemEnd(indefinite, 6), 12);
    assert.equal(itemEnd(indefinite.subarray(0, 5), 0), -1);
    assert.throws(() => itemEnd(Buffer.from([0x1c]), 0), MalformedCbor);
    assert.throws(() => itemEnd(Buffer.from([0xff]), 0), MalformedCbor);
  });
});

describe('reading a file cut short', () => {
  it('yields every earlier record at every cut offset of the last record, and reports where it was cut', async () => {
    // Four batches of three chunks each, as a streamed exchange writes them.
    const parts = [encodeRecord(header()), ...Array.from({ length: 4 }, (_, k) => encodeChunks('x-1', 'response', batch(k * 3, 3)))];
    const whole = Buffer.concat(parts);
    const lastStart = whole.length - parts.at(-1)!.length;
    const file = join(dir, 'cut.cbor');
    let checked = 0;
    for (let cut = lastStart; cut <= whole.length; cut++) {
      writeFileSync(file, whole.subarray(0, cut));
      const items = [];
      for await (const item of readCapture(file)) items.push(item);
      const got = items.filter((i) => i.kind === 'record').map((i) => (i.kind === 'record' ? i.record : null));
      const cuts = items.filter((i) => i.kind === 'cut');
      if (cut === whole.length) {
        assert.equal(got.length, parts.length);
        assert.equal(cuts.length, 0);
      } else {
        assert.equal(got.length, parts.length - 1, `cut at ${cut}: all earlier records`);
        assert.deepEqual(cuts, cut === lastStart ? [] : [{ kind: 'cut', file, offset: lastStart, bytes: cut - lastStart }], `cut at ${cut}`);
      }
      const chunks = (got.slice(1) as ChunksRecord[]).flatMap(expandChunks);
      assert.equal(chunks.length, (got.length - 1) * 3);
      chunks.forEach((c, i) => {
        assert.equal(c.at, i + 0.125);
        assert.deepEqual(Buffer.from(c.data!), Buffer.alloc(40, i));
      });
      checked++;
    }
    assert.equal(checked, whole.length - lastStart + 1);
  });

  it('a file cut inside its header yields nothing and reports the cut, not a format error', async () => {
    const bytes = encodeRecord(header());
    const file = join(dir, 'header-cut.cbor');
    for (let cut = 1; cut < bytes.length; cut++) {
      writeFileSync(file, bytes.subarray(0, cut));
      const { records, cuts } = await readAllRecords(file);
      assert.equal(records.length, 0);
      assert.equal(cuts.length, 1, `cut at ${cut}`);
      assert.equal(cuts[0]!.offset, 0);
    }
  });
});

describe('refusing what is not a capture', () => {
  it('rejects another format, a newer major version and non-CBOR bytes with a clear message; reads a newer minor', async () => {
    const plain = new Encoder({ useRecords: false });
    const cases: [string, Uint8Array, RegExp][] = [
      ['other.cbor', plain.encode({ format: 'something-else', version: '1.0' }), /is not an llmtap capture/],
      ['newer.cbor', encodeRecord({ ...header(), version: '3.0' }), /format 3\.0, written by a newer llmtap; this reader reads formats 1\.x to 2\.x/],
      ['older.cbor', encodeRecord({ ...header(), version: '0.9' }), /format 0\.9, older than this reader supports/],
      ['json.cbor', Buffer.from('{"format":"llmtap-capture"}\n'), /not an llmtap capture|not a CBOR sequence/],
    ];
    for (const [name, bytes, message] of cases) {
      const file = join(dir, name);
      writeFileSync(file, bytes);
      await assert.rejects(readAllRecords(file), (err: Error) => err instanceof CaptureFormatError && message.test(err.message) && err.message.includes(file));
    }
    const minor = join(dir, 'minor.cbor');
    writeFileSync(minor, Buffer.concat([encodeRecord({ ...header(), version: '1.7' }), plain.encode({ type: 'from-the-future', id: 'x' }), encodeRecord(chunk(1))]));
    const { records } = await readAllRecords(minor);
    assert.equal(records.length, 3);
    const minor2 = join(dir, 'minor2.cbor');
    writeFileSync(minor2, Buffer.concat([encodeRecord({ ...header(), version: '2.3' }), plain.encode({ type: 'from-the-future', id: 'x' }), encodeChunks('x', 'response', batch(0, 2))]));
    assert.equal((await readAllRecords(minor2)).records.length, 3);
  });

  it('reads a format 1.x file (one record per chunk) into the same exchange as a 2.x file (batches)', async () => {
    const v1 = join(dir, 'v1.cbor');
    const v2 = join(dir, 'v2.cbor');
    writeFileSync(v1, Buffer.concat([encodeRecord({ ...header(), version: '1.0' }), ...expandChunks({ type: 'chunks', id: 'x', dir: 'response', ...batch(0, 5) }).map(encodeRecord)]));
    writeFileSync(v2, Buffer.concat([encodeRecord(header()), encodeChunks('x', 'response', batch(0, 2)), encodeChunks('x', 'response', batch(2, 3))]));
    const seen = [];
    for (const f of [v1, v2]) {
      const asm = createAssembler({ keepChunks: () => true });
      for (const r of (await readAllRecords(f)).records) asm.add(r, f);
      const [ex] = asm.exchanges();
      assert.equal(ex!.responseChunks, 5);
      assert.equal(ex!.firstChunkAt, 0.125);
      assert.equal(ex!.lastChunkAt, 4.125);
      assert.equal(ex!.maxGap, 1);
      seen.push(ex!.chunks.map((c) => ({ ...c, data: Buffer.from(c.data!) })));
    }
    assert.deepEqual(seen[0], seen[1]);
    assert.equal(seen[0]!.length, 5);
  });
});

describe('redaction', () => {
  it('replaces every credential header and the configured extras, keeps the rest', () => {
    const redact = createRedactor(['X-Custom-Secret']);
    const out = redact({
      Authorization: 'Bearer sk-1',
      'x-api-key': 'sk-ant-2',
      'api-key': 'azure-3',
      cookie: 'a=b',
      'set-cookie': ['c=d', 'e=f'],
      'proxy-authorization': 'Basic x',
      'x-custom-secret': 's3',
      'content-type': 'application/json',
      'x-many': ['1', '2'],
    });
    for (const name of [...CREDENTIAL_HEADERS, 'x-custom-secret']) assert.equal(out[name], REDACTED, name);
    assert.equal(out['content-type'], 'application/json');
    assert.deepEqual(out['x-many'], ['1', '2']);
    assert.ok(!JSON.stringify(out).includes('sk-'));
  });
});

describe('the bounded queue', () => {
  it('drops past its bound, counts every drop, calls back once, and frees room on release', () => {
    let warned = 0;
    const q = createRecordQueue(100, () => warned++);
    assert.equal(q.push(Buffer.alloc(60)), true);
    assert.equal(q.push(Buffer.alloc(60)), false);
    assert.equal(q.push(Buffer.alloc(60)), false);
    assert.equal(q.dropped, 2);
    assert.equal(warned, 1);
    const taken = q.take();
    assert.equal(taken.length, 1);
    assert.equal(q.push(Buffer.alloc(60)), false, 'taken bytes still count until released');
    q.release(taken[0]!);
    assert.equal(q.push(Buffer.alloc(60)), true);
    assert.equal(q.dropped, 3);
  });

  it('packs whole records into blocks and knows where each ends; a record bigger than a block gets its own', () => {
    const q = createRecordQueue(1e6, () => {}, 100);
    const sizes = [30, 30, 30, 30, 250, 10];
    sizes.forEach((n, i) => assert.ok(q.push(Buffer.alloc(n, i + 1))));
    assert.equal(q.length, sizes.length);
    const blocks = q.take();
    assert.deepEqual(blocks.map((b) => b.ends), [[30, 60, 90], [30], [250], [10]]);
    const all = Buffer.concat(blocks.map((b) => b.buf.subarray(0, b.used)));
    assert.deepEqual(all, Buffer.concat(sizes.map((n, i) => Buffer.alloc(n, i + 1))));
    assert.equal(q.length, 0);
  });
});

describe('the hand-written chunks encoding', () => {
  it('decodes to the same record the generic encoder writes, with and without bytes, at every array length', () => {
    const cases: [string, 'request' | 'response', ChunkBatch][] = [
      ['mwz80nho-1bd48853c1d7', 'response', batch(0, 1, 3)],
      ['x', 'request', batch(0, 1, 70_000, false)],
      ['y', 'response', batch(0, 23, 5)],
      ['y', 'response', batch(0, 24, 5)],
      ['y', 'response', batch(0, 300, 1)],
      ['z'.repeat(30), 'response', batch(0, 2, 70_000)],
      ['é-ü', 'response', batch(0, 3, 10)],
    ];
    cases[0]![2].data![0] = Buffer.alloc(0);
    cases[0]![2].size[0] = 0;
    for (const [id, dir, b] of cases) {
      const bytes = encodeChunks(id, dir, b);
      assert.equal(itemEnd(bytes, 0), bytes.length);
      const back = decodeItem(bytes) as ChunksRecord;
      const want: ChunksRecord = { type: 'chunks', id, dir, at: b.at, wall: b.wall, size: b.size, data: b.data };
      const norm = (r: ChunksRecord) => ({ ...r, data: r.data && r.data.map((d) => Buffer.from(d)) });
      assert.deepEqual(norm(back), norm(want));
      assert.deepEqual(decodeItem(encodeRecord(want)), back);
    }
  });
});
