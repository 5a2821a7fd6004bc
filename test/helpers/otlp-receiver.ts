// An OTLP/HTTP receiver for tests: accepts /v1/traces and /v1/metrics as http/json or http/protobuf and keeps what it decoded.
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import protobuf from 'protobufjs';

/** An attribute value as OTLP carries it, flattened to plain JS (int64 as number, arrays as arrays). */
export type AttrValue = string | number | boolean | null | AttrValue[] | { [key: string]: AttrValue };
export type Attrs = Record<string, AttrValue>;

/** OTLP SpanKind numbers. */
export const SPAN_KIND = { UNSPECIFIED: 0, INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 } as const;
/** OTLP Status.code numbers. */
export const STATUS_CODE = { UNSET: 0, OK: 1, ERROR: 2 } as const;

export interface ReceivedSpan {
  /** 32 lower-case hex digits */
  traceId: string;
  /** 16 lower-case hex digits */
  spanId: string;
  /** '' for a root span */
  parentSpanId: string;
  name: string;
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Attrs;
  events: Array<{ name: string; timeNs: bigint; attributes: Attrs }>;
  status: { code: number; message: string };
  resource: Attrs;
  scope: string;
  /** the protocol it arrived in */
  protocol: Protocol;
}

export interface ReceivedPoint {
  attributes: Attrs;
  /** sums and gauges */
  value?: number;
  /** histograms */
  count?: number;
  sum?: number;
  bucketCounts?: number[];
  explicitBounds?: number[];
}

export interface ReceivedMetric {
  name: string;
  unit: string;
  description: string;
  type: 'sum' | 'gauge' | 'histogram' | 'exponentialHistogram' | 'summary' | 'unknown';
  points: ReceivedPoint[];
  resource: Attrs;
  protocol: Protocol;
}

export type Protocol = 'http/json' | 'http/protobuf';

export interface ReceivedExport {
  path: string;
  contentType: string;
  protocol: Protocol;
  headers: http.IncomingHttpHeaders;
  /** the decoding problem, when the body did not decode (the receiver answered 400) */
  error: string | null;
}

export interface OtlpReceiver {
  /** http://127.0.0.1:port, the value for OTEL_EXPORTER_OTLP_ENDPOINT */
  url: string;
  port: number;
  spans: ReceivedSpan[];
  metrics: ReceivedMetric[];
  exports: ReceivedExport[];
  /** waits (bounded) until pred holds for the spans received so far, then returns them */
  waitForSpans(pred: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  /** waits (bounded) for a metric export holding a metric of that name; returns the newest such metric */
  waitForMetric(name: string, timeoutMs?: number): Promise<ReceivedMetric>;
  reset(): void;
  close(): Promise<void>;
}

const PROTO_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'otlp-proto');

interface ProtoTypes {
  traces: protobuf.Type;
  metrics: protobuf.Type;
}

let types: ProtoTypes | null = null;

/** The OTLP request types, loaded once from the .proto files in test/fixtures/otlp-proto. */
export function otlpProtoTypes(): ProtoTypes {
  if (types) return types;
  const root = new protobuf.Root();
  // Imports name files from the proto root ("opentelemetry/proto/common/v1/common.proto").
  root.resolvePath = (_origin, target) => join(PROTO_DIR, target);
  root.loadSync(['opentelemetry/proto/collector/trace/v1/trace_service.proto', 'opentelemetry/proto/collector/metrics/v1/metrics_service.proto']);
  root.resolveAll();
  types = {
    traces: root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest'),
    metrics: root.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest'),
  };
  return types;
}

// ---------------------------------------------------------------------------------------------
// Normalizing: OTLP/JSON (hex or base64 ids, int64 as strings) and protobufjs objects (base64 bytes, longs as strings)
// both become the plain shapes above.

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** An id as OTLP/JSON writes it (hex) or as protobuf bytes come out of toObject (base64), as lower-case hex. */
function idHex(v: unknown, bytes: number): string {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  const s = str(v);
  if (s === '') return '';
  if (s.length === bytes * 2 && /^[0-9a-fA-F]+$/.test(s)) return s.toLowerCase();
  return Buffer.from(s, 'base64').toString('hex');
}

function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v !== '') return Number(v);
  if (v !== null && typeof v === 'object' && 'low' in (v as Obj)) {
    const l = v as { low: number; high: number };
    return l.high * 2 ** 32 + (l.low >>> 0);
  }
  return 0;
}

function nanos(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(Math.round(v));
  if (typeof v === 'string' && /^\d+$/.test(v)) return BigInt(v);
  if (v !== null && typeof v === 'object' && 'low' in (v as Obj)) {
    const l = v as { low: number; high: number };
    return (BigInt(l.high >>> 0) << 32n) | BigInt(l.low >>> 0);
  }
  return 0n;
}

function anyValue(v: unknown): AttrValue {
  const o = obj(v);
  if ('stringValue' in o) return str(o.stringValue);
  if ('boolValue' in o) return o.boolValue === true;
  if ('intValue' in o) return num(o.intValue);
  if ('doubleValue' in o) return num(o.doubleValue);
  if ('arrayValue' in o) return arr(obj(o.arrayValue).values).map(anyValue);
  if ('kvlistValue' in o) return attrs(obj(o.kvlistValue).values);
  if ('bytesValue' in o) return str(o.bytesValue);
  return null;
}

function attrs(list: unknown): Attrs {
  const out: Attrs = {};
  for (const kv of arr(list)) out[str(obj(kv).key)] = anyValue(obj(kv).value);
  return out;
}

function spansOf(body: Obj, protocol: Protocol): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of arr(body.resourceSpans)) {
    const resource = attrs(obj(obj(rs).resource).attributes);
    for (const ss of arr(obj(rs).scopeSpans)) {
      const scope = str(obj(obj(ss).scope).name);
      for (const raw of arr(obj(ss).spans)) {
        const s = obj(raw);
        out.push({
          traceId: idHex(s.traceId, 16),
          spanId: idHex(s.spanId, 8),
          parentSpanId: idHex(s.parentSpanId, 8),
          name: str(s.name),
          kind: num(s.kind),
          startNs: nanos(s.startTimeUnixNano),
          endNs: nanos(s.endTimeUnixNano),
          attributes: attrs(s.attributes),
          events: arr(s.events).map((e) => ({ name: str(obj(e).name), timeNs: nanos(obj(e).timeUnixNano), attributes: attrs(obj(e).attributes) })),
          status: { code: num(obj(s.status).code), message: str(obj(s.status).message) },
          resource,
          scope,
          protocol,
        });
      }
    }
  }
  return out;
}

function pointOf(p: unknown): ReceivedPoint {
  const o = obj(p);
  const point: ReceivedPoint = { attributes: attrs(o.attributes) };
  if ('asDouble' in o) point.value = num(o.asDouble);
  if ('asInt' in o) point.value = num(o.asInt);
  if ('count' in o) point.count = num(o.count);
  if ('sum' in o) point.sum = num(o.sum);
  if ('bucketCounts' in o) point.bucketCounts = arr(o.bucketCounts).map(num);
  if ('explicitBounds' in o) point.explicitBounds = arr(o.explicitBounds).map(num);
  return point;
}

function metricsOf(body: Obj, protocol: Protocol): ReceivedMetric[] {
  const out: ReceivedMetric[] = [];
  for (const rm of arr(body.resourceMetrics)) {
    const resource = attrs(obj(obj(rm).resource).attributes);
    for (const sm of arr(obj(rm).scopeMetrics)) {
      for (const raw of arr(obj(sm).metrics)) {
        const m = obj(raw);
        const type = (['sum', 'gauge', 'histogram', 'exponentialHistogram', 'summary'] as const).find((t) => t in m) ?? 'unknown';
        const points = type === 'unknown' ? [] : arr(obj(m[type]).dataPoints).map(pointOf);
        out.push({ name: str(m.name), unit: str(m.unit), description: str(m.description), type, points, resource, protocol });
      }
    }
  }
  return out;
}

/** Decodes one export body as the receiver does; exported so a unit of exporter output can be checked directly. */
export function decodeOtlp(path: '/v1/traces' | '/v1/metrics', contentType: string, body: Buffer): { protocol: Protocol; spans: ReceivedSpan[]; metrics: ReceivedMetric[] } {
  const protocol: Protocol = /json/i.test(contentType) ? 'http/json' : 'http/protobuf';
  let decoded: Obj;
  if (protocol === 'http/json') {
    decoded = obj(JSON.parse(body.toString('utf8')));
  } else {
    const t = otlpProtoTypes()[path === '/v1/traces' ? 'traces' : 'metrics'];
    decoded = t.toObject(t.decode(body), { longs: String, enums: Number, bytes: String, defaults: false, arrays: true }) as Obj;
  }
  return path === '/v1/traces' ? { protocol, spans: spansOf(decoded, protocol), metrics: [] } : { protocol, spans: [], metrics: metricsOf(decoded, protocol) };
}

// ---------------------------------------------------------------------------------------------
// The server

const MAX_BODY = 16 * 1024 * 1024;

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const metrics: ReceivedMetric[] = [];
  const exports: ReceivedExport[] = [];

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => {
      const path = (req.url ?? '').split('?')[0]!;
      const contentType = String(req.headers['content-type'] ?? '');
      const protocol: Protocol = /json/i.test(contentType) ? 'http/json' : 'http/protobuf';
      const record: ReceivedExport = { path, contentType, protocol, headers: req.headers, error: null };
      exports.push(record);
      if (req.method !== 'POST' || (path !== '/v1/traces' && path !== '/v1/metrics')) {
        record.error = `no OTLP endpoint at ${req.method} ${path}`;
        res.writeHead(404, { 'content-type': 'text/plain' }).end(record.error);
        return;
      }
      try {
        let body = Buffer.concat(chunks);
        if (String(req.headers['content-encoding'] ?? '').toLowerCase() === 'gzip') body = gunzipSync(body);
        const got = decodeOtlp(path, contentType, body);
        spans.push(...got.spans);
        metrics.push(...got.metrics);
      } catch (err) {
        record.error = (err as Error).message;
        res.writeHead(400, { 'content-type': 'text/plain' }).end(record.error);
        return;
      }
      // An empty Export*ServiceResponse: {} in JSON, zero bytes in protobuf.
      if (protocol === 'http/json') res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    spans,
    metrics,
    exports,
    async waitForSpans(pred, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (let i = 0; i < 10_000; i++) {
        if (pred(spans)) return spans;
        if (Date.now() > deadline) break;
        await sleep(25);
      }
      const seen = spans.map((s) => `${s.name} (${s.kind}) ${s.traceId}`).join(' | ') || 'none';
      const errors = exports.filter((e) => e.error).map((e) => `${e.path}: ${e.error}`);
      throw new Error(`OTLP receiver: spans not as expected within ${timeoutMs} ms; got: ${seen}${errors.length ? `; decode errors: ${errors.join('; ')}` : ''}`);
    },
    async waitForMetric(name, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (let i = 0; i < 10_000; i++) {
        const found = metrics.filter((m) => m.name === name).at(-1);
        if (found) return found;
        if (Date.now() > deadline) break;
        await sleep(25);
      }
      throw new Error(`OTLP receiver: no metric ${name} within ${timeoutMs} ms; got: ${[...new Set(metrics.map((m) => m.name))].join(', ') || 'none'}`);
    },
    reset() {
      spans.length = 0;
      metrics.length = 0;
      exports.length = 0;
    },
    close() {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
