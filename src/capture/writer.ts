// Appends encoded records to capture files off the request path: one open file, rotation by size, pruning by count.
import { mkdir, open, readdir, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { BLOCK_BYTES, createRecordQueue, type Block } from './queue.ts';
import { captureFileName, FILE_PATTERN } from './format.ts';
import { createOut, type Out } from './cbor-write.ts';

export interface WriterOptions {
  dir: string;
  maxFileBytes: number;
  maxFiles: number;
  /** bytes of records waiting for the disk before new ones are dropped */
  maxQueueBytes: number;
  /** the encoded header record for the file with this sequence number */
  header(sequence: number): Uint8Array;
  /** called once, at the first problem of each kind */
  warn(kind: 'queue_full' | 'write_failed' | 'prune_failed', message: string): void;
  /** after a write failure, records arriving within this many ms are counted as lost without a new attempt */
  retryMs?: number;
  /** records wait at most this long before they are written (default 100 ms) */
  flushMs?: number;
}

export interface WriterStats {
  /** records on disk */
  written: number;
  bytes: number;
  /** files started */
  files: number;
  /** records dropped because the queue was full (a slow disk) */
  dropped: number;
  /** failed disk operations (open, write); each failure loses the records it was writing */
  failures: number;
  /** records lost to failed disk operations */
  lost: number;
  /** the file being written, if any */
  current: string | null;
}

export interface CaptureWriter {
  /** queues one whole record; false when it was dropped */
  write(record: Uint8Array): boolean;
  /** where to encode the next record in place; then commit() (see RecordQueue.begin) */
  begin(): Out;
  /** queues the record encoded since begin(); false when it was dropped */
  commit(): boolean;
  stats(): WriterStats;
  /** resolves once everything queued so far is on disk (or lost) */
  flush(): Promise<void>;
  /** flushes, then closes the file; later writes are dropped */
  close(): Promise<void>;
}

const DEFAULT_RETRY_MS = 1000;
/** how long records may wait for the disk when traffic is light (a `--follow` sees them this late at most) */
const DEFAULT_FLUSH_MS = 100;

function errText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code ? `${e.code} (${e.message})` : String((e as Error)?.message ?? e);
}

export function createCaptureWriter(o: WriterOptions): CaptureWriter {
  const queue = createRecordQueue(o.maxQueueBytes, () =>
    o.warn('queue_full', `captures: the disk is not keeping up with ${o.dir}; records are being dropped (proxying goes on; counted as dropped, not logged again)`),
  );
  const retryMs = o.retryMs ?? DEFAULT_RETRY_MS;
  let file: FileHandle | null = null;
  let fileName: string | null = null;
  let fileSize = 0;
  /** bytes of the header alone: a file holding only its header takes any record, whatever its size */
  let headerSize = 0;
  let sequence = 0;
  let files = 0;
  let written = 0;
  let bytes = 0;
  let failures = 0;
  let lost = 0;
  let pruneFailures = 0;
  let retryAt = 0;
  let pumping: Promise<void> | null = null;
  let timer: NodeJS.Timeout | null = null;
  const flushMs = o.flushMs ?? DEFAULT_FLUSH_MS;
  let pruning: Promise<void> = Promise.resolve();
  let closed = false;

  const failed = (what: string, err: unknown, records: number): void => {
    failures++;
    lost += records;
    retryAt = Date.now() + retryMs;
    if (failures === 1) o.warn('write_failed', `captures: cannot ${what}: ${errText(err)}; requests go on without captures until it works again (failures are counted, not logged again)`);
  };

  const closeFile = async (): Promise<void> => {
    const f = file;
    file = null;
    fileName = null;
    if (f) await f.close().catch(() => {});
  };

  const prune = async (): Promise<void> => {
    try {
      const names = (await readdir(o.dir)).filter((n) => FILE_PATTERN.test(n)).sort();
      const excess = names.length - o.maxFiles;
      for (let i = 0; i < excess; i++) {
        if (names[i] === fileName) continue;
        await unlink(join(o.dir, names[i]!)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
      }
    } catch (err) {
      pruneFailures++;
      if (pruneFailures === 1) o.warn('prune_failed', `captures: cannot delete old capture files in ${o.dir}: ${errText(err)} (not logged again)`);
    }
  };

  const openNext = async (): Promise<Uint8Array> => {
    await mkdir(o.dir, { recursive: true });
    // A name already taken (same second, same pid after a restart) moves on to the next sequence number.
    for (let tries = 0; ; tries++) {
      sequence++;
      const name = captureFileName(new Date(), process.pid, sequence);
      try {
        file = await open(join(o.dir, name), 'ax');
        fileName = name;
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || tries > 100) throw err;
      }
    }
    files++;
    fileSize = 0;
    const header = o.header(sequence);
    headerSize = header.length;
    return header;
  };

  /** Appends parts (whole records) to the open file; on a short or failed write, cuts the file back to its last whole record. */
  const append = async (parts: Uint8Array[], partBytes: number, records: number): Promise<void> => {
    const f = file!;
    const before = fileSize;
    try {
      let done = 0;
      let pending = parts;
      // writev may write less than asked (a full disk): resume from where it stopped, or give up on an error.
      for (let i = 0; i < 16 && done < partBytes; i++) {
        const { bytesWritten } = await f.writev(pending);
        if (bytesWritten === 0) throw Object.assign(new Error('no bytes written'), { code: 'ENOSPC' });
        done += bytesWritten;
        pending = skipBytes(pending, bytesWritten);
      }
      if (done < partBytes) throw new Error('short write');
      fileSize += partBytes;
      written += records;
      bytes += partBytes;
    } catch (err) {
      failed(`write to ${fileName ? join(o.dir, fileName) : o.dir}`, err, records);
      // Records are never split: a file cut back to its last whole record stays readable; one that cannot be is closed.
      try {
        await f.truncate(before);
        fileSize = before;
      } catch {
        await closeFile();
      }
    }
  };

  const writeBatch = async (blocks: Block[]): Promise<void> => {
    if (Date.now() < retryAt) {
      for (const b of blocks) lost += b.ends.length;
      return;
    }
    let parts: Uint8Array[] = [];
    let partBytes = 0;
    let records = 0;
    const appendParts = async (): Promise<void> => {
      if (file !== null && parts.length > 0) await append(parts, partBytes, records);
      parts = [];
      partBytes = 0;
      records = 0;
    };
    for (const block of blocks) {
      const { ends, buf } = block;
      let from = 0;
      let r = 0;
      while (r < ends.length) {
        if (file === null) {
          if (Date.now() < retryAt) {
            lost += ends.length - r;
            break;
          }
          try {
            const header = await openNext();
            parts.push(header);
            partBytes += header.length;
            pruning = pruning.then(prune);
          } catch (err) {
            await closeFile();
            failed(`create a capture file in ${o.dir}`, err, ends.length - r);
            break;
          }
        }
        // As many whole records as this file has room for; a file holding only its header takes one whatever its size.
        const room = o.maxFileBytes - (fileSize + partBytes);
        let k = r;
        if (ends[ends.length - 1]! - from <= room) k = ends.length;
        else {
          while (k < ends.length && ends[k]! - from <= room) k++;
          if (k === r && fileSize + partBytes <= headerSize) k = r + 1;
        }
        if (k > r) {
          const end = ends[k - 1]!;
          parts.push(buf.subarray(from, end));
          partBytes += end - from;
          records += k - r;
          from = end;
          r = k;
        }
        if (r < ends.length) {
          // Rotate: the next record starts a new file.
          await appendParts();
          await closeFile();
        }
      }
    }
    await appendParts();
  };

  /** Writes what is queued now; what arrives meanwhile waits for the next round. */
  const pump = async (): Promise<void> => {
    const blocks = queue.take();
    try {
      await writeBatch(blocks);
    } finally {
      for (const b of blocks) queue.release(b);
    }
  };

  /** Starts writing now (flush, a full block) or, by default, after FLUSH_MS: a few large writes cost less than many small ones. */
  const kick = (now: boolean): void => {
    if (pumping) return;
    if (!now) {
      timer ??= setTimeout(() => kick(true), flushMs).unref();
      return;
    }
    if (timer) clearTimeout(timer);
    timer = null;
    pumping = pump()
      .catch((err: unknown) => failed(`write captures to ${o.dir}`, err, 0))
      .finally(() => {
        pumping = null;
        if (queue.length > 0) kick(closed || queue.bytes >= BLOCK_BYTES);
      });
  };

  const flush = async (): Promise<void> => {
    for (let i = 0; i < 1_000_000 && (pumping || queue.length > 0); i++) {
      if (!pumping) kick(true);
      await pumping;
    }
  };

  /** after close, records are encoded here and thrown away */
  const discard = createOut(256);

  return {
    begin() {
      if (!closed) return queue.begin();
      discard.p = 0;
      return discard;
    },
    commit() {
      if (closed) {
        lost++;
        return false;
      }
      if (!queue.commit()) return false;
      kick(queue.bytes >= BLOCK_BYTES);
      return true;
    },
    write(record) {
      if (closed) {
        lost++;
        return false;
      }
      if (!queue.push(record)) return false;
      kick(queue.bytes >= BLOCK_BYTES);
      return true;
    },
    stats: () => ({ written, bytes, files, dropped: queue.dropped, failures, lost, current: fileName ? join(o.dir, fileName) : null }),
    flush,
    async close() {
      closed = true;
      await flush();
      await pruning;
      await closeFile();
    },
  };
}

/** The parts left after the first n bytes were written. */
function skipBytes(parts: Uint8Array[], n: number): Uint8Array[] {
  let i = 0;
  while (i < parts.length && n >= parts[i]!.length) n -= parts[i++]!.length;
  if (i >= parts.length) return [];
  const rest = parts.slice(i);
  if (n > 0) rest[0] = rest[0]!.subarray(n);
  return rest;
}
