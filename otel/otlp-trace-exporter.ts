// The otlp and jaeger trace exporters: a bounded span queue, batches encoded by otlp-encode.ts, POSTed over OTLP/HTTP.
import http from 'node:http';
import https from 'node:https';
import { gzip } from 'node:zlib';
import { createJsonBatchEncoder, createProtobufBatchEncoder, type EncodeContext, type SpanBatchEncoder } from './otlp-encode.ts';
import type { GuardedSpanSend } from './failures.ts';
import type { OtlpSignalSettings } from './settings.ts';
import type { SpanData } from './span-data.ts';

export interface SpanBatchSettings {
  maxQueueSize: number;
  maxExportBatchSize: number;
  scheduledDelayMs: number;
  exportTimeoutMs: number;
}

/** Encodes spans for its protocol and sends encoded batches. The failure guard (failures.ts) wraps send. */
export interface OtlpSpanExporter {
  /** a new batch encoder for this exporter's protocol (one per queue) */
  encoder(): SpanBatchEncoder;
  /** POSTs one encoded batch; calls back with null or the error */
  send(body: Buffer, done: (error: Error | null) => void): void;
  shutdown(): Promise<void>;
}

const RETRYABLE = new Set([429, 502, 503, 504]);
const MAX_ATTEMPTS = 3;
const USER_AGENT = 'llmtap OTLP exporter';

/** POSTs encoded batches to the settings' endpoint, with their headers, compression and timeout; retries 429/502/503/504 briefly. */
export function createOtlpSpanExporter(o: OtlpSignalSettings, ctx: EncodeContext): OtlpSpanExporter {
  const json = o.protocol === 'http/json';
  const url = new URL(o.url);
  const client = url.protocol === 'https:' ? https : http;
  const agent = new client.Agent({ keepAlive: true, maxSockets: 2 });
  const headers: Record<string, string> = { ...o.headers, 'content-type': json ? 'application/json' : 'application/x-protobuf', 'user-agent': USER_AGENT };
  if (o.compression === 'gzip') headers['content-encoding'] = 'gzip';

  function post(body: Buffer, deadline: number, attempt: number, done: (error: Error | null) => void): void {
    const left = deadline - Date.now();
    if (left <= 0) return done(new Error(`export timed out after ${o.timeoutMs} ms`));
    let finished = false;
    const finish = (err: Error | null) => {
      if (finished) return;
      finished = true;
      done(err);
    };
    const req = client.request(url, { method: 'POST', agent, headers: { ...headers, 'content-length': String(body.length) }, timeout: left }, (res) => {
      res.resume();
      res.on('error', finish);
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return finish(null);
        if (RETRYABLE.has(status) && attempt < MAX_ATTEMPTS) {
          const after = Number(res.headers['retry-after']);
          const wait = Number.isFinite(after) && after > 0 ? after * 1000 : 100 * 2 ** attempt;
          if (Date.now() + wait < deadline) {
            finished = true;
            setTimeout(() => post(body, deadline, attempt + 1, done), wait).unref();
            return;
          }
        }
        finish(new Error(`the collector answered HTTP ${status}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`export timed out after ${o.timeoutMs} ms`)));
    req.on('error', finish);
    req.end(body);
  }

  return {
    encoder: () => (json ? createJsonBatchEncoder(ctx) : createProtobufBatchEncoder(ctx)),
    send(body, done) {
      const deadline = Date.now() + o.timeoutMs;
      if (o.compression !== 'gzip') return post(body, deadline, 1, done);
      gzip(body, (err, zipped) => (err ? done(err) : post(zipped, deadline, 1, done)));
    },
    async shutdown() {
      agent.destroy();
    },
  };
}

export interface SpanQueue {
  add(span: SpanData): void;
  /** whether add() would keep a span now: false while the exporter backs off after a failure, while the queue is full, or once shut down */
  accepting(): boolean;
  /** spans not built because no queue was accepting: dropped as add() would have dropped them (counted while backing off) */
  skip(count: number): void;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * A bounded queue in front of an exporter, as the SDK's BatchSpanProcessor behaves: a batch goes when it is full or
 * after the schedule delay, one export at a time; spans beyond the queue's size are dropped, never waited for.
 * Spans are encoded as they arrive (the queue holds bytes, not objects), and not at all while the exporter backs
 * off after a failure: they would only be skipped, so they are counted as skipped batches instead.
 */
export function createSpanQueue(encoder: SpanBatchEncoder, out: GuardedSpanSend<Buffer>, b: SpanBatchSettings): SpanQueue {
  const batchSize = Math.max(1, Math.min(b.maxExportBatchSize, b.maxQueueSize));
  /** spans in the encoder's open batch */
  let open = 0;
  const sealed: Array<{ body: Buffer; count: number }> = [];
  /** spans waiting: the open batch and the sealed ones (the batch being sent no longer counts) */
  let queued = 0;
  /** spans dropped unencoded while the exporter backs off, not yet counted as a skipped batch */
  let unsent = 0;
  let timer: NodeJS.Timeout | null = null;
  let inFlight: Promise<void> | null = null;
  let stopped = false;

  function seal(): void {
    if (open === 0) return;
    let body: Buffer | null = null;
    try {
      body = encoder.take();
    } catch (err) {
      out.failed(err);
    }
    if (body) sealed.push({ body, count: open });
    else queued -= open;
    open = 0;
  }

  function exportOne(batch: { body: Buffer; count: number }): Promise<void> {
    queued -= batch.count;
    return new Promise<void>((resolve) => {
      let settled = false;
      let timedOut = false;
      const end = () => {
        if (settled) return;
        settled = true;
        // A send given up on may still hold the bytes: its buffer is not reused then.
        if (!timedOut) encoder.release?.(batch.body);
        resolve();
      };
      // An exporter that never calls back must not stall the queue forever.
      setTimeout(() => {
        timedOut = true;
        end();
      }, b.exportTimeoutMs + 1000).unref();
      try {
        out.send(batch.body, end);
      } catch {
        end();
      }
    });
  }

  function pump(): void {
    if (inFlight) return;
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    if (sealed.length === 0) seal();
    const batch = sealed.shift();
    if (!batch) {
      if (unsent > 0) {
        unsent = 0;
        out.skipped();
      }
      return;
    }
    inFlight = exportOne(batch).then(() => {
      inFlight = null;
      if (sealed.length > 0 || open >= batchSize) pump();
      else schedule();
    });
  }

  function schedule(): void {
    if (timer || stopped || (open === 0 && unsent === 0 && sealed.length === 0)) return;
    timer = setTimeout(() => {
      timer = null;
      pump();
    }, b.scheduledDelayMs);
    timer.unref();
  }

  async function drain(): Promise<void> {
    for (let i = 0; i < 1000 && (open > 0 || sealed.length > 0 || unsent > 0 || inFlight); i++) {
      if (inFlight) await inFlight;
      else pump();
    }
  }

  function skip(count: number): void {
    unsent += count;
    if (unsent >= batchSize) {
      unsent = 0;
      out.skipped();
    } else schedule();
  }

  return {
    accepting: () => !stopped && queued < b.maxQueueSize && !out.paused(),
    skip(count) {
      // A full queue drops silently, as add() does; only a backing-off exporter counts what it skipped.
      if (!stopped && out.paused()) skip(count);
    },
    add(span) {
      if (stopped || queued >= b.maxQueueSize) return;
      if (out.paused()) {
        skip(1);
        return;
      }
      try {
        encoder.append(span);
      } catch (err) {
        out.failed(err);
        return;
      }
      open++;
      queued++;
      if (open < batchSize) return schedule();
      seal();
      pump();
    },
    forceFlush: drain,
    async shutdown() {
      await drain();
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
