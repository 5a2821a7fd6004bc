// A bounded queue of encoded records between the request path and the disk: full means drop and count, never wait.
// Records are copied into large blocks as they come, so the disk gets a few big writes instead of many small ones.

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
   * Room for one record of n bytes, to be written in place at block.used - n before anything else runs;
   * null when it did not fit and was dropped.
   */
  reserve(n: number): Block | null;
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
  return {
    reserve(n) {
      if (bytes + n > maxBytes) {
        dropped++;
        if (dropped === 1) onFirstDrop();
        return null;
      }
      if (!current || current.used + n > current.buf.length) {
        // A record larger than a block gets a block of its own size: records are never split.
        const buf = n > blockBytes ? Buffer.allocUnsafeSlow(n) : (spare.pop() ?? Buffer.allocUnsafeSlow(blockBytes));
        current = { buf, view: new DataView(buf.buffer, buf.byteOffset, buf.length), used: 0, ends: [] };
        blocks.push(current);
      }
      current.used += n;
      current.ends.push(current.used);
      bytes += n;
      waiting++;
      return current;
    },
    push(record) {
      const block = this.reserve(record.length);
      if (!block) return false;
      block.buf.set(record, block.used - record.length);
      return true;
    },
    take() {
      const out = blocks;
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
