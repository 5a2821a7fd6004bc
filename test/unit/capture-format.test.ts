// Unit: the capture format — CBOR framing, reading files cut at any byte, refusing foreign or newer files, redaction, the queue.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Encoder } from 'cbor-x';
import { itemEnd, MalformedCbor } from '../../src/capture/cbor-scan.ts';
import { CaptureFormatError, decodeItem, encodeRecord, expandChunks, headerRecord, REDACTED, type ChunkRecord, type ChunksRecord, type EndRecord, type RequestRecord, type ResponseRecord } from '../../src/capture/format.ts';
import { createOut, room, type Out } from '../../src/capture/cbor-write.ts';
import { encodeChunks, newBatch, writeEnd, writeRequest, writeResponse, type ChunkBatch } from '../../src/capture/encode.ts';
import type { ExchangeStart } from '../../src/exchange/bus.ts';
import type { ExchangeRecord } from '../../src/exchange/record.ts';
import { createAssembler } from '../../src/capture/exchanges.ts';
import { readAllRecords, readCapture } from '../../src/capture/reader.ts';
import { CREDENTIAL_HEADERS, redactedNames, writeHeaders } from '../../src/capture/redact.ts';
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
  const b = newBatch(bodies, 1_700_000_000_000 - 0.125);
  for (let i = from; i < from + n; i++) {
    b.at.push(i + 0.125);
    b.size.push(size);
    b.data?.push(Buffer.alloc(size, i & 0xff));
  }
  return b;
};

/** The record a batch is written as: a chunk's wall-clock time is the batch's offset plus its monotonic one. */
const asRecord = (id: string, dir: 'request' | 'response', b: ChunkBatch): ChunksRecord => ({ type: 'chunks', id, dir, at: b.at, wall: b.at.map((a) => b.wallOffset + a), size: b.size, data: b.data });

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
    writeFileSync(v1, Buffer.concat([encodeRecord({ ...header(), version: '1.0' }), ...expandChunks(asRecord('x', 'response', batch(0, 5))).map(encodeRecord)]));
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
  it('replaces every credential header and the configured extras as it writes them, keeps the rest', () => {
    const o = createOut(16);
    writeHeaders(
      o,
      {
        Authorization: 'Bearer sk-1',
        'x-api-key': 'sk-ant-2',
        'api-key': 'azure-3',
        cookie: 'a=b',
        'set-cookie': ['c=d', 'e=f'],
        'proxy-authorization': 'Basic x',
        'x-custom-secret': 's3',
        'content-type': 'application/json',
        'x-many': ['1', '2'],
        'content-length': 42 as unknown as string,
      },
      new Set(redactedNames(['X-Custom-Secret'])),
    );
    const bytes = Buffer.from(o.buf.subarray(0, o.p));
    assert.equal(itemEnd(bytes, 0), bytes.length, 'one whole CBOR item');
    const out = decodeItem(bytes) as Record<string, unknown>;
    for (const name of [...CREDENTIAL_HEADERS, 'x-custom-secret']) assert.equal(out[name], REDACTED, name);
    assert.equal(out['content-type'], 'application/json');
    assert.deepEqual(out['x-many'], ['1', '2']);
    assert.equal(out['content-length'], '42');
    for (const secret of ['sk-1', 'sk-ant-2', 'azure-3', 'a=b', 'c=d', 'Basic x', 's3']) assert.equal(bytes.indexOf(secret), -1, `${secret} not in the bytes`);
  });

  it('writes lower-case names only, merging names that differ in case, every value as text', () => {
    const o = createOut(16);
    writeHeaders(o, { 'Content-Type': 'a', 'content-type': 'b', 'X-Api-Key': 'sk-9', n: 7 as unknown as string, gone: undefined as unknown as string }, new Set(CREDENTIAL_HEADERS));
    assert.deepEqual(decodeItem(o.buf.subarray(0, o.p)), { 'content-type': 'b', 'x-api-key': REDACTED, n: '7' });
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
      const want = asRecord(id, dir, b);
      const norm = (r: ChunksRecord) => ({ ...r, data: r.data && r.data.map((d) => Buffer.from(d)) });
      assert.deepEqual(norm(back), norm(want));
      assert.deepEqual(decodeItem(encodeRecord(want)), back);
    }
  });
});

describe('the hand-written request, response and end records', () => {
  const start: ExchangeStart = {
    id: 'mwz80nho-1bd48853c1d7',
    startedAt: '2025-01-31T12:00:00.634Z',
    method: 'POST',
    url: '/v1/chat/completions?x=' + 'é'.repeat(40) + 'y'.repeat(300),
    dialect: 'openai',
    upstream: { name: 'openai', url: 'http://127.0.0.1:1' },
    model: 'gpt-4o-ü',
    stream: true,
    operation: null,
    requestHeaders: { 'content-type': 'application/json', authorization: 'Bearer sk-1', 'x-many': ['a', 'b'], 'x-long': 'v'.repeat(70_000) },
    requestBody: Buffer.from('{"model":"gpt-4o"}'),
  };
  const record = {
    id: start.id, startedAt: start.startedAt, method: 'POST', url: start.url, dialect: 'openai', upstream: start.upstream, operation: 'chat', model: 'm', responseModel: null, responseId: 'r-1',
    stream: false, params: {}, status: 200, outcome: 'ok', errorType: null, errorMessage: 'naïve ' + '\u{1F600}', finishReasons: ['stop', 'length'], streamComplete: true,
    timings: { ttfb: 1.25, ttft: null, duration: 2 ** 40, timePerOutputToken: -3, overhead: 0.1 + 0.2 },
    usage: { input: 9, output: 0, total: 9, cacheRead: null, cacheWrite: 70_000, reasoning: null, source: 'reported' },
    bytes: { requestIn: 18, requestOut: 18, responseIn: 4_294_967_296, responseOut: 65_536 }, traceId: null, usageInjected: false, notes: [],
  } as const satisfies ExchangeRecord;
  const encoded = (write: (o: Out) => void): Buffer => {
    const o = createOut(8);
    write(o);
    const bytes = Buffer.from(o.buf.subarray(0, o.p));
    assert.equal(itemEnd(bytes, 0), bytes.length, 'one whole CBOR item');
    return bytes;
  };
  const redacted = new Set(CREDENTIAL_HEADERS);

  it('decode to the records the generic encoder writes, credentials replaced', () => {
    const headers = { 'content-type': 'application/json', authorization: REDACTED, 'x-many': ['a', 'b'], 'x-long': 'v'.repeat(70_000) };
    for (const bodies of [true, false]) {
      const want: RequestRecord = { type: 'request', ...omit(start, 'requestHeaders', 'requestBody', 'startedAt'), time: start.startedAt, wall: 1_738_324_800_640.5, headers, body: bodies ? start.requestBody : null, bodySize: 18 };
      const bytes = encoded((o) => writeRequest(o, start, want.wall, bodies, redacted));
      assert.deepEqual(norm(decodeItem(bytes)), norm(decodeItem(encodeRecord(want))));
      assert.equal(bytes.indexOf('sk-1'), -1);
    }
    const response: ResponseRecord = { type: 'response', id: start.id, at: 4.53, wall: 1_738_324_800_644, status: 200, headers: { 'set-cookie': REDACTED, 'content-type': 'text/event-stream' } };
    const head = encoded((o) => writeResponse(o, start.id, 4.53, response.wall, 200, { 'set-cookie': ['a=b', 'c=d'], 'content-type': 'text/event-stream' }, redacted));
    assert.deepEqual(decodeItem(head), decodeItem(encodeRecord(response)));
    const { params: _p, notes: _n, startedAt, ...rest } = record;
    const end: EndRecord = { type: 'end', ...rest, time: startedAt, wall: 1_738_324_800_646, dropped: 3 } as EndRecord;
    assert.deepEqual(decodeItem(encoded((o) => writeEnd(o, record, end.wall, 3))), decodeItem(encodeRecord(end)));
  });

  it('decode right record after record while the parts they share with the last one change one field at a time', () => {
    // The shared parts (method, path, upstream, model, outcome..., headers) are copied from the last record while
    // they repeat: each change below must be written afresh, and a change back must not bring stale bytes.
    const { params: _p, notes: _n, ...base } = record;
    const ends: Array<Partial<ExchangeRecord>> = [
      {}, {}, { method: 'PUT' }, { url: '/v1/other' }, { dialect: 'anthropic' }, { upstream: { name: 'b', url: 'http://127.0.0.1:2' } }, { upstream: { name: 'b', url: 'http://127.0.0.1:3' } },
      { operation: null }, { model: 'm2' }, { responseModel: 'rm' }, { stream: true }, { status: 429 }, { outcome: 'client_aborted' }, { errorType: 'E' }, { errorMessage: null },
      { finishReasons: ['stop'] }, { finishReasons: ['length', 'stop'] }, { finishReasons: [] }, { streamComplete: false }, { usageInjected: true }, { responseId: 'r-2' }, {}, {},
    ];
    const mutable = ['stop'];
    ends.push({ finishReasons: mutable }, {});
    for (const [i, over] of ends.entries()) {
      if (i === ends.length - 1) mutable[0] = 'length';
      const r = { ...base, ...over, ...(i === ends.length - 1 ? { finishReasons: mutable } : {}) } as unknown as ExchangeRecord;
      const { startedAt, ...rest } = r as ExchangeRecord & { params?: unknown; notes?: unknown };
      const want = { type: 'end', ...omit(rest as never, 'params' as never, 'notes' as never), time: startedAt, wall: 1000 + i, dropped: i } as unknown as EndRecord;
      assert.deepEqual(decodeItem(encoded((o) => writeEnd(o, r, 1000 + i, i))), decodeItem(encodeRecord(want)), `end record ${i}: ${JSON.stringify(over)}`);
    }
    const starts: Array<Partial<ExchangeStart>> = [{}, {}, { model: 'x' }, { stream: false }, { operation: 'chat' }, { url: '/u' }, { url: '/u', upstream: { name: 'openai', url: 'http://127.0.0.1:9' } }, { requestHeaders: { a: '1' } }, { requestHeaders: { a: '2' } }, { requestHeaders: { b: '2' } },
      { requestHeaders: { a: '1', b: '2' } }, { requestHeaders: { b: '2', a: '1' } }, { requestHeaders: { a: ['1', '2'] } }, { requestHeaders: { a: ['1', '3'] } }, { requestHeaders: { authorization: 'sk-2' } }, {}];
    for (const [i, over] of starts.entries()) {
      const s = { ...start, ...over } as ExchangeStart;
      const headers = Object.fromEntries(Object.entries(s.requestHeaders).map(([k, v]) => [k, k === 'authorization' ? REDACTED : v]));
      const want: RequestRecord = { type: 'request', ...omit(s, 'requestHeaders', 'requestBody', 'startedAt'), time: s.startedAt, wall: i, headers, body: s.requestBody, bodySize: 18 };
      const bytes = encoded((o) => writeRequest(o, s, i, true, redacted));
      assert.deepEqual(norm(decodeItem(bytes)), norm(decodeItem(encodeRecord(want))), `request record ${i}: ${JSON.stringify(over).slice(0, 80)}`);
      assert.equal(bytes.indexOf('sk-'), -1);
    }
    // An array of objects (outside the types) is never kept: one changed in place is written as it is now.
    const item = { reason: 'stop' };
    const odd = { ...base, finishReasons: [item] } as unknown as ExchangeRecord;
    writeEnd(createOut(64), odd, 1, 0);
    item.reason = 'length';
    const back = decodeItem(encoded((o) => writeEnd(o, odd, 1, 0))) as { finishReasons: unknown };
    assert.deepEqual(back.finishReasons, [{ reason: 'length' }]);
    // The same headers under another redaction list are written afresh.
    const h = { 'x-secret': 's3cret', 'content-type': 'text/plain' };
    const plain = decodeItem(encoded((o) => writeResponse(o, 'r', 1, 2, 200, h, redacted))) as ResponseRecord;
    const hidden = decodeItem(encoded((o) => writeResponse(o, 'r', 1, 2, 200, h, new Set([...CREDENTIAL_HEADERS, 'x-secret'])))) as ResponseRecord;
    assert.deepEqual([plain.headers['x-secret'], hidden.headers['x-secret']], ['s3cret', REDACTED]);
  });

  it('writes a record with missing fields as nulls instead of failing', () => {
    const back = decodeItem(encoded((o) => writeEnd(o, { id: 'x', timings: {}, usage: {}, bytes: {}, finishReasons: [] } as never, 1, 0))) as Record<string, unknown>;
    assert.equal(back.type, 'end');
    assert.equal(back.outcome, null);
    assert.deepEqual(back.timings, { ttfb: null, ttft: null, duration: null, timePerOutputToken: null, overhead: null });
  });
});

describe('records encoded in place in the queue', () => {
  it('moves a record that outgrows its block to a new one, whole; a huge record gets a block of its own; past the bound it is dropped', () => {
    const q = createRecordQueue(10_000, () => {}, 100);
    const put = (fill: number, n: number): boolean => {
      const o = q.begin();
      o.buf.fill(0xee, o.p); // what an abandoned record would leave behind must never be queued
      for (let i = 0; i < n; i++) {
        room(o, 1);
        o.buf[o.p++] = fill;
      }
      return q.commit();
    };
    assert.ok(put(1, 60));
    assert.ok(put(2, 60), 'does not fit after the first: moves to a second block');
    assert.ok(put(3, 30));
    assert.ok(put(4, 250), 'larger than a block');
    assert.ok(q.push(Buffer.alloc(10, 5)));
    q.begin(); // begun and never committed: nothing queued
    assert.equal(q.length, 5);
    const blocks = q.take();
    const all = Buffer.concat(blocks.map((b) => b.buf.subarray(0, b.used)));
    assert.deepEqual(all, Buffer.concat([Buffer.alloc(60, 1), Buffer.alloc(60, 2), Buffer.alloc(30, 3), Buffer.alloc(250, 4), Buffer.alloc(10, 5)]));
    for (const b of blocks) assert.equal(b.ends.at(-1), b.used, 'every block ends with a whole record');
    assert.ok(!put(6, 9_700), 'past the bound: dropped');
    assert.equal(q.dropped, 1);
    assert.equal(q.take().length, 0);
  });
});

function omit<T extends object, K extends keyof T>(o: T, ...keys: K[]): Omit<T, K> {
  const out = { ...o };
  for (const k of keys) delete out[k];
  return out;
}

/** Byte strings as Buffers, so records decoded from either encoder compare equal. */
function norm(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v);
  if (Array.isArray(v)) return v.map(norm);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
  return v;
}
