// The capture feature: taps that turn each exchange into capture records and hand them to the writer, never waiting on it.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { ExchangeTap } from '../exchange/bus.ts';
import type { ExchangeRecord } from '../exchange/record.ts';
import type { Feature, FeatureFactory } from '../features.ts';
import {
  BATCH_BYTES,
  BATCH_MS,
  chunksLength,
  chunksPrefix,
  encodeChunks,
  encodeChunksInto,
  encodeRecord,
  encodeTransient,
  headerRecord,
  newBatch,
  type ChunkBatch,
  type EndRecord,
} from './format.ts';
import { createRedactor, redactedNames } from './redact.ts';
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

interface Pending {
  /** performance.now() at the exchange's start, as well as the taps can tell (chunks carry the exact offset) */
  origin: number;
  dropped: number;
  /** chunks not yet written, per direction (request: the one chunk of the forwarded body) */
  request: ChunkBatch | null;
  response: ChunkBatch | null;
  /** the first bytes of this exchange's response chunks records, encoded once */
  prefix: Buffer | null;
}

/** What a chunk adds to a batch's encoded size besides its bytes (at, wall, size, data head). */
const ENTRY_BYTES = 28;

export const captureFeature: FeatureFactory = async (ctx) => {
  const { config, log } = ctx;
  if (!config.capture) return null;
  const bodies = config.captureBodies;
  const redact = createRedactor(config.captureRedact);
  const redacted = redactedNames(config.captureRedact);
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
  const put = (id: string, bytes: Uint8Array): void => {
    if (writer.write(bytes)) return;
    const p = pending.get(id);
    if (p) p.dropped++;
  };

  /** Encodes a batch once, straight into the write queue, and starts the exchange's next one. */
  const writeBatch = (id: string, p: Pending, dir: 'request' | 'response'): void => {
    const b = p[dir];
    if (!b || b.at.length === 0) return;
    p[dir] = null;
    const prefix = dir === 'response' ? p.prefix : chunksPrefix(id, dir);
    if (!prefix) return put(id, encodeRecord({ type: 'chunks', id, dir, at: b.at, wall: b.wall, size: b.size, data: b.data }));
    const n = chunksLength(prefix, b);
    const block = writer.reserve(n);
    if (block) encodeChunksInto(block.buf, block.view, block.used - n, prefix, b);
    else p.dropped++;
  };

  // A stream that goes quiet still gets its batch to the disk: one timer for all exchanges, not one each.
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const [id, p] of pending) {
      if (p.response && now - p.origin - p.response.at[0]! >= BATCH_MS) writeBatch(id, p, 'response');
    }
  }, BATCH_MS).unref();

  const tap: ExchangeTap = {
    name: 'captures',
    onStart(s) {
      const wall = Date.now();
      // The start as seen here; the request chunk, which carries the relay's exact offset, corrects it.
      pending.set(s.id, { origin: performance.now(), dropped: 0, request: null, response: null, prefix: chunksPrefix(s.id, 'response') });
      // writer.write copies the bytes at once, so the encoder's own buffer can be used again.
      put(
        s.id,
        encodeTransient({
          type: 'request',
          id: s.id,
          time: s.startedAt,
          wall,
          method: s.method,
          url: s.url,
          dialect: s.dialect,
          upstream: s.upstream,
          model: s.model,
          stream: s.stream,
          operation: s.operation,
          headers: redact(s.requestHeaders),
          body: bodies ? s.requestBody : null,
          bodySize: s.requestBody?.length ?? 0,
        }),
      );
    },
    onResponseHead(id, status, headers) {
      const p = pending.get(id);
      // The request's chunk goes before the head, so a file reads in the order things happened.
      if (p) writeBatch(id, p, 'request');
      put(id, encodeTransient({ type: 'response', id, at: p ? performance.now() - p.origin : 0, wall: Date.now(), status, headers: redact(headers) }));
    },
    onChunk(id, dir, chunk, at) {
      const p = pending.get(id);
      if (!p) {
        // No exchange in flight under this id (its onStart failed, or it has ended): written alone, nothing kept.
        const lone = newBatch(bodies && dir === 'response');
        lone.at.push(at);
        lone.wall.push(Date.now());
        lone.size.push(chunk.length);
        lone.data?.push(chunk);
        return void writer.write(encodeChunks(id, dir, lone));
      }
      // Per chunk: a reference and two numbers; the bytes are copied once, when the batch is encoded.
      // The relay hands each chunk over as its own buffer (undici's view of one socket read) and never reuses it.
      let b: ChunkBatch;
      if (dir === 'request') {
        // The relay's offset is exact: later head offsets are measured from it. Its bytes are in the request record.
        p.origin = performance.now() - at;
        b = p.request ??= newBatch(false);
        b.bytes += ENTRY_BYTES;
      } else {
        b = p.response ??= newBatch(bodies);
        b.data?.push(chunk);
        b.bytes += chunk.length + ENTRY_BYTES;
      }
      b.at.push(at);
      b.wall.push(Date.now());
      b.size.push(chunk.length);
      if (b.bytes >= BATCH_BYTES || at - b.at[0]! >= BATCH_MS) writeBatch(id, p, dir);
    },
    onEnd(r) {
      const p = pending.get(r.id);
      let dropped = 0;
      if (p) {
        writeBatch(r.id, p, 'request');
        writeBatch(r.id, p, 'response');
        dropped = p.dropped;
        pending.delete(r.id);
      }
      writer.write(encodeTransient(endRecord(r, dropped)));
    },
  };

  const feature: CaptureFeature = {
    name: 'captures',
    taps: [tap],
    stats: () => writer.stats(),
    flush: () => writer.flush(),
    async close() {
      clearInterval(sweep);
      for (const [id, p] of pending) {
        writeBatch(id, p, 'request');
        writeBatch(id, p, 'response');
      }
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

function endRecord(r: ExchangeRecord, dropped: number): EndRecord {
  return {
    type: 'end',
    id: r.id,
    wall: Date.now(),
    time: r.startedAt,
    method: r.method,
    url: r.url,
    dialect: r.dialect,
    upstream: r.upstream,
    operation: r.operation,
    model: r.model,
    responseModel: r.responseModel,
    responseId: r.responseId,
    stream: r.stream,
    status: r.status,
    outcome: r.outcome,
    errorType: r.errorType,
    errorMessage: r.errorMessage,
    finishReasons: r.finishReasons,
    streamComplete: r.streamComplete,
    timings: r.timings,
    usage: r.usage,
    bytes: r.bytes,
    traceId: r.traceId,
    usageInjected: r.usageInjected,
    dropped,
  };
}
