// The capture feature: taps that turn each exchange into capture records and hand them to the writer, never waiting on it.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { ExchangeTap } from '../exchange/bus.ts';
import type { ExchangeRecord } from '../exchange/record.ts';
import type { Feature, FeatureFactory } from '../features.ts';
import { chunkLength, chunkPrefix, encodeChunk, encodeChunkInto, encodeRecord, encodeTransient, headerRecord, type EndRecord } from './format.ts';
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
  /** the first bytes of this exchange's response chunk records, encoded once */
  prefix: Buffer | null;
}

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

  const tap: ExchangeTap = {
    name: 'captures',
    onStart(s) {
      const wall = Date.now();
      // The start as seen here; the request chunk, which carries the relay's exact offset, corrects it.
      pending.set(s.id, { origin: performance.now(), dropped: 0, prefix: chunkPrefix(s.id, 'response') });
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
      put(id, encodeTransient({ type: 'response', id, at: p ? performance.now() - p.origin : 0, wall: Date.now(), status, headers: redact(headers) }));
    },
    onChunk(id, dir, chunk, at) {
      const p = pending.get(id);
      if (dir === 'request') {
        // The relay's offset is exact: later head offsets are measured from it. Its bytes are in the request record.
        if (p) p.origin = performance.now() - at;
        put(id, encodeChunk(id, dir, at, Date.now(), chunk.length, null));
        return;
      }
      const data = bodies ? chunk : null;
      if (!p?.prefix) return put(id, encodeChunk(id, dir, at, Date.now(), chunk.length, data));
      const n = chunkLength(p.prefix, data);
      const block = writer.reserve(n);
      if (block) encodeChunkInto(block.buf, block.view, block.used - n, p.prefix, at, Date.now(), chunk.length, data);
      else p.dropped++;
    },
    onEnd(r) {
      const dropped = pending.get(r.id)?.dropped ?? 0;
      pending.delete(r.id);
      writer.write(encodeTransient(endRecord(r, dropped)));
    },
  };

  const feature: CaptureFeature = {
    name: 'captures',
    taps: [tap],
    stats: () => writer.stats(),
    flush: () => writer.flush(),
    async close() {
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
