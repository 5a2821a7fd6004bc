// Writes CBOR items by hand into one reused buffer: the capture records, without a generic encoder's per-value dispatch and garbage.

/** Where items are written; `p` is the next free offset. Reused record after record. */
export interface Out {
  buf: Buffer;
  view: DataView;
  p: number;
  /** makes room for n more bytes at p (a bigger buffer, the bytes so far carried over) */
  grow(o: Out, n: number): void;
}

const TWO_32 = 0x1_0000_0000;
/** strings up to this long are copied char by char when ASCII; longer ones go through the native UTF-8 writer */
const SHORT_TEXT = 64;

/** A buffer of its own that doubles as needed. */
export function createOut(size = 1024): Out {
  const buf = Buffer.allocUnsafeSlow(size);
  return { buf, view: new DataView(buf.buffer, buf.byteOffset, buf.length), p: 0, grow: doubleOut };
}

function doubleOut(o: Out, n: number): void {
  const buf = Buffer.allocUnsafeSlow(Math.max(o.buf.length * 2, o.p + n));
  o.buf.copy(buf, 0, 0, o.p);
  o.buf = buf;
  o.view = new DataView(buf.buffer, buf.byteOffset, buf.length);
}

/** Room for n more bytes at o.p. */
export function room(o: Out, n: number): void {
  if (o.p + n > o.buf.length) o.grow(o, n);
}

/** Bytes of a head with argument n. */
export function headLength(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < TWO_32 ? 5 : 9;
}

/** A data item's head: major type and its argument (a length, a count or an unsigned integer up to 2^53). */
export function head(o: Out, major: number, n: number): void {
  room(o, headLength(n));
  const b = o.buf;
  const m = major << 5;
  let p = o.p;
  if (n < 24) b[p++] = m | n;
  else if (n < 0x100) {
    b[p++] = m | 24;
    b[p++] = n;
  } else if (n < 0x10000) {
    b[p++] = m | 25;
    o.view.setUint16(p, n);
    p += 2;
  } else if (n < TWO_32) {
    b[p++] = m | 26;
    o.view.setUint32(p, n);
    p += 4;
  } else {
    b[p++] = m | 27;
    o.view.setUint32(p, Math.floor(n / TWO_32));
    o.view.setUint32(p + 4, n % TWO_32);
    p += 8;
  }
  o.p = p;
}

/** Bytes already encoded (a constant key, a prefix): copied as they are. */
export function raw(o: Out, bytes: Uint8Array): void {
  room(o, bytes.length);
  if (bytes.length <= 32) {
    const b = o.buf;
    let p = o.p;
    for (let i = 0; i < bytes.length; i++) b[p++] = bytes[i]!;
    o.p = p;
  } else {
    o.buf.set(bytes, o.p);
    o.p += bytes.length;
  }
}

/** A text string (major type 3), UTF-8. */
export function text(o: Out, s: string): void {
  const n = s.length;
  if (n <= SHORT_TEXT) {
    // Most strings here are short ASCII (ids, names, header values): no native call, no byte count first.
    room(o, n + (n < 24 ? 1 : 2));
    const start = o.p;
    head(o, 3, n);
    const b = o.buf;
    let p = o.p;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) break;
      b[p++] = c;
    }
    if (i === n) {
      o.p = p;
      return;
    }
    o.p = start;
  }
  const bytes = Buffer.byteLength(s, 'utf8');
  head(o, 3, bytes);
  room(o, bytes);
  o.p += o.buf.write(s, o.p, bytes, 'utf8');
}

/** A byte string (major type 2). */
export function bytes(o: Out, data: Uint8Array): void {
  head(o, 2, data.length);
  raw(o, data);
}

/**
 * An integer below 2^32 as an integer; anything else (fractions, NaN, larger values such as epoch milliseconds)
 * as a 64-bit float, exact up to 2^53, which decoders read as a plain number (a 64-bit integer may come back as
 * a BigInt).
 */
export function num(o: Out, n: number): void {
  if (Number.isInteger(n) && n < TWO_32 && n > -TWO_32) {
    if (n >= 0) head(o, 0, n);
    else head(o, 1, -1 - n);
    return;
  }
  room(o, 9);
  o.buf[o.p] = 0xfb;
  o.view.setFloat64(o.p + 1, n);
  o.p += 9;
}

export function bool(o: Out, v: boolean): void {
  room(o, 1);
  o.buf[o.p++] = v ? 0xf5 : 0xf4;
}

export function nil(o: Out): void {
  room(o, 1);
  o.buf[o.p++] = 0xf6;
}

// For the fields of a record: the expected type fast, anything else (null, a field a caller left out) as plain data.
export function textField(o: Out, s: unknown): void {
  if (typeof s === 'string') text(o, s);
  else value(o, s);
}

export function numField(o: Out, n: unknown): void {
  if (typeof n === 'number') num(o, n);
  else value(o, n);
}

/**
 * Any plain data: null, booleans, numbers, strings, byte arrays, arrays and objects (text keys, own enumerable
 * properties; undefined values are left out, as JSON would). For the small nested parts of a record.
 */
export function value(o: Out, v: unknown, depth = 0): void {
  if (depth > 64) throw new Error('capture record nested too deep');
  if (v === null || v === undefined) return nil(o);
  switch (typeof v) {
    case 'string':
      return text(o, v);
    case 'number':
      return num(o, v);
    case 'boolean':
      return bool(o, v);
    case 'bigint':
      return num(o, Number(v));
    case 'object':
      break;
    default:
      return nil(o);
  }
  if (v instanceof Uint8Array) return bytes(o, v);
  if (Array.isArray(v)) {
    head(o, 4, v.length);
    for (const item of v) value(o, item, depth + 1);
    return;
  }
  const obj = v as Record<string, unknown>;
  let count = 0;
  for (const k in obj) if (obj[k] !== undefined) count++;
  head(o, 5, count);
  for (const k in obj) {
    const item = obj[k];
    if (item === undefined) continue;
    text(o, k);
    value(o, item, depth + 1);
  }
}

/** A text key, or a key and a constant text value, encoded once (e.g. `key('type', 'request')`). */
export function key(name: string, constant?: string): Buffer {
  const o = createOut(64);
  text(o, name);
  if (constant !== undefined) text(o, constant);
  return Buffer.from(o.buf.subarray(0, o.p));
}

/** A map head followed by constant bytes: the fixed start of a record. */
export function mapStart(pairs: number, ...parts: Buffer[]): Buffer {
  const o = createOut(256);
  head(o, 5, pairs);
  for (const part of parts) raw(o, part);
  return Buffer.from(o.buf.subarray(0, o.p));
}
