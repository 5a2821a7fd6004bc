// Unit: the capture format — CBOR framing, reading files cut at any byte, refusing foreign or newer files, redaction, the queue.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Encoder } from 'cbor-x';
import { itemEnd, MalformedCbor } from '../../src/capture/cbor-scan.ts';
import { CaptureFormatError, encodeRecord, headerRecord, REDACTED, type CaptureRecord, type ChunkRecord } from '../../src/capture/format.ts';
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
    const records: CaptureRecord[] = [header(), ...Array.from({ length: 5 }, (_, i) => chunk(i))];
    const parts = records.map(encodeRecord);
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
        assert.equal(got.length, records.length);
        assert.equal(cuts.length, 0);
      } else {
        assert.equal(got.length, records.length - 1, `cut at ${cut}: all earlier records`);
        assert.deepEqual(cuts, cut === lastStart ? [] : [{ kind: 'cut', file, offset: lastStart, bytes: cut - lastStart }], `cut at ${cut}`);
      }
      const firstChunks = got.slice(1) as ChunkRecord[];
      firstChunks.forEach((c, i) => {
        assert.equal(c.at, i);
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
      ['newer.cbor', encodeRecord({ ...header(), version: '2.0' }), /format 2\.0, written by a newer llmtap; this reader reads format 1\.x/],
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

describe('the hand-written chunk encoding', () => {
  it('decodes to the same record the generic encoder writes, with and without bytes', async () => {
    const { encodeChunk, decodeItem } = await import('../../src/capture/format.ts');
    const cases: ChunkRecord[] = [
      { type: 'chunk', id: 'mwz80nho-1bd48853c1d7', dir: 'response', at: 12.345678, wall: 1_764_000_000_123, size: 3, data: Buffer.from('abc') },
      { type: 'chunk', id: 'x', dir: 'request', at: 0, wall: 0, size: 70_000, data: null },
      { type: 'chunk', id: 'é-ü', dir: 'response', at: 1e-9, wall: 1.5, size: 70_000, data: Buffer.alloc(70_000, 7) },
    ];
    for (const c of cases) {
      const bytes = encodeChunk(c.id, c.dir, c.at, c.wall, c.size, c.data);
      assert.equal(itemEnd(bytes, 0), bytes.length);
      const back = decodeItem(bytes) as ChunkRecord;
      assert.deepEqual({ ...back, data: back.data && Buffer.from(back.data) }, { ...c, data: c.data && Buffer.from(c.data) });
      assert.deepEqual(decodeItem(encodeRecord(c)), back);
    }
  });
});
