// The otlp and jaeger trace exporters: a bounded span queue, batches encoded by otlp-encode.ts, POSTed over OTLP/HTTP.
import http from 'node:http';
import https from 'node:https';
import { gzip } from 'node:zlib';
import { createJsonEncoder, createProtobufEncoder, type EncodeContext } from './otlp-encode.ts';
import type { OtlpSignalSettings } from './settings.ts';
import type { SpanData } from './span-data.ts';

export interface SpanBatchSettings {
  maxQueueSize: number;
  maxExportBatchSize: number;
  scheduledDelayMs: number;
  exportTimeoutMs: number;
}

/** Sends one batch; calls back with null or the error. The failure guard (failures.ts) wraps it. */
export interface OtlpSpanExporter {
  export(spans: readonly SpanData[], done: (error: Error | null) => void): void;
  shutdown(): Promise<void>;
}

const RETRYABLE = new Set([429, 502, 503, 504]);
const MAX_ATTEMPTS = 3;
const USER_AGENT = 'llmtap OTLP exporter';

/** POSTs encoded batches to the settings' endpoint, with their headers, compression and timeout; retries 429/502/503/504 briefly. */
export function createOtlpSpanExporter(o: OtlpSignalSettings, ctx: EncodeContext): OtlpSpanExporter {
  const json = o.protocol === 'http/json';
  const encode = json ? createJsonEncoder(ctx) : createProtobufEncoder(ctx);
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
    export(spans, done) {
      let body: Buffer;
      try {
        body = encode(spans);
      } catch (err) {
        return done(err instanceof Error ? err : new Error(String(err)));
      }
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
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * A bounded queue in front of an exporter, as the SDK's BatchSpanProcessor behaves: a batch goes when it is full or
 * after the schedule delay, one export at a time; spans beyond the queue's size are dropped, never waited for.
 */
export function createSpanQueue(send: (spans: SpanData[], done: () => void) => void, b: SpanBatchSettings): SpanQueue {
  const batchSize = Math.max(1, Math.min(b.maxExportBatchSize, b.maxQueueSize));
  let queue: SpanData[] = [];
  let timer: NodeJS.Timeout | null = null;
  let inFlight: Promise<void> | null = null;
  let stopped = false;

  function exportOne(): Promise<void> {
    const batch = queue.length <= batchSize ? queue : queue.slice(0, batchSize);
    queue = queue.length <= batchSize ? [] : queue.slice(batchSize);
    return new Promise<void>((resolve) => {
      let settled = false;
      const end = () => {
        if (settled) return;
        settled = true;
        resolve();
      };
      // An exporter that never calls back must not stall the queue forever.
      setTimeout(end, b.exportTimeoutMs + 1000).unref();
      try {
        send(batch, end);
      } catch {
        end();
      }
    });
  }

  function pump(): void {
    if (inFlight || queue.length === 0) return;
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    inFlight = exportOne().then(() => {
      inFlight = null;
      if (queue.length >= batchSize) pump();
      else schedule();
    });
  }

  function schedule(): void {
    if (timer || queue.length === 0 || stopped) return;
    timer = setTimeout(() => {
      timer = null;
      pump();
    }, b.scheduledDelayMs);
    timer.unref();
  }

  async function drain(): Promise<void> {
    for (let i = 0; i < 1000 && (queue.length > 0 || inFlight); i++) {
      if (inFlight) await inFlight;
      else pump();
    }
  }

  return {
    add(span) {
      if (stopped || queue.length >= b.maxQueueSize) return;
      queue.push(span);
      if (queue.length >= batchSize) pump();
      else schedule();
    },
    forceFlush: drain,
    async shutdown() {
      await drain();
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
