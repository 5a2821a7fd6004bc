// A bounded queue of encoded records between the taps and the disk: full means drop and count, never wait.
// Records are encoded straight into large blocks, so the disk gets a few big writes instead of many small ones.
import type { Out } from './cbor-write.ts';

/** Whole records back to back; ends[i] is the offset just past record i. */
export interface Block {
  buf: Buffer;
  /** over buf, for the encoders that write numbers in place */
  view: DataView;
  used: number;
  ends: number[];
}

export interface RecordQueue {
  /** false when the record did not fit and was dropped */
  push(record: Uint8Array): boolean;
  /**
   * Where to encode the next record, in place at the end of the current block; commit() queues what was
   * written there since. Nothing else may use the queue in between (encoding is synchronous).
   */
  begin(): Out;
  /** queues the record written since begin(); false when it did not fit the bound and was dropped */
  commit(): boolean;
  /** everything queued so far, oldest first; the bytes stay counted against the bound until release() */
  take(): Block[];
  /** a taken block is on disk (or lost): its room is free again */
  release(block: Block): void;
  /** records waiting (not yet taken) */
  readonly length: number;
  /** bytes queued or taken and not yet released */
  readonly bytes: number;
  readonly dropped: number;
}

export const BLOCK_BYTES = 256 * 1024;
const SPARE_BLOCKS = 4;

export function createRecordQueue(maxBytes: number, onFirstDrop: () => void, blockBytes = BLOCK_BYTES): RecordQueue {
  let blocks: Block[] = [];
  let current: Block | null = null;
  let waiting = 0;
  let bytes = 0;
  let dropped = 0;
  const spare: Buffer[] = [];
  /** where the record being written in place starts in current.buf */
  let recordStart = 0;

  const drop = (): null => {
    dropped++;
    if (dropped === 1) onFirstDrop();
    return null;
  };
  const newBlock = (n: number): Block => {
    // A record larger than a block gets a block of its own size: records are never split.
    const buf = n > blockBytes ? Buffer.allocUnsafeSlow(n) : (spare.pop() ?? Buffer.allocUnsafeSlow(blockBytes));
    const block = { buf, view: new DataView(buf.buffer, buf.byteOffset, buf.length), used: 0, ends: [] };
    blocks.push(block);
    return block;
  };
  const queued = (block: Block, end: number): void => {
    bytes += end - block.used;
    block.used = end;
    block.ends.push(end);
    waiting++;
  };

  /** The record being written outgrew its block: it moves, bytes so far and all, to a new one. */
  const grow = (o: Out, n: number): void => {
    const sofar = o.p - recordStart;
    const need = sofar + n;
    const block = newBlock(need > blockBytes ? Math.max(need, 2 * (o.buf.length - recordStart)) : blockBytes);
    o.buf.copy(block.buf, 0, recordStart, o.p);
    // An empty block left behind would be written as nothing: out of the list, its buffer kept for later.
    if (current && current.used === 0) {
      blocks.splice(blocks.indexOf(current), 1);
      if (current.buf.length === blockBytes && spare.length < SPARE_BLOCKS) spare.push(current.buf);
    }
    current = block;
    recordStart = 0;
    o.buf = block.buf;
    o.view = block.view;
    o.p = sofar;
  };
  const out: Out = { buf: Buffer.alloc(0), view: new DataView(new ArrayBuffer(0)), p: 0, grow };

  /** Room for one record of n bytes at block.used - n, or null when it does not fit the bound (dropped). */
  const reserve = (n: number): Block | null => {
    if (bytes + n > maxBytes) return drop();
    if (!current || current.used + n > current.buf.length) current = newBlock(n);
    queued(current, current.used + n);
    return current;
  };

  return {
    push(record) {
      const block = reserve(record.length);
      if (!block) return false;
      block.buf.set(record, block.used - record.length);
      return true;
    },
    begin() {
      current ??= newBlock(0);
      out.buf = current.buf;
      out.view = current.view;
      out.p = recordStart = current.used;
      return out;
    },
    commit() {
      const block = current!;
      if (bytes + (out.p - recordStart) > maxBytes) {
        drop();
        return false;
      }
      queued(block, out.p);
      return true;
    },
    take() {
      const out = blocks.filter((b) => b.used > 0);
      blocks = [];
      current = null;
      waiting = 0;
      return out;
    },
    release(block) {
      bytes -= block.used;
      if (block.buf.length === blockBytes && spare.length < SPARE_BLOCKS) spare.push(block.buf);
    },
    get length() {
      return waiting;
    },
    get bytes() {
      return bytes;
    },
    get dropped() {
      return dropped;
    },
  };
}
