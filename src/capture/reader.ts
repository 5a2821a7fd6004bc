// Reads capture files back: whole records from a file or a directory, a cut-short tail reported rather than thrown.
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { itemEnd, MalformedCbor } from './cbor-scan.ts';
import { CaptureFormatError, checkHeader, decodeItem, encodeRecord, FILE_PATTERN, FORMAT_NAME, headerRecord, type CaptureRecord, type HeaderRecord } from './format.ts';

export type CaptureItem =
  /** a whole record, and the byte offset in `file` where it starts */
  | { kind: 'record'; file: string; offset: number; record: CaptureRecord }
  /** the file ends inside a record: everything before `offset` was read; `bytes` trailing bytes were not */
  | { kind: 'cut'; file: string; offset: number; bytes: number };

export interface ReadOptions {
  /** keep reading as the file grows (and, for a directory, move on to newer files) until the signal aborts */
  follow?: boolean;
  signal?: AbortSignal;
  /** how often a followed file is checked for new bytes */
  pollMs?: number;
}

const READ_SIZE = 1024 * 1024;

/** How every header written by this format's writer begins, up to and including the format name. */
const HEADER_PREFIX: Buffer = (() => {
  const bytes = Buffer.from(encodeRecord(headerRecord({ created: '', host: '', pid: 0, llmtap: '', bodies: true, redacted: [], sequence: 1 })));
  const name = bytes.indexOf(FORMAT_NAME);
  return bytes.subarray(0, name + FORMAT_NAME.length);
})();

/** Capture files in a directory, oldest first (names sort by time). */
export async function captureFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => FILE_PATTERN.test(n)).sort().map((n) => join(dir, n));
}

/**
 * Every record of a capture file, or of every capture file in a directory, in order.
 * Throws CaptureFormatError for a file that is not a capture, or one of a newer major version.
 */
export async function* readCapture(path: string, opts: ReadOptions = {}): AsyncGenerator<CaptureItem> {
  const info = await stat(path);
  if (!info.isDirectory()) {
    yield* readFile(path, opts);
    return;
  }
  const done = new Set<string>();
  for (;;) {
    const files = (await captureFiles(path)).filter((f) => !done.has(f));
    for (let i = 0; i < files.length; i++) {
      const f = files[i]!;
      done.add(f);
      // Only the newest file is still being written: older ones are read to their end.
      const last = i === files.length - 1;
      if (opts.follow && last) {
        const ac = new AbortController();
        const stopOnNewer = watchForNewer(path, done, ac, opts);
        yield* readFile(f, { ...opts, signal: ac.signal });
        await stopOnNewer;
      } else yield* readFile(f, { ...opts, follow: false });
    }
    if (!opts.follow || opts.signal?.aborted) return;
    if (files.length === 0) await sleep(opts.pollMs ?? 250, undefined, { signal: opts.signal }).catch(() => {});
    if (opts.signal?.aborted) return;
  }
}

/** Aborts `ac` once a capture file newer than those in `seen` appears (the writer rotated), or when opts.signal aborts. */
async function watchForNewer(dir: string, seen: Set<string>, ac: AbortController, opts: ReadOptions): Promise<void> {
  while (!ac.signal.aborted) {
    if (opts.signal?.aborted) break;
    await sleep(opts.pollMs ?? 250).catch(() => {});
    const files = await captureFiles(dir).catch(() => [] as string[]);
    if (files.some((f) => !seen.has(f))) break;
  }
  // Give the reader one more pass over the old file's last bytes before it stops.
  await sleep(opts.pollMs ?? 250);
  ac.abort();
}

async function* readFile(file: string, opts: ReadOptions): AsyncGenerator<CaptureItem> {
  const fh = await open(file, 'r');
  try {
    let buf = Buffer.alloc(0);
    /** file offset of buf[0] */
    let base = 0;
    let pos = 0;
    let readAt = 0;
    let header: HeaderRecord | null = null;
    for (;;) {
      const chunk = Buffer.allocUnsafe(READ_SIZE);
      const { bytesRead } = await fh.read(chunk, 0, READ_SIZE, readAt);
      if (bytesRead > 0) {
        readAt += bytesRead;
        buf = buf.length === pos ? chunk.subarray(0, bytesRead) : Buffer.concat([buf.subarray(pos), chunk.subarray(0, bytesRead)]);
        base += pos;
        pos = 0;
        for (;;) {
          let end: number;
          try {
            end = itemEnd(buf, pos);
          } catch (err) {
            if (err instanceof MalformedCbor) {
              throw new CaptureFormatError(
                header
                  ? `${file} is damaged: not CBOR at byte ${base + pos} (${err.message}); the records before it were read`
                  : `${file} is not an llmtap capture (not a CBOR sequence: ${err.message})`,
              );
            }
            throw err;
          }
          if (end === -1) break;
          const item = decodeItem(buf.subarray(pos, end));
          if (!header) header = checkHeader(item, file);
          yield { kind: 'record', file, offset: base + pos, record: item as CaptureRecord };
          pos = end;
        }
        continue;
      }
      // At the end of what is there now.
      if (opts.follow && !opts.signal?.aborted) {
        await sleep(opts.pollMs ?? 250, undefined, { signal: opts.signal }).catch(() => {});
        continue;
      }
      if (pos < buf.length) {
        if (!header && base + pos === 0 && buf.length > 0) {
          // Not even a whole header: tell a foreign file from a capture cut during its first write.
          const n = Math.min(buf.length, HEADER_PREFIX.length);
          if (!buf.subarray(0, n).equals(HEADER_PREFIX.subarray(0, n))) throw new CaptureFormatError(`${file} is not an llmtap capture (no capture header)`);
        }
        yield { kind: 'cut', file, offset: base + pos, bytes: buf.length - pos };
      }
      return;
    }
  } finally {
    await fh.close();
  }
}

/** Every whole record of a file or directory, ignoring cuts (for tests and small tools). */
export async function readAllRecords(path: string): Promise<{ records: CaptureRecord[]; cuts: Extract<CaptureItem, { kind: 'cut' }>[] }> {
  const records: CaptureRecord[] = [];
  const cuts: Extract<CaptureItem, { kind: 'cut' }>[] = [];
  for await (const item of readCapture(path)) {
    if (item.kind === 'record') records.push(item.record);
    else cuts.push(item);
  }
  return { records, cuts };
}
