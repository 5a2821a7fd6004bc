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

  close(start: number): void {
    const len = this.pos - start;
    if (len < 128) {
      this.buf[start - 1] = len;
      return;
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
    b[this.pos++] = n;
    for (let i = 0; i < n; i++) b[this.pos++] = (HEX[hex.charCodeAt(2 * i)]! << 4) | HEX[hex.charCodeAt(2 * i + 1)]!;
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

/**
 * Encoded KeyValue bodies (key and value) of string and boolean attributes, per key and value. Consecutive
 * exchanges repeat most of them (provider, server, upstream, model, outcome...): copying ~30 bytes is cheaper
 * than encoding them again. A key that keeps bringing new values (ids) fills its slots and is then left alone.
 */
const KV_CACHE = new Map<string, Map<string | boolean, Uint8Array> | null>();
const KV_VALUES_PER_KEY = 32;
const KV_KEYS_MAX = 256;
const KV_VALUE_MAX_LENGTH = 120;

function cachedKeyValue(key: string, v: string | boolean): Uint8Array | null {
  let values = KV_CACHE.get(key);
  if (values === null) return null;
  if (values === undefined) {
    if (KV_CACHE.size >= KV_KEYS_MAX) return null;
    values = new Map();
    KV_CACHE.set(key, values);
  }
  const hit = values.get(v);
  if (hit) return hit;
  if (typeof v === 'string' && v.length > KV_VALUE_MAX_LENGTH) return null;
  if (values.size >= KV_VALUES_PER_KEY) {
    KV_CACHE.set(key, null);
    return null;
  }
  const kw = new Writer(key.length * 3 + (typeof v === 'string' ? v.length * 3 : 1) + 16);
  kw.raw(keyField(key));
  anyValue(kw, 2, v);
  const bytes = kw.take();
  values.set(v, bytes);
  return bytes;
}

function attributes(w: Writer, field: number, attrs: SpanAttrs): void {
  for (let i = 0; i < attrs.length; i += 2) {
    const v = attrs[i + 1];
    if (v === undefined || v === null) continue;
    const key = attrs[i] as string;
    if (typeof v === 'string' || typeof v === 'boolean') {
      const kvBytes = cachedKeyValue(key, v);
      if (kvBytes) {
        w.tag(field, 2);
        w.varint(kvBytes.length);
        w.raw(kvBytes);
        continue;
      }
    }
    const kv = w.open(field);
    w.raw(keyField(key));
    anyValue(w, 2, v);
    w.close(kv);
  }
}

function span(w: Writer, s: SpanData): void {
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
  attributes(w, 9, s.attributes);
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
  w.close(start);
}

/**
 * Spans encoded as they come, into one batch: a queue of bytes instead of span objects, so finished spans die young
 * and the garbage collector never copies or promotes them while they wait for their batch.
 */
export interface SpanBatchEncoder {
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

  return {
    append(s) {
      const at = w.pos;
      try {
        span(w, s);
      } catch (err) {
        w.pos = at;
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
