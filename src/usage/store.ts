// The usage store: a lowdb JSON file written atomically in batches, bounded by rolling the oldest records into daily totals.
import { mkdir, open, rename, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Low, type Adapter } from 'lowdb';
import { TextFile } from 'lowdb/node';
import { ConfigError } from '../config.ts';
import { lockStore, removeStaleTemps } from './lock.ts';
import type { UsageRecord } from './record.ts';
import { addRecord, emptyTotals, rollUp, type Rollup, type Totals } from './rollup.ts';

export const STORE_FORMAT = 'llmtap-usage';
/** Bump when a reader of the old layout would misread the new one; older llmtaps then refuse the file rather than overwrite it. */
export const STORE_VERSION = 1;

export interface StoreData {
  format: typeof STORE_FORMAT;
  version: number;
  createdAt: string;
  rollups: Rollup[];
  /** whole records, oldest first */
  records: UsageRecord[];
}

/** All-time totals of one upstream/provider/model: rollups and records together. */
export interface ModelTotals extends Totals {
  upstream: string;
  upstreamUrl: string;
  provider: UsageRecord['provider'];
  model: string;
}

export interface FlushInfo {
  at: string | null;
  /** how long the last write took, ms */
  ms: number | null;
  /** file size after the last write */
  bytes: number | null;
  records: number;
  writes: number;
  failures: number;
  lastError: string | null;
  /** set when another llmtap holds the file: this one does not write */
  readOnlyBecause: string | null;
}

export interface UsageStore {
  readonly file: string;
  add(r: UsageRecord): void;
  /** every whole record (stored and not yet written), oldest first */
  records(): UsageRecord[];
  /** the newest `n` records, newest first */
  recent(n: number): UsageRecord[];
  rollups(): readonly Rollup[];
  /** all-time totals per upstream/provider/model, kept up to date as records arrive */
  modelTotals(): readonly ModelTotals[];
  /** records waiting for the next write */
  pendingCount(): number;
  flushInfo(): FlushInfo;
  /** writes whatever is waiting now */
  flush(): Promise<void>;
  /** the pid of the llmtap that writes this file when it is not this one (records then stay in memory) */
  readonly readOnlyOwner: number | null;
  /** final write; the store takes no more records */
  close(): Promise<void>;
}

export interface StoreOptions {
  file: string;
  flushMs: number;
  maxRecords: number;
  /** take `<file>.lock` (default); off only where the caller guarantees a single writer */
  lock?: boolean;
  /** a write failed (reported once by the caller; later ones are counted) */
  onWriteError?(err: Error, failures: number): void;
}

const emptyData = (): StoreData => ({ format: STORE_FORMAT, version: STORE_VERSION, createdAt: new Date().toISOString(), rollups: [], records: [] });

function moveAside(file: string): string {
  return `move it aside (mv '${file}' '${file}.bad') or point LLMTAP_USAGE_FILE at another file, then start llmtap again`;
}

/** Reads and checks a store file; anything llmtap cannot safely take over stops start-up and leaves the file as it is. */
function parseStore(file: string, text: string): StoreData | null {
  if (text.trim() === '') return null;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`llmtap: the usage store ${file} is not valid JSON (${(err as Error).message}); it was left untouched: ${moveAside(file)}`);
  }
  const d = data as Partial<StoreData> | null;
  if (!d || typeof d !== 'object' || Array.isArray(d) || d.format !== STORE_FORMAT || typeof d.version !== 'number') {
    throw new ConfigError(`llmtap: ${file} is not an llmtap usage store (no "format": "${STORE_FORMAT}" and version); it was left untouched: ${moveAside(file)}`);
  }
  if (d.version > STORE_VERSION) {
    throw new ConfigError(
      `llmtap: the usage store ${file} was written by a newer llmtap (store version ${d.version}; this llmtap reads up to ${STORE_VERSION}); it was left untouched: upgrade llmtap, or ${moveAside(file)}`,
    );
  }
  if (!Array.isArray(d.records) || !Array.isArray(d.rollups)) {
    throw new ConfigError(`llmtap: the usage store ${file} is damaged (records or rollups missing); it was left untouched: ${moveAside(file)}`);
  }
  return { format: STORE_FORMAT, version: STORE_VERSION, createdAt: typeof d.createdAt === 'string' ? d.createdAt : new Date().toISOString(), rollups: d.rollups, records: d.records };
}

/** Records written per slice: each slice is ~0.5 MB of text and about a millisecond of work before the loop is free again. */
const SLICE = 800;

/**
 * A lowdb adapter for a big array that only grows at one end. It writes the way lowdb's own (steno) does, to
 * a temp file beside the file and then a rename over it, so a crash leaves the old file or the new one, never
 * half of one; but it writes in slices with the event loop free in between, where steno wants the whole text
 * at once (at 50,000 records that is ~30 MB to join and encode: a 50-100 ms stall of the proxy every flush).
 * Each record is stringified once and its text reused by every later write; records go one per line, so the
 * file stays readable with grep and head.
 */
function storeAdapter(file: string): Adapter<StoreData> {
  const text = new TextFile(file);
  // Named for this process: even two writers on one file (the lock should prevent it) never mix their bytes.
  const temp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  const cache = new WeakMap<UsageRecord, string>();
  const lineOf = (r: UsageRecord): string => {
    let s = cache.get(r);
    if (s === undefined) {
      s = JSON.stringify(r);
      cache.set(r, s);
    }
    return s;
  };
  return {
    async read() {
      const raw = await text.read();
      return raw === null ? null : parseStore(file, raw);
    },
    async write(data) {
      // Taken now: the store may add and roll up records while the slices go out.
      const records = data.records.slice();
      const head = JSON.stringify({ format: data.format, version: data.version, createdAt: data.createdAt, rollups: data.rollups });
      const fh = await open(temp, 'w');
      try {
        await fh.write(`${head.slice(0, -1)},"records":[${records.length === 0 ? '' : '\n'}`);
        for (let i = 0; i < records.length; i += SLICE) {
          const end = Math.min(records.length, i + SLICE);
          const parts = new Array<string>(end - i);
          for (let j = i; j < end; j++) parts[j - i] = lineOf(records[j]!) + (j < records.length - 1 ? ',\n' : '\n');
          await fh.write(parts.join(''));
        }
        await fh.write(']}\n');
      } finally {
        await fh.close();
      }
      await rename(temp, file);
    },
  };
}

export async function openUsageStore(opts: StoreOptions): Promise<UsageStore> {
  const file = resolve(opts.file);
  try {
    await mkdir(dirname(file), { recursive: true });
  } catch (err) {
    throw new ConfigError(`llmtap: cannot create the folder ${dirname(file)} for the usage store (LLMTAP_USAGE_FILE): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const lock = opts.lock === false ? null : await lockStore(file).catch((err: Error) => {
    throw new ConfigError(`llmtap: cannot lock the usage store ${file} (LLMTAP_USAGE_FILE): ${(err as NodeJS.ErrnoException).code ?? err.message}`);
  });
  // Another llmtap writes this file: read what it holds, keep our own records in memory, never write.
  const readOnly = lock !== null && !lock.held ? lock.owner : null;
  if (lock?.held) await removeStaleTemps(file);
  const db = new Low<StoreData>(storeAdapter(file), emptyData());
  try {
    await db.read();
  } catch (err) {
    if (lock?.held) await lock.release();
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`llmtap: cannot read the usage store ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const data = db.data;
  const existed = data.records.length > 0 || data.rollups.length > 0;

  const byModel = new Map<string, ModelTotals>();
  const totalsOf = (r: { upstream: string; upstreamUrl: string; provider: UsageRecord['provider']; model: string }): ModelTotals => {
    const key = `${r.upstream}\u0000${r.provider}\u0000${r.model}`;
    let t = byModel.get(key);
    if (!t) {
      t = { upstream: r.upstream, upstreamUrl: r.upstreamUrl, provider: r.provider, model: r.model, ...emptyTotals() };
      byModel.set(key, t);
    }
    return t;
  };
  for (const b of data.rollups) {
    const t = totalsOf(b);
    for (const k of Object.keys(emptyTotals()) as (keyof ReturnType<typeof emptyTotals>)[]) t[k] += b[k];
  }
  for (const r of data.records) addRecord(totalsOf(r), r);

  let pending: UsageRecord[] = [];
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  let dirty = !existed;
  let closed = false;
  // How long writes take (moving average), see add().
  let writeEstimate = 0;
  const info: FlushInfo = {
    at: null,
    ms: null,
    bytes: null,
    records: data.records.length,
    writes: 0,
    failures: 0,
    lastError: null,
    readOnlyBecause: readOnly === null ? null : `llmtap pid ${readOnly} writes this file; this one keeps its records in memory`,
  };

  /** Moves waiting records into the data and rolls the oldest past the cap into daily totals. */
  const absorb = (): void => {
    if (pending.length > 0) {
      for (const r of pending) data.records.push(r);
      pending = [];
      dirty = true;
    }
    const excess = data.records.length - opts.maxRecords;
    if (excess > 0) {
      rollUp(data.rollups, data.records.splice(0, excess));
      dirty = true;
    }
  };

  const write = async (): Promise<void> => {
    absorb();
    if (!dirty || readOnly !== null) return;
    dirty = false;
    const t0 = performance.now();
    try {
      await db.write();
      const ms = performance.now() - t0;
      writeEstimate = writeEstimate === 0 ? ms : writeEstimate * 0.7 + ms * 0.3;
      info.at = new Date().toISOString();
      info.ms = Math.round(ms * 10) / 10;
      info.records = data.records.length;
      info.writes++;
      info.bytes = await stat(file).then((s) => s.size, () => info.bytes);
    } catch (err) {
      dirty = true;
      info.failures++;
      info.lastError = (err as Error).message;
      opts.onWriteError?.(err as Error, info.failures);
      // Retry later even if no record arrives meanwhile; the data is safe in memory.
      schedule(Math.max(opts.flushMs, 5000));
    }
  };

  const flush = (): Promise<void> => {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await write();
        } while (again);
      } finally {
        running = null;
      }
    })();
    return running;
  };

  function schedule(delay: number): void {
    if (timer || closed) return;
    timer = setTimeout(() => {
      timer = null;
      void flush();
    }, delay);
    timer.unref();
  }

  // A new file is written at once: a folder llmtap cannot write to shows up at start-up, not an hour later.
  if (!existed && readOnly === null) {
    await write();
    if (info.failures > 0) {
      if (lock?.held) await lock.release();
      throw new ConfigError(`llmtap: cannot write the usage store ${file} (LLMTAP_USAGE_FILE): ${info.lastError}`);
    }
  }

  return {
    file,
    add(r) {
      if (closed) return;
      pending.push(r);
      addRecord(totalsOf(r), r);
      // Memory stays bounded even when the disk is slower than the traffic.
      if (pending.length >= opts.maxRecords) absorb();
      // Started early by about a write's time and a margin for a busy event loop, so a record is on disk within
      // flushMs of arriving; under steady traffic writes still come about once per flushMs.
      schedule(Math.max(10, opts.flushMs - Math.min(opts.flushMs / 4, 2 * writeEstimate + 100)));
    },
    records() {
      return pending.length === 0 ? data.records.slice() : data.records.concat(pending);
    },
    recent(n) {
      const out: UsageRecord[] = [];
      for (let i = pending.length - 1; i >= 0 && out.length < n; i--) out.push(pending[i]!);
      for (let i = data.records.length - 1; i >= 0 && out.length < n; i--) out.push(data.records[i]!);
      return out;
    },
    rollups: () => data.rollups,
    modelTotals: () => [...byModel.values()],
    pendingCount: () => pending.length,
    flushInfo: () => ({ ...info }),
    flush,
    readOnlyOwner: readOnly,
    async close() {
      closed = true;
      try {
        await flush();
      } finally {
        if (lock?.held) await lock.release();
      }
    },
  };
}
