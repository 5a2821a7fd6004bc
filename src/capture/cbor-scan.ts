// Finds where one CBOR data item ends without decoding it, so a reader can tell a whole record from a cut one.

/** A byte sequence that is not well-formed CBOR (as opposed to one that is merely cut short). */
export class MalformedCbor extends Error {}

const MAX_DEPTH = 512;

/**
 * The offset just past the data item starting at `pos`, or -1 when the bytes end inside it.
 * Walks heads only (RFC 8949 §3): definite and indefinite lengths, tags, simple values and floats.
 */
export function itemEnd(b: Uint8Array, pos: number, end: number = b.length): number {
  let need = 1;
  const stack: number[] = [];
  for (;;) {
    while (need === 0) {
      if (stack.length === 0) return pos;
      need = stack.pop()!;
    }
    if (pos >= end) return -1;
    const ib = b[pos]!;
    if (ib === 0xff) {
      if (need !== Infinity) throw new MalformedCbor(`unexpected break byte at offset ${pos}`);
      pos++;
      need = stack.pop()!;
      continue;
    }
    pos++;
    if (need !== Infinity) need--;
    const major = ib >> 5;
    const ai = ib & 31;
    let arg: number;
    if (ai < 24) arg = ai;
    else if (ai <= 27) {
      const n = 1 << (ai - 24);
      if (pos + n > end) return -1;
      arg = 0;
      for (let i = 0; i < n; i++) arg = arg * 256 + b[pos + i]!;
      if (!Number.isSafeInteger(arg) && major !== 7) throw new MalformedCbor(`length too large at offset ${pos - 1}`);
      pos += n;
    } else if (ai === 31 && major >= 2 && major <= 5) {
      if (stack.length >= MAX_DEPTH) throw new MalformedCbor(`nesting deeper than ${MAX_DEPTH} at offset ${pos - 1}`);
      stack.push(need);
      need = Infinity;
      continue;
    } else {
      throw new MalformedCbor(`invalid initial byte 0x${ib.toString(16)} at offset ${pos - 1}`);
    }
    switch (major) {
      case 2:
      case 3:
        if (pos + arg > end) return -1;
        pos += arg;
        break;
      case 4:
      case 5:
      case 6:
        if (stack.length >= MAX_DEPTH) throw new MalformedCbor(`nesting deeper than ${MAX_DEPTH} at offset ${pos - 1}`);
        stack.push(need);
        need = major === 4 ? arg : major === 5 ? arg * 2 : 1;
        break;
      default:
        break;
    }
  }
}
