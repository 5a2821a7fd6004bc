// OTLP trace export bodies written by hand (ExportTraceServiceRequest as protobuf or OTLP/JSON): a few µs per span.
import { epochOf, nanosString, type AttrValue, type SpanAttrs, type SpanData } from './span-data.ts';

export type ResourceAttrs = Record<string, AttrValue | undefined>;

export interface EncodeContext {
  resource: ResourceAttrs;
  scope: { name: string; version: string };
}

/** Hex digit values by char code (lower and upper case). */
const HEX = new Uint8Array(128);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) HEX[97 + i] = HEX[65 + i] = 10 + i;

/** A growable byte buffer with protobuf's wire primitives; length-delimited fields get their length patched in after. */
class Writer {
  buf: Buffer;
  pos = 0;

  constructor(size = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(size);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  varint(v: number): void {
    this.ensure(10);
    const b = this.buf;
    if (v < 0x80) {
      b[this.pos++] = v;
      return;
    }
    while (v > 0x7f) {
      b[this.pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    b[this.pos++] = v;
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  /** Opens a length-delimited field; returns where its content starts (one length byte reserved). */
  open(field: number): number {
    this.tag(field, 2);
    this.ensure(1);
    this.pos++;
    return this.pos;
  }

  /** Writes the field's length; returns by how many bytes its content moved to make room for a longer one. */
  close(start: number): number {
    const len = this.pos - start;
    if (len < 128) {
      this.buf[start - 1] = len;
      return 0;
    }
    const extra = varintSize(len) - 1;
    this.ensure(extra);
    this.buf.copyWithin(start + extra, start, this.pos);
    this.pos += extra;
    let p = start - 1;
    let v = len;
    while (v > 0x7f) {
      this.buf[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[p] = v;
    return extra;
  }

  string(field: number, s: string): void {
    const n = s.length;
    this.tag(field, 2);
    // Short ASCII strings (keys, ids, names) byte by byte: cheaper than a call into C++ per string.
    if (n < 128) {
      this.ensure(n + 1);
      const b = this.buf;
      const at = this.pos + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        b[at + i] = c;
      }
      if (i === n) {
        b[this.pos] = n;
        this.pos = at + n;
        return;
      }
    }
    this.ensure(1);
    const start = ++this.pos;
    this.ensure(n * 3);
    this.pos += this.buf.utf8Write(s, this.pos);
    this.close(start);
  }

  /** Bytes encoded once (a field with its tag), copied in. */
  raw(bytes: Uint8Array): void {
    const n = bytes.length;
    this.ensure(n);
    const b = this.buf;
    const at = this.pos;
    if (n < 64) for (let i = 0; i < n; i++) b[at + i] = bytes[i]!;
    else b.set(bytes, at);
    this.pos = at + n;
  }

  hexBytes(field: number, hex: string): void {
    this.tag(field, 2);
    const n = hex.length >>> 1;
    this.ensure(n + 1);
    const b = this.buf;
    let p = this.pos;
    b[p++] = n;
    for (let i = 0; i < 2 * n; i += 2) b[p++] = (HEX[hex.charCodeAt(i)]! << 4) | HEX[hex.charCodeAt(i + 1)]!;
    this.pos = p;
  }

  /** fixed64 epoch nanos from a performance.now() reading, exact (no BigInt). */
  nanos(field: number, perfMs: number): void {
    const [s, ns] = epochOf(perfMs);
    // s·1e9 + ns split into 32-bit halves: s = sHi·2^16 + sLo keeps every product below 2^53.
    const sHi = Math.floor(s / 65536);
    const sLo = s - sHi * 65536;
    const a = sLo * 1e9 + ns;
    const b = sHi * 1e9;
    const bHi = Math.floor(b / 65536);
    const t = (b - bHi * 65536) * 65536 + a;
    const tHi = Math.floor(t / 0x100000000);
    this.tag(field, 1);
    this.ensure(8);
    this.buf.writeUInt32LE(t - tHi * 0x100000000, this.pos);
    this.buf.writeUInt32LE(bHi + tHi, this.pos + 4);
    this.pos += 8;
  }

  double(field: number, v: number): void {
    this.tag(field, 1);
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  /** A copy of what was written (one memcpy: Buffer.from(subarray) copies byte by byte). */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    return out;
  }
}

// Declared on Buffer at runtime (Node's fast paths); typed here since @types/node hides them.
declare global {
  interface Buffer {
    utf8Write(s: string, offset: number): number;
  }
}

function anyValue(w: Writer, field: number, v: AttrValue | null | undefined): void {
  const start = w.open(field);
  if (v === null || v === undefined) {
    // an array's missing item: an empty AnyValue
  } else if (typeof v === 'string') w.string(1, v);
  else if (typeof v === 'boolean') {
    w.tag(2, 0);
    w.varint(v ? 1 : 0);
  } else if (typeof v === 'number') {
    if (Number.isInteger(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER) {
      w.tag(3, 0);
      w.varint(v);
    } else if (Number.isInteger(v) && v < 0 && v >= -Number.MAX_SAFE_INTEGER) {
      // int64 negatives are ten-byte two's complement varints
      w.tag(3, 0);
      w.ensure(10);
      let lo = Number(BigInt.asUintN(64, BigInt(v)) & 0xffffffffn);
      let hi = Number(BigInt.asUintN(64, BigInt(v)) >> 32n);
      for (let i = 0; i < 9; i++) {
        w.buf[w.pos++] = (lo & 0x7f) | 0x80;
        lo = (lo >>> 7) | ((hi & 0x7f) << 25);
        hi >>>= 7;
      }
      w.buf[w.pos++] = lo & 0x01;
    } else w.double(4, v);
  } else {
    const arr = w.open(5);
    for (const item of v) anyValue(w, 1, item);
    w.close(arr);
  }
  w.close(start);
}

// A KeyValue's key field (tag, length, bytes) per attribute name: names come from a small fixed set.
const KEYS = new Map<string, Uint8Array>();
const KEYS_MAX = 1024;

function keyField(key: string): Uint8Array {
  let k = KEYS.get(key);
  if (k) return k;
  const kw = new Writer(key.length * 3 + 8);
  kw.string(1, key);
  k = kw.take();
  if (KEYS.size < KEYS_MAX) KEYS.set(key, k);
  return k;
}

function attributes(w: Writer, field: number, attrs: SpanAttrs): void {
  for (let i = 0; i < attrs.length; i += 2) attribute(w, field, attrs[i] as string, attrs[i + 1]);
}

function attribute(w: Writer, field: number, key: string, v: AttrValue | null | undefined): void {
  if (v === undefined || v === null) return;
  const kv = w.open(field);
  w.raw(keyField(key));
  anyValue(w, 2, v);
  w.close(kv);
}

/**
 * The attributes of the last span of one kind: where their bytes lie in the batch buffer, and where each pair's
 * field ends. Spans of one kind list the same keys in the same order, and consecutive exchanges repeat most values
 * (provider, server, upstream, model, status, outcome...): a run of pairs equal to the last span's is copied from
 * its bytes, which is far cheaper than encoding them again.
 */
interface LastAttrs {
  attrs: SpanAttrs | null;
  /** offset of the first attribute field in the batch buffer */
  start: number;
  /** the batch they were written in: once taken, the bytes are gone */
  batch: number;
  /** ends[j]: bytes from start to the end of pair j's field (a pair with no value has none) */
  ends: Int32Array;
  /** the ends of the list being written, swapped in after */
  next: Int32Array;
}

function newLastAttrs(): LastAttrs {
  return { attrs: null, start: 0, batch: -1, ends: new Int32Array(64), next: new Int32Array(64) };
}

function sameValue(a: SpanAttrs[number], b: SpanAttrs[number]): boolean {
  if (a === b) return true;
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The attribute fields of `attrs`, copying every run of pairs equal to the last list's from its bytes. */
function attributesAfter(w: Writer, field: number, attrs: SpanAttrs, last: LastAttrs, batch: number): void {
  const n = attrs.length >> 1;
  if (last.next.length < n) last.next = new Int32Array(2 * n);
  const ends = last.next;
  // The same array again may have been changed since: nothing is taken from it.
  const prev = last.batch === batch && last.attrs !== attrs ? last.attrs : null;
  const prevN = prev ? prev.length >> 1 : 0;
  const prevEnds = last.ends;
  const start = w.pos;
  let run = -1;
  for (let j = 0; j <= n; j++) {
    if (j < n && j < prevN && attrs[2 * j] === prev![2 * j] && sameValue(attrs[2 * j + 1], prev![2 * j + 1])) {
      if (run < 0) run = j;
      continue;
    }
    if (run >= 0) {
      // Pairs run..j-1 are the last list's: their bytes are copied (never overlapping: they lie before w.pos).
      const from = last.start + (run > 0 ? prevEnds[run - 1]! : 0);
      const len = last.start + prevEnds[j - 1]! - from;
      w.ensure(len);
      const b = w.buf;
      const at = w.pos;
      if (len < 64) for (let k = 0; k < len; k++) b[at + k] = b[from + k]!;
      else b.copyWithin(at, from, from + len);
      const shift = at - start - (from - last.start);
      for (let k = run; k < j; k++) ends[k] = prevEnds[k]! + shift;
      w.pos = at + len;
      run = -1;
    }
    if (j < n) {
      attribute(w, field, attrs[2 * j] as string, attrs[2 * j + 1]);
      ends[j] = w.pos - start;
    }
  }
  last.next = prevEnds;
  last.ends = ends;
  last.attrs = attrs;
  last.start = start;
  last.batch = batch;
}

/** Per batch encoder: the last span's attributes by span kind, and which batch is being written. */
interface SpanContext {
  byKind: LastAttrs[];
  batch: number;
}

function span(w: Writer, s: SpanData, c: SpanContext): void {
  const start = w.open(2);
  w.hexBytes(1, s.traceId);
  w.hexBytes(2, s.spanId);
  if (s.traceState) w.string(3, s.traceState);
  if (s.parentSpanId) w.hexBytes(4, s.parentSpanId);
  w.string(5, s.name);
  w.tag(6, 0);
  w.varint(s.kind + 1);
  w.nanos(7, s.start);
  w.nanos(8, s.end);
  const last = (c.byKind[s.kind] ??= newLastAttrs());
  attributesAfter(w, 9, s.attributes, last, c.batch);
  for (const e of s.events) {
    const ev = w.open(11);
    w.nanos(1, e.at);
    w.string(2, e.name);
    attributes(w, 3, e.attributes);
    w.close(ev);
  }
  if (s.statusCode !== 0 || s.statusMessage) {
    const st = w.open(15);
    if (s.statusMessage) w.string(2, s.statusMessage);
    if (s.statusCode !== 0) {
      w.tag(3, 0);
      w.varint(s.statusCode);
    }
    w.close(st);
  }
  // flags: sampled, and whether the parent is known to be remote (bit 8 says "known", bit 9 "remote")
  w.tag(16, 5);
  w.ensure(4);
  w.buf.writeUInt32LE(0x101 | (s.parentRemote ? 0x200 : 0), w.pos);
  w.pos += 4;
  // A span longer than 127 bytes moves to make room for its length: its attributes with it.
  last.start += w.close(start);
}

/**
 * Spans encoded as they come, into one batch: a queue of bytes instead of span objects, so finished spans die young
 * and the garbage collector never copies or promotes them while they wait for their batch.
 */
export interface SpanBatchEncoder {
  /** a finished span: neither it nor its attribute list may change after (a later span's attributes may be copied from its bytes) */
  append(span: SpanData): void;
  /** the ExportTraceServiceRequest of every span appended since the last take, and a fresh batch */
  take(): Buffer;
  /** a body from take() is sent and no longer read: its memory may hold a later batch */
  release?(body: Buffer): void;
}

function varintSize(v: number): number {
  let n = 1;
  while (v > 0x7f) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** Released batch buffers kept for the next batches: at most this many, and only ones this size or larger. */
const SPARE_BUFFERS = 2;
const BATCH_BUFFER_SIZE = 64 * 1024;

/**
 * The protobuf batch encoder for one resource and scope: their bytes are written once, then each span costs only
 * itself. Spans are written after a gap at the front of the batch's buffer, and take() writes the envelope (whose
 * lengths are known only then) into that gap: the batch goes out without being copied. Its buffer comes back by
 * release() once sent, so a steady flow of batches reuses two or three buffers instead of allocating (and
 * page-faulting) a fresh quarter-megabyte per batch.
 */
export function createProtobufBatchEncoder(ctx: EncodeContext): SpanBatchEncoder {
  const head = new Writer();
  const res = head.open(1);
  attributes(head, 1, Object.entries(ctx.resource).flat());
  head.close(res);
  const resourceBytes = head.take();
  head.pos = 0;
  const sc = head.open(1);
  head.string(1, ctx.scope.name);
  head.string(2, ctx.scope.version);
  head.close(sc);
  const scopeBytes = head.take();
  // Room for the envelope: two tags, two lengths of at most five varint bytes, the resource and the scope.
  const gap = 2 + 5 + resourceBytes.length + 5 + scopeBytes.length;
  const spare: Buffer[] = [];
  /** buffers handed out by take() and not yet released, so a stray or repeated release is ignored */
  const lent = new WeakSet<ArrayBufferLike>();
  const w = new Writer(BATCH_BUFFER_SIZE);
  w.pos = gap;
  const c: SpanContext = { byKind: [], batch: 0 };

  return {
    append(s) {
      const at = w.pos;
      try {
        span(w, s, c);
      } catch (err) {
        // What the failed span wrote is given back: no later span may copy from it.
        w.pos = at;
        c.batch++;
        throw err;
      }
    },
    take() {
      const spansLen = w.pos - gap;
      const scopeSpansLen = scopeBytes.length + spansLen;
      const resourceSpansLen = resourceBytes.length + 1 + varintSize(scopeSpansLen) + scopeSpansLen;
      const envelopeLen = 1 + varintSize(resourceSpansLen) + resourceBytes.length + 1 + varintSize(scopeSpansLen) + scopeBytes.length;
      const end = w.pos;
      const start = gap - envelopeLen;
      w.pos = start;
      w.tag(1, 2);
      w.varint(resourceSpansLen);
      w.raw(resourceBytes);
      w.tag(2, 2);
      w.varint(scopeSpansLen);
      w.raw(scopeBytes);
      const body = w.buf.subarray(start, end);
      lent.add(body.buffer);
      const next = spare.pop();
      w.buf = next ?? Buffer.allocUnsafe(Math.max(BATCH_BUFFER_SIZE, w.buf.length));
      w.pos = gap;
      c.batch++;
      return body;
    },
    release(body) {
      if (!lent.delete(body.buffer)) return;
      const whole = Buffer.from(body.buffer, 0, body.buffer.byteLength);
      if (spare.length < SPARE_BUFFERS && whole.length >= BATCH_BUFFER_SIZE) spare.push(whole);
    },
  };
}

type JsonAny = Record<string, never> | { stringValue: string } | { boolValue: boolean } | { intValue: string } | { doubleValue: number } | { arrayValue: { values: JsonAny[] } };

function jsonValue(v: AttrValue | null | undefined): JsonAny {
  if (v === null || v === undefined) return {};
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v };
  return { arrayValue: { values: v.map(jsonValue) } };
}

function jsonAttrs(attrs: SpanAttrs): Array<{ key: string; value: JsonAny }> {
  const out: Array<{ key: string; value: JsonAny }> = [];
  for (let i = 0; i < attrs.length; i += 2) {
    const v = attrs[i + 1];
    if (v !== undefined && v !== null) out.push({ key: attrs[i] as string, value: jsonValue(v) });
  }
  return out;
}

/** OTLP/JSON in batches: the spans wait as objects and are encoded together at take(). */
export function createJsonBatchEncoder(ctx: EncodeContext): SpanBatchEncoder {
  const encode = createJsonEncoder(ctx);
  let spans: SpanData[] = [];
  return {
    append(s) {
      spans.push(s);
    },
    take() {
      const batch = spans;
      spans = [];
      return encode(batch);
    },
  };
}

/** The OTLP/JSON encoder: hex ids, int64 as strings, camelCase fields, enums as numbers. */
function createJsonEncoder(ctx: EncodeContext): (spans: readonly SpanData[]) => Buffer {
  const resource = { attributes: jsonAttrs(Object.entries(ctx.resource).flat()) };
  const scope = { name: ctx.scope.name, version: ctx.scope.version };
  return (spans) => {
    const out = spans.map((s) => ({
      traceId: s.traceId,
      spanId: s.spanId,
      ...(s.traceState ? { traceState: s.traceState } : {}),
      ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
      name: s.name,
      kind: s.kind + 1,
      startTimeUnixNano: nanosString(s.start),
      endTimeUnixNano: nanosString(s.end),
      attributes: jsonAttrs(s.attributes),
      events: s.events.map((e) => ({ timeUnixNano: nanosString(e.at), name: e.name, attributes: jsonAttrs(e.attributes) })),
      status: s.statusCode !== 0 || s.statusMessage ? { code: s.statusCode, ...(s.statusMessage ? { message: s.statusMessage } : {}) } : {},
      flags: 0x101 | (s.parentRemote ? 0x200 : 0),
    }));
    return Buffer.from(JSON.stringify({ resourceSpans: [{ resource, scopeSpans: [{ scope, spans: out }] }] }));
  };
}
