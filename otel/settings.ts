// Reads the standard OTEL_* variables from an environment record (never process.env), validated, into one settings object.
import { METRIC_EXPORTER_NAMES, TRACE_EXPORTER_NAMES } from './exporters.ts';

export type ExporterRef = { kind: 'named'; name: string } | { kind: 'module'; path: string };
export type OtlpProtocol = 'http/protobuf' | 'http/json';
export type ContentCapture = 'NO_CONTENT' | 'SPAN_ONLY' | 'EVENT_ONLY' | 'SPAN_AND_EVENT';
export type SamplerName = 'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio';

export interface OtlpSignalSettings {
  /** the full URL exports are POSTed to */
  url: string;
  headers: Record<string, string>;
  protocol: OtlpProtocol;
  timeoutMs: number;
  compression: 'gzip' | 'none';
}

export interface TelemetrySettings {
  /** OTEL_SDK_DISABLED=true: no telemetry at all */
  disabled: boolean;
  serviceName: string;
  resourceAttributes: Record<string, string>;
  traceExporters: ExporterRef[];
  metricExporters: ExporterRef[];
  sampler: { name: SamplerName; ratio: number };
  batch: { maxQueueSize: number; maxExportBatchSize: number; scheduledDelayMs: number; exportTimeoutMs: number };
  metricExportIntervalMs: number;
  metricExportTimeoutMs: number;
  otlp: { traces: OtlpSignalSettings; metrics: OtlpSignalSettings };
  /** OTLP/HTTP to Jaeger's own receiver: the traces endpoint when one is set, else Jaeger's default */
  jaeger: OtlpSignalSettings;
  zipkin: { url: string };
  prometheus: { host: string; port: number };
  content: ContentCapture;
}

export type Env = Readonly<Record<string, string | undefined>>;

/** A bad OTEL_* value: names the variable, the value and what is allowed. */
export class TelemetrySettingError extends Error {
  readonly code = 'LLMTAP_BAD_TELEMETRY_SETTING';
  constructor(
    readonly variable: string,
    readonly value: string,
    readonly allowed: string,
  ) {
    super(`invalid setting ${variable}=${JSON.stringify(value)}: expected ${allowed}`);
    this.name = 'TelemetrySettingError';
  }
}

export const DEFAULTS = {
  serviceName: 'llmtap',
  otlpEndpoint: 'http://localhost:4318',
  jaegerEndpoint: 'http://localhost:4318',
  zipkinEndpoint: 'http://localhost:9411/api/v2/spans',
  protocol: 'http/protobuf' as OtlpProtocol,
  timeoutMs: 10_000,
  prometheusHost: '127.0.0.1',
  prometheusPort: 9464,
  metricExportIntervalMs: 60_000,
  metricExportTimeoutMs: 30_000,
  bspMaxQueueSize: 2048,
  bspMaxExportBatchSize: 512,
  bspScheduleDelayMs: 5000,
  bspExportTimeoutMs: 30_000,
  sampler: 'parentbased_always_on' as SamplerName,
  content: 'NO_CONTENT' as ContentCapture,
} as const;

const SAMPLERS: readonly SamplerName[] = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'];
const CONTENT: readonly ContentCapture[] = ['NO_CONTENT', 'SPAN_ONLY', 'EVENT_ONLY', 'SPAN_AND_EVENT'];
const PROTOCOLS: readonly OtlpProtocol[] = ['http/protobuf', 'http/json'];

/** The spec: an empty value means unset. */
function get(env: Env, name: string): string | undefined {
  const v = env[name];
  if (v === undefined) return undefined;
  const t = v.trim();
  return t === '' ? undefined : t;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const v = get(env, name);
  if (v === undefined) return fallback;
  const s = v.toLowerCase();
  if (s === 'true') return true;
  if (s === 'false') return false;
  throw new TelemetrySettingError(name, v, 'true or false');
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const v = get(env, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) throw new TelemetrySettingError(name, v, `an integer from ${min} to ${max}`);
  return n;
}

function url(env: Env, name: string): string | undefined {
  const v = get(env, name);
  if (v === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new TelemetrySettingError(name, v, 'an http(s) URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TelemetrySettingError(name, v, 'an http(s) URL');
  return v;
}

/** `key=value,key2=value2`, values percent-decoded (W3C Baggage octets, as the spec says for headers and resource attributes). */
function pairs(env: Env, name: string): Record<string, string> {
  const v = get(env, name);
  const out: Record<string, string> = {};
  if (v === undefined) return out;
  for (const item of v.split(',')) {
    if (item.trim() === '') continue;
    const eq = item.indexOf('=');
    const key = eq > 0 ? item.slice(0, eq).trim() : '';
    if (!key) throw new TelemetrySettingError(name, v, 'comma-separated key=value pairs');
    try {
      out[key] = decodeURIComponent(item.slice(eq + 1).trim());
    } catch {
      throw new TelemetrySettingError(name, v, 'comma-separated key=value pairs with percent-encoded values');
    }
  }
  return out;
}

function exporterList(env: Env, name: string, known: readonly string[], fallback: string): ExporterRef[] {
  const raw = get(env, name) ?? fallback;
  const allowed = `${[...known, 'module:<path>'].join(', ')} (comma-separated)`;
  const refs: ExporterRef[] = [];
  for (const item of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (item.startsWith('module:')) {
      const path = item.slice('module:'.length).trim();
      if (!path) throw new TelemetrySettingError(name, raw, allowed);
      refs.push({ kind: 'module', path });
      continue;
    }
    const lower = item.toLowerCase();
    if (!known.includes(lower)) throw new TelemetrySettingError(name, raw, allowed);
    if (lower !== 'none' && !refs.some((r) => r.kind === 'named' && r.name === lower)) refs.push({ kind: 'named', name: lower });
  }
  if (refs.length === 0 && !raw.split(',').some((s) => s.trim().toLowerCase() === 'none')) throw new TelemetrySettingError(name, raw, allowed);
  // `none` beside other names means nothing: the spec says none alone turns the signal off.
  return refs;
}

/** The spec's path rules: the generic endpoint gets /v1/<signal> appended, a per-signal endpoint is used as is. */
function otlpSignal(env: Env, signal: 'TRACES' | 'METRICS'): OtlpSignalSettings {
  const path = signal === 'TRACES' ? 'v1/traces' : 'v1/metrics';
  const own = url(env, `OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`);
  const base = url(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  const target = own ?? `${(base ?? DEFAULTS.otlpEndpoint).replace(/\/+$/, '')}/${path}`;
  const protocolVar = get(env, `OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`) !== undefined ? `OTEL_EXPORTER_OTLP_${signal}_PROTOCOL` : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = get(env, protocolVar) ?? DEFAULTS.protocol;
  if (!PROTOCOLS.includes(protocol as OtlpProtocol)) throw new TelemetrySettingError(protocolVar, protocol, `${PROTOCOLS.join(' or ')} (grpc is not supported)`);
  const compressionVar = get(env, `OTEL_EXPORTER_OTLP_${signal}_COMPRESSION`) !== undefined ? `OTEL_EXPORTER_OTLP_${signal}_COMPRESSION` : 'OTEL_EXPORTER_OTLP_COMPRESSION';
  const compression = (get(env, compressionVar) ?? 'none').toLowerCase();
  if (compression !== 'gzip' && compression !== 'none') throw new TelemetrySettingError(compressionVar, get(env, compressionVar)!, 'gzip or none');
  return {
    url: target,
    headers: { ...pairs(env, 'OTEL_EXPORTER_OTLP_HEADERS'), ...pairs(env, `OTEL_EXPORTER_OTLP_${signal}_HEADERS`) },
    protocol: protocol as OtlpProtocol,
    timeoutMs: int(env, `OTEL_EXPORTER_OTLP_${signal}_TIMEOUT`, int(env, 'OTEL_EXPORTER_OTLP_TIMEOUT', DEFAULTS.timeoutMs, 1, 600_000), 1, 600_000),
    compression,
  };
}

function content(env: Env): ContentCapture {
  const name = 'OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT';
  const v = get(env, name);
  if (v === undefined) return DEFAULTS.content;
  const upper = v.toUpperCase();
  if (upper === 'TRUE') return 'SPAN_AND_EVENT';
  if (upper === 'FALSE') return 'NO_CONTENT';
  if (CONTENT.includes(upper as ContentCapture)) return upper as ContentCapture;
  throw new TelemetrySettingError(name, v, `${CONTENT.join(', ')}, true or false`);
}

function sampler(env: Env): TelemetrySettings['sampler'] {
  const name = 'OTEL_TRACES_SAMPLER';
  const v = get(env, name);
  const s = (v ?? DEFAULTS.sampler).toLowerCase() as SamplerName;
  if (!SAMPLERS.includes(s)) throw new TelemetrySettingError(name, v!, SAMPLERS.join(', '));
  const argRaw = get(env, 'OTEL_TRACES_SAMPLER_ARG');
  let ratio = 1;
  if (argRaw !== undefined && s.endsWith('traceidratio')) {
    ratio = Number(argRaw);
    if (!/^(\d+\.?\d*|\.\d+)$/.test(argRaw) || ratio < 0 || ratio > 1) throw new TelemetrySettingError('OTEL_TRACES_SAMPLER_ARG', argRaw, 'a number from 0 to 1');
  }
  return { name: s, ratio };
}

/** Every OTEL_* setting llmtap honours, validated; throws TelemetrySettingError on the first bad value. */
export function readTelemetrySettings(env: Env): TelemetrySettings {
  const traces = otlpSignal(env, 'TRACES');
  const endpointSet = get(env, 'OTEL_EXPORTER_OTLP_ENDPOINT') !== undefined || get(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') !== undefined;
  const promPort = int(env, 'OTEL_EXPORTER_PROMETHEUS_PORT', DEFAULTS.prometheusPort, 0, 65535);
  const resourceAttributes = pairs(env, 'OTEL_RESOURCE_ATTRIBUTES');
  return {
    disabled: bool(env, 'OTEL_SDK_DISABLED', false),
    serviceName: get(env, 'OTEL_SERVICE_NAME') ?? resourceAttributes['service.name'] ?? DEFAULTS.serviceName,
    resourceAttributes,
    traceExporters: exporterList(env, 'OTEL_TRACES_EXPORTER', TRACE_EXPORTER_NAMES, endpointSet ? 'otlp' : 'none'),
    metricExporters: exporterList(env, 'OTEL_METRICS_EXPORTER', METRIC_EXPORTER_NAMES, 'prometheus'),
    sampler: sampler(env),
    batch: {
      maxQueueSize: int(env, 'OTEL_BSP_MAX_QUEUE_SIZE', DEFAULTS.bspMaxQueueSize, 1, 1_000_000),
      maxExportBatchSize: int(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', DEFAULTS.bspMaxExportBatchSize, 1, 1_000_000),
      scheduledDelayMs: int(env, 'OTEL_BSP_SCHEDULE_DELAY', DEFAULTS.bspScheduleDelayMs, 0, 3_600_000),
      exportTimeoutMs: int(env, 'OTEL_BSP_EXPORT_TIMEOUT', DEFAULTS.bspExportTimeoutMs, 1, 3_600_000),
    },
    metricExportIntervalMs: int(env, 'OTEL_METRIC_EXPORT_INTERVAL', DEFAULTS.metricExportIntervalMs, 1, 86_400_000),
    metricExportTimeoutMs: int(env, 'OTEL_METRIC_EXPORT_TIMEOUT', DEFAULTS.metricExportTimeoutMs, 1, 86_400_000),
    otlp: { traces, metrics: otlpSignal(env, 'METRICS') },
    jaeger: { ...traces, url: endpointSet ? traces.url : `${DEFAULTS.jaegerEndpoint}/v1/traces` },
    zipkin: { url: url(env, 'OTEL_EXPORTER_ZIPKIN_ENDPOINT') ?? DEFAULTS.zipkinEndpoint },
    prometheus: { host: get(env, 'OTEL_EXPORTER_PROMETHEUS_HOST') ?? DEFAULTS.prometheusHost, port: promPort },
    content: content(env),
  };
}
