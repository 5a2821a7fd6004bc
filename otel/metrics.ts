// Turns finished exchanges into llmtap's GenAI histograms and counters, aggregated here and read by the SDK's readers.
//
// Why not the SDK's instruments: each Histogram.record() hashes its attribute set (sort + stringify, ~4.5 µs
// with eight attributes), and an exchange makes eleven measurements: ~50 µs, a quarter of what llmtap spends per
// request. Here an exchange finds its series with one string key and updates plain arrays (~1-2 µs); the SDK
// reads the result through a MetricProducer at collection time, with the conventions' bucket boundaries.
import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType, type CollectionResult, type MetricData, type MetricProducer } from '@opentelemetry/sdk-metrics';
import type { TelemetryExchange } from './exchange.ts';
import { ATTR, BUCKETS, INSTRUMENTATION_SCOPE, METRIC, OTHER_MODEL } from './semconv.ts';

/** Longest model value kept in a label; longer ones are cut (a label is not a place for a paragraph). */
const MAX_MODEL_LENGTH = 256;

/** Past `max` distinct values, every new one is reported as `other`: a client sending random names cannot grow the scrape. */
export function createModelCap(max: number): (model: string) => string {
  const seen = new Set<string>();
  return (model) => {
    const m = model.length > MAX_MODEL_LENGTH ? model.slice(0, MAX_MODEL_LENGTH) : model;
    if (seen.has(m)) return m;
    if (seen.size >= max) return OTHER_MODEL;
    seen.add(m);
    return m;
  };
}

export interface Server {
  address: string;
  port: number;
}

/** server.address / server.port of an upstream URL, parsed once per URL. */
export function createServerOf(): (url: string) => Server {
  const cache = new Map<string, Server>();
  return (url) => {
    let s = cache.get(url);
    if (!s) {
      try {
        const u = new URL(url);
        s = { address: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80 };
      } catch {
        s = { address: url, port: 0 };
      }
      if (cache.size < 1000) cache.set(url, s);
    }
    return s;
  };
}

type HistogramName = 'operationDuration' | 'timeToFirstChunk' | 'timePerOutputChunk' | 'serverTimeToFirstToken' | 'serverTimePerOutputToken' | 'proxyOverhead';
const HISTOGRAMS: readonly HistogramName[] = ['operationDuration', 'timeToFirstChunk', 'timePerOutputChunk', 'serverTimeToFirstToken', 'serverTimePerOutputToken', 'proxyOverhead'];

interface Hist {
  boundaries: readonly number[];
  counts: number[];
  sum: number;
  count: number;
  min: number;
  max: number;
}

function newHist(boundaries: readonly number[]): Hist {
  return { boundaries, counts: new Array<number>(boundaries.length + 1).fill(0), sum: 0, count: 0, min: Infinity, max: -Infinity };
}

function observe(h: Hist, v: number): void {
  const b = h.boundaries;
  // Inclusive upper bounds, as OTLP and Prometheus read them; at most ~16 boundaries, so a scan is cheapest.
  let i = 0;
  while (i < b.length && v > b[i]!) i++;
  h.counts[i]!++;
  h.sum += v;
  h.count++;
  if (v < h.min) h.min = v;
  if (v > h.max) h.max = v;
}

/** One attribute set of the common attributes, with every measurement made under it. */
interface Series {
  attributes: Attributes;
  hist: Partial<Record<HistogramName, Hist>>;
  tokens: { input?: Hist; output?: Hist };
  /** key: status|outcome */
  requests: Map<string, { status: number | null; outcome: string; count: number }>;
  bytes: { request: number; response: number };
}

/** Status codes and outcomes per series are few, but bounded anyway. */
const MAX_REQUEST_KINDS = 64;
/** Series are bounded by the model cap; this is the last guard (upstreams × operations × error types × models). */
const MAX_SERIES = 20_000;

export interface ExchangeMetrics {
  /**
   * Records one exchange. `forwardedAfterMs` is the time from the request's arrival to its forwarding upstream
   * (null when it never went upstream: too large, or the client left while sending it).
   */
  record(x: TelemetryExchange, forwardedAfterMs: number | null): void;
  /** hands the aggregated metrics to the SDK's readers */
  producer: MetricProducer;
}

function hrNow(): HrTime {
  const ms = performance.timeOrigin + performance.now();
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

export function createExchangeMetrics(opts: { maxModels: number; resource: Resource; version: string }): ExchangeMetrics {
  const requestModel = createModelCap(opts.maxModels);
  const responseModel = createModelCap(opts.maxModels);
  const serverOf = createServerOf();
  const series = new Map<string, Series>();
  const startTime = hrNow();
  let overflow: Series | null = null;

  // Consecutive exchanges mostly share their attributes: the last one's series is found without building a key.
  let last: { x: TelemetryExchange; s: Series } | null = null;
  const sameSeries = (a: TelemetryExchange, b: TelemetryExchange): boolean =>
    a.dialect === b.dialect &&
    a.upstream.name === b.upstream.name &&
    a.upstream.url === b.upstream.url &&
    a.operation === b.operation &&
    a.model === b.model &&
    a.responseModel === b.responseModel &&
    a.errorType === b.errorType;

  const seriesFor = (x: TelemetryExchange): Series => {
    // The model caps only ever grow, so the same values always map to the same series.
    if (last && sameSeries(x, last.x)) return last.s;
    const s = findSeries(x);
    last = { x, s };
    return s;
  };

  const findSeries = (x: TelemetryExchange): Series => {
    const server = serverOf(x.upstream.url);
    const reqModel = x.model !== 'unknown' ? requestModel(x.model) : null;
    const resModel = x.responseModel ? responseModel(x.responseModel) : null;
    const key = `${x.dialect}\u0001${x.upstream.name}\u0001${x.upstream.url}\u0001${x.operation}\u0001${reqModel}\u0001${resModel}\u0001${x.errorType}`;
    let s = series.get(key);
    if (s) return s;
    if (series.size >= MAX_SERIES) {
      overflow ??= newSeries({ [ATTR.llmtapUpstream]: OTHER_MODEL, 'otel.metric.overflow': true });
      return overflow;
    }
    const attributes: Attributes = {
      [ATTR.providerName]: x.dialect,
      [ATTR.serverAddress]: server.address,
      [ATTR.serverPort]: server.port,
      [ATTR.llmtapUpstream]: x.upstream.name,
    };
    if (x.operation) attributes[ATTR.operationName] = x.operation;
    if (reqModel !== null) attributes[ATTR.requestModel] = reqModel;
    if (resModel !== null) attributes[ATTR.responseModel] = resModel;
    if (x.errorType) attributes[ATTR.errorType] = x.errorType;
    s = newSeries(attributes);
    series.set(key, s);
    return s;
  };

  const hist = (s: Series, name: HistogramName): Hist => (s.hist[name] ??= newHist(BUCKETS[name]!));

  const record: ExchangeMetrics['record'] = (x, forwardedAfterMs) => {
    const s = seriesFor(x);
    const rk = `${x.status}|${x.outcome}`;
    const r = s.requests.get(rk);
    if (r) r.count++;
    else if (s.requests.size < MAX_REQUEST_KINDS) s.requests.set(rk, { status: x.status, outcome: x.outcome, count: 1 });
    s.bytes.request += x.bytes.requestIn;
    s.bytes.response += x.bytes.responseOut;
    const t = x.timings;
    observe(hist(s, 'proxyOverhead'), t.overhead / 1000);

    // GenAI metrics describe operations that reached the upstream.
    if (!x.operation || forwardedAfterMs === null) return;
    const upstreamMs = Math.max(0, t.duration - forwardedAfterMs);
    observe(hist(s, 'operationDuration'), upstreamMs / 1000);
    if (x.usage.input !== null) observe((s.tokens.input ??= newHist(BUCKETS.tokenUsage!)), x.usage.input);
    if (x.usage.output !== null) observe((s.tokens.output ??= newHist(BUCKETS.tokenUsage!)), x.usage.output);
    if (!x.stream || t.ttft === null) return;
    observe(hist(s, 'timeToFirstChunk'), t.ttft / 1000);
    const ok = x.outcome === 'ok' && x.status !== null && x.status < 400;
    if (ok) observe(hist(s, 'serverTimeToFirstToken'), (t.ttft + forwardedAfterMs) / 1000);
    const out = x.usage.output;
    if (out !== null && out > 1) {
      // After the first token, the upstream's pace is the same from either side of llmtap.
      const perToken = Math.max(0, upstreamMs - t.ttft) / (out - 1) / 1000;
      observe(hist(s, 'timePerOutputChunk'), perToken);
      if (ok) observe(hist(s, 'serverTimePerOutputToken'), perToken);
    }
  };

  const producer: MetricProducer = {
    async collect(): Promise<CollectionResult> {
      const endTime = hrNow();
      const all = overflow ? [...series.values(), overflow] : [...series.values()];
      const metrics: MetricData[] = [];
      const histogramData = (name: keyof typeof METRIC, points: Array<{ attributes: Attributes; h: Hist }>): void => {
        if (points.length === 0) return;
        const m = METRIC[name];
        metrics.push({
          descriptor: { name: m.name, description: m.description, unit: m.unit, valueType: name === 'tokenUsage' ? ValueType.INT : ValueType.DOUBLE },
          aggregationTemporality: AggregationTemporality.CUMULATIVE,
          dataPointType: DataPointType.HISTOGRAM,
          dataPoints: points.map(({ attributes, h }) => ({
            attributes,
            startTime,
            endTime,
            value: { buckets: { boundaries: [...h.boundaries], counts: [...h.counts] }, sum: h.sum, count: h.count, min: h.min, max: h.max },
          })),
        });
      };
      for (const name of HISTOGRAMS) {
        histogramData(name, all.flatMap((s) => (s.hist[name] ? [{ attributes: s.attributes, h: s.hist[name]! }] : [])));
      }
      histogramData(
        'tokenUsage',
        all.flatMap((s) => (['input', 'output'] as const).flatMap((type) => (s.tokens[type] ? [{ attributes: { ...s.attributes, [ATTR.tokenType]: type }, h: s.tokens[type]! }] : []))),
      );
      const sum = (name: 'requests' | 'bytes', points: Array<{ attributes: Attributes; value: number }>): void => {
        if (points.length === 0) return;
        const m = METRIC[name];
        metrics.push({
          descriptor: { name: m.name, description: m.description, unit: m.unit, valueType: ValueType.INT },
          aggregationTemporality: AggregationTemporality.CUMULATIVE,
          dataPointType: DataPointType.SUM,
          isMonotonic: true,
          dataPoints: points.map(({ attributes, value }) => ({ attributes, startTime, endTime, value })),
        });
      };
      sum(
        'requests',
        all.flatMap((s) =>
          [...s.requests.values()].map((r) => {
            const attributes: Attributes = { ...s.attributes, [ATTR.llmtapOutcome]: r.outcome };
            if (r.status !== null) attributes[ATTR.httpResponseStatusCode] = r.status;
            return { attributes, value: r.count };
          }),
        ),
      );
      sum(
        'bytes',
        all.flatMap((s) => [
          ...(s.bytes.request > 0 ? [{ attributes: { ...s.attributes, [ATTR.llmtapDirection]: 'request' }, value: s.bytes.request }] : []),
          ...(s.bytes.response > 0 ? [{ attributes: { ...s.attributes, [ATTR.llmtapDirection]: 'response' }, value: s.bytes.response }] : []),
        ]),
      );
      return {
        resourceMetrics: { resource: opts.resource, scopeMetrics: [{ scope: { name: INSTRUMENTATION_SCOPE, version: opts.version }, metrics }] },
        errors: [],
      };
    },
  };

  return { record, producer };
}

function newSeries(attributes: Attributes): Series {
  return { attributes, hist: {}, tokens: {}, requests: new Map(), bytes: { request: 0, response: 0 } };
}
