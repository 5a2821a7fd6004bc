// Record parts that repeat from one exchange to the next (method, path, upstream, model, outcome, headers), kept as last written and copied while their values do.
import { createOut, raw, type Out } from './cbor-write.ts';

/**
 * One part of a record as last written: the values it was written from and its bytes. Consecutive exchanges mostly
 * share these, and comparing a dozen values then copying the bytes costs a fraction of encoding them again. Values
 * are compared one by one (arrays item by item), so any difference is written afresh.
 */
export interface KeptPart {
  values: unknown[] | null;
  bytes: Buffer | null;
}

export function keptPart(): KeptPart {
  return { values: null, bytes: null };
}

/** Parts are written here first, then copied into the record and kept. */
const scratch = createOut(1024);

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** An array kept among the values is copied, and compared item by item: only arrays of plain values are kept. */
function keepable(v: unknown): boolean {
  if (!Array.isArray(v)) return true;
  for (const item of v) if (item !== null && typeof item === 'object') return false;
  return true;
}

/**
 * Writes the part `write(o, values, x)` would, whose bytes depend only on `values`: copied from `kept` when they
 * equal the values it was last written from, else written and kept. Arrays among the values are copied when kept, so
 * a caller changing one later cannot make stale bytes look current; other objects are compared as themselves, and
 * must not change.
 */
export function writeKept<T>(o: Out, kept: KeptPart, values: unknown[], write: (o: Out, values: unknown[], x: T) => void, x: T): void {
  const last = kept.values;
  if (last !== null && kept.bytes !== null && last.length === values.length) {
    let i = 0;
    while (i < values.length && same(last[i], values[i])) i++;
    if (i === values.length) return raw(o, kept.bytes);
  }
  if (!values.every(keepable)) {
    // Nothing to keep: written straight into the record.
    kept.values = null;
    kept.bytes = null;
    return write(o, values, x);
  }
  scratch.p = 0;
  write(scratch, values, x);
  const bytes = Buffer.allocUnsafe(scratch.p);
  scratch.buf.copy(bytes, 0, 0, scratch.p);
  kept.values = values.map((v) => (Array.isArray(v) ? [...(v as unknown[])] : v));
  kept.bytes = bytes;
  raw(o, bytes);
}
