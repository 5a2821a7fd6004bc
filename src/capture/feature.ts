// The capture feature: taps that turn each exchange into capture records and hand them to the writer, never waiting on it.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { ExchangeStart, ExchangeTap } from '../exchange/bus.ts';
import type { ExchangeRecord } from '../exchange/record.ts';
import type { Feature, FeatureFactory } from '../features.ts';
import { encodeRecord, headerRecord, BATCH_BYTES, BATCH_MS } from './format.ts';
import { encodeChunks, newBatch, writeChunks, writeEnd, writeRequest, writeResponse, type ChunkBatch } from './encode.ts';
import { redactedNames, type RawHeaders } from './redact.ts';
import { createCaptureWriter, type CaptureWriter, type WriterStats } from './writer.ts';

/** Records waiting for the disk, in bytes, before new ones are dropped: bounds memory whatever the disk does. */
export const MAX_QUEUE_BYTES = 32 * 1024 * 1024;

export interface CaptureFeature extends Feature {
  name: 'captures';
  stats(): WriterStats;
  /** everything captured so far is on disk (tests, shutdown) */
  flush(): Promise<void>;
}

const live = new Set<CaptureWriter>();
/** totals of writers already closed, so the process-wide counters never go down */
const retired = { written: 0, bytes: 0, files: 0, dropped: 0, failures: 0, lost: 0 };
type Totals = typeof retired;

function addInto(sum: Totals, s: WriterStats): void {
  sum.written += s.written;
  sum.bytes += s.bytes;
  sum.files += s.files;
  sum.dropped += s.dropped;
  sum.failures += s.failures;
  sum.lost += s.lost;
}

/**
 * Totals over every capture writer this process started (monotonic counters): what telemetry exports
 * (llmtap.capture.dropped ...). All zeros when captures are off.
 */
export function captureStats(): Totals {
  const sum = { ...retired };
  for (const w of live) addInto(sum, w.stats());
  return sum;
}

function llmtapVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/**
 * One exchange's records not yet encoded. The taps only keep references here; the records are encoded together,
 * exchange after exchange, once it ends (or its batch is full or old): the encoder runs hot, off the request path.
 */
interface Pending {
  id: string;
  /** performance.now() at the exchange's start, as well as the taps can tell (chunks carry the exact offset) */
  origin: number;
  /** Date.now() - performance.now() at the start: wall-clock times of later events without a clock read each */
  wallBase: number;
  dropped: number;
  /** the request record's source, until it is written */
  start: ExchangeStart | null;
  startWall: number;
  /** the response head, until it is written (status 0: none yet) */
  status: number;
  headers: RawHeaders | null;
  headAt: number;
  headWall: number;
  /** chunks not yet written, per direction (request: the one chunk of the forwarded body) */
  request: ChunkBatch | null;
  response: ChunkBatch | null;
  /** set once the exchange has ended: its end record, and when */
  end: ExchangeRecord | null;
  endWall: number;
}

/** What a chunk adds to a batch's encoded size besides its bytes (at, wall, size, data head). */
const ENTRY_BYTES = 28;

/** Ended exchanges wait at most this long (ms), and at most this many, before they are encoded together. */
const ENCODE_DELAY_MS = 5;
const ENCODE_BATCH = 64;

function pendingFor(id: string, origin: number): Pending {
  return { id, origin, wallBase: Date.now() - origin, dropped: 0, start: null, startWall: 0, status: 0, headers: null, headAt: 0, headWall: 0, request: null, response: null, end: null, endWall: 0 };
}

export const captureFeature: FeatureFactory = async (ctx) => {
  const { config, log } = ctx;
  if (!config.capture) return null;
  const bodies = config.captureBodies;
  const redacted = redactedNames(config.captureRedact);
  const redactSet: ReadonlySet<string> = new Set(redacted);
  const host = hostname();
  const version = llmtapVersion();
  const writer = createCaptureWriter({
    dir: config.captureDir,
    maxFileBytes: Math.floor(config.captureMaxFileMb * 1024 * 1024),
    maxFiles: config.captureMaxFiles,
    maxQueueBytes: MAX_QUEUE_BYTES,
    header: (sequence) =>
      encodeRecord(headerRecord({ created: new Date().toISOString(), host, pid: process.pid, llmtap: version, bodies, redacted, sequence })),
    warn: (kind, message) => log.warn({ capture: kind, dir: config.captureDir }, message),
  });
  live.add(writer);

  // Exchanges in flight: an entry lives from onStart to onEnd, and every exchange ends, so this stays small.
  const pending = new Map<string, Pending>();
  /** ended exchanges whose records wait to be encoded: bounded by ENCODE_BATCH */
  let ended: Pending[] = [];
  let encodeTimer: NodeJS.Timeout | null = null;

  // Records are encoded in place, straight into the write queue (writer.begin), then queued whole or dropped.
  const emit = (p: Pending): void => {
    if (!writer.commit()) p.dropped++;
  };

  const writeBatch = (p: Pending, dir: 'request' | 'response'): void => {
    const b = p[dir];
    if (!b || b.at.length === 0) return;
    p[dir] = null;
    writeChunks(writer.begin(), p.id, dir, b);
    emit(p);
  };

  /**
   * Encodes what an exchange holds, in the order it happened: request, its chunk, response head, and (unless
   * `headsOnly`) the response chunks so far.
   */
  const encodeSoFar = (p: Pending, headsOnly = false): void => {
    // Each part is taken off the exchange before it is encoded, so one that fails is not tried again.
    const start = p.start;
    if (start) {
      p.start = null;
      // Credentials are replaced as the headers are written: no redacted copy, and the secret is never encoded.
      writeRequest(writer.begin(), start, p.startWall, bodies, redactSet);
      emit(p);
    }
    writeBatch(p, 'request');
    const headers = p.headers;
    if (headers) {
      p.headers = null;
      writeResponse(writer.begin(), p.id, p.headAt, p.headWall, p.status, headers, redactSet);
      emit(p);
    }
    if (!headsOnly) writeBatch(p, 'response');
  };
  const encodeHeads = (p: Pending): void => encodeSoFar(p, true);

  // Encoding runs from timers, outside the bus's guard: a record that cannot be encoded (a bug) must not stop the
  // process or the other exchanges. Reported once, counted; whatever of that record was written is never queued.
  let encodeFailures = 0;
  const guarded = (p: Pending, encode: (p: Pending) => void): void => {
    try {
      encode(p);
    } catch (err) {
      encodeFailures++;
      p.dropped++;
      if (encodeFailures === 1) log.warn({ capture: 'encode_failed', err }, `captures: cannot encode a record of exchange ${p.id}; it is left out (counted, not logged again)`);
    }
  };
  const encodeEnd = (p: Pending): void => {
    writeEnd(writer.begin(), p.end!, p.endWall, p.dropped);
    emit(p);
  };

  const encodeEnded = (): void => {
    if (encodeTimer) clearTimeout(encodeTimer);
    encodeTimer = null;
    const list = ended;
    ended = [];
    for (const p of list) {
      // The end is written even when an earlier record failed: it says how many are missing.
      guarded(p, encodeSoFar);
      guarded(p, encodeEnd);
    }
  };

  // A stream that goes quiet, or an upstream slow to answer, still gets its records to the disk: one timer for all exchanges.
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const p of pending.values()) if (now - p.origin >= BATCH_MS) guarded(p, encodeSoFar);
  }, BATCH_MS).unref();

  /** The exchange chunks of this id go to (the relay sends the chunks of one exchange back to back). */
  let lastId = '';
  let last: Pending | null = null;

  const tap: ExchangeTap = {
    name: 'captures',
    onStart(s) {
      // The start as seen here; the request chunk, which carries the relay's exact offset, corrects it.
      const p = pendingFor(s.id, performance.now());
      p.start = s;
      p.startWall = p.wallBase + p.origin;
      pending.set(s.id, p);
    },
    onResponseHead(id, status, headers) {
      const p = pending.get(id);
      if (!p) {
        // No exchange in flight under this id (its onStart failed, or it has ended): written alone.
        writeResponse(writer.begin(), id, 0, Date.now(), status, headers, redactSet);
        return emit(pendingFor(id, 0));
      }
      // A second head (never seen from the relay) must not replace the first one unwritten.
      if (p.headers) guarded(p, encodeHeads);
      p.status = status;
      p.headers = headers;
      const now = performance.now();
      p.headAt = now - p.origin;
      p.headWall = p.wallBase + now;
    },
    onChunk(id, dir, chunk, at) {
      const p = id === lastId ? last : pending.get(id);
      if (!p) {
        // No exchange in flight under this id (its onStart failed, or it has ended): written alone, nothing kept.
        const lone = newBatch(bodies && dir === 'response', Date.now() - at);
        lone.at.push(at);
        lone.size.push(chunk.length);
        lone.data?.push(chunk);
        return void writer.write(encodeChunks(id, dir, lone));
      }
      lastId = id;
      last = p;
      // Per chunk: a reference and two numbers; the bytes are copied once, when the batch is encoded.
      // The relay hands each chunk over as its own buffer (undici's view of one socket read) and never reuses it.
      let b: ChunkBatch;
      if (dir === 'request') {
        // The relay's offset is exact: later head offsets are measured from it. Its bytes are in the request record.
        p.origin = performance.now() - at;
        b = p.request ??= newBatch(false, p.wallBase + p.origin);
        b.bytes += ENTRY_BYTES;
      } else {
        b = p.response ??= newBatch(bodies, p.wallBase + p.origin);
        b.data?.push(chunk);
        b.bytes += chunk.length + ENTRY_BYTES;
      }
      b.at.push(at);
      b.size.push(chunk.length);
      if (b.bytes >= BATCH_BYTES || at - b.at[0]! >= BATCH_MS) guarded(p, encodeSoFar);
    },
    onEnd(r) {
      const p = pending.get(r.id) ?? pendingFor(r.id, 0);
      pending.delete(r.id);
      if (last === p) {
        last = null;
        lastId = '';
      }
      p.end = r;
      p.endWall = Date.now();
      ended.push(p);
      if (ended.length >= ENCODE_BATCH) encodeEnded();
      else encodeTimer ??= setTimeout(encodeEnded, ENCODE_DELAY_MS).unref();
    },
  };

  const feature: CaptureFeature = {
    name: 'captures',
    taps: [tap],
    stats: () => writer.stats(),
    flush() {
      // Exchanges still running keep their open batches: those are written when full, old, or at the end.
      encodeEnded();
      for (const p of pending.values()) guarded(p, encodeHeads);
      return writer.flush();
    },
    async close() {
      clearInterval(sweep);
      encodeEnded();
      for (const p of pending.values()) guarded(p, encodeSoFar);
      await writer.close();
      const s = writer.stats();
      live.delete(writer);
      addInto(retired, s);
      if (s.dropped > 0 || s.lost > 0) {
        log.warn({ capture: s }, `captures: ${s.dropped} record(s) dropped (queue full) and ${s.lost} lost to disk failures in this run`);
      }
    },
  };
  log.info({ dir: config.captureDir }, `captures on: writing to ${config.captureDir}${bodies ? '' : ' (heads and timings only)'}`);
  return feature;
};
