// The usage record: what the store keeps of an exchange (who, which model, how much, how fast), never message content.
import type { DialectName, ExchangeRecord, Operation, Outcome, UsageSource } from '../exchange/record.ts';
import { publicUrl } from '../proxy/route.ts';

export interface UsageRecord {
  id: string;
  /** when the request arrived, ISO 8601 */
  time: string;
  method: string;
  /** the client's path without its query (a query may carry keys) */
  path: string;
  upstream: string;
  upstreamUrl: string;
  /** gen_ai.provider.name: the dialect spoken */
  provider: DialectName;
  model: string;
  responseModel: string | null;
  operation: Operation;
  stream: boolean;
  status: number | null;
  outcome: Outcome;
  errorType: string | null;
  /** milliseconds, one decimal */
  ttfb: number | null;
  ttft: number | null;
  duration: number;
  inputTokens: number | null;
  outputTokens: number | null;
  totalTokens: number | null;
  cachedTokens: number | null;
  reasoningTokens: number | null;
  tokensSource: UsageSource;
  /** body bytes received from the client / relayed to the client */
  requestBytes: number;
  responseBytes: number;
  /** USD; null when the model has no price or no tokens were counted */
  cost: number | null;
  traceId: string | null;
  /** several upstreams: the ones tried first and failed over from, comma-separated; null when none */
  failoverFrom: string | null;
  /** several upstreams: ms spent waiting for a slot at the upstream's max_concurrent; null when it did not wait */
  queuedMs: number | null;
}

/** The fields in the order exports list them (CSV columns). */
export const USAGE_FIELDS = [
  'id',
  'time',
  'method',
  'path',
  'upstream',
  'upstreamUrl',
  'provider',
  'model',
  'responseModel',
  'operation',
  'stream',
  'status',
  'outcome',
  'errorType',
  'ttfb',
  'ttft',
  'duration',
  'inputTokens',
  'outputTokens',
  'totalTokens',
  'cachedTokens',
  'reasoningTokens',
  'tokensSource',
  'requestBytes',
  'responseBytes',
  'cost',
  'traceId',
  'failoverFrom',
  'queuedMs',
] as const satisfies readonly (keyof UsageRecord)[];

const ms = (v: number | null): number | null => (v === null ? null : Math.round(v * 10) / 10);

/** An error as a usage total counts it: llmtap or the upstream failed the request, or it never completed. */
export function isError(r: Pick<UsageRecord, 'outcome' | 'status'>): boolean {
  return r.outcome !== 'ok' || r.status === null || r.status >= 400;
}

export function toUsageRecord(x: ExchangeRecord, cost: number | null): UsageRecord {
  const q = x.url.indexOf('?');
  return {
    id: x.id,
    time: x.startedAt,
    method: x.method,
    path: q === -1 ? x.url : x.url.slice(0, q),
    upstream: x.upstream.name,
    upstreamUrl: publicUrl(x.upstream.url),
    provider: x.dialect,
    model: x.model,
    responseModel: x.responseModel,
    operation: x.operation,
    stream: x.stream,
    status: x.status,
    outcome: x.outcome,
    errorType: x.errorType,
    ttfb: ms(x.timings.ttfb),
    ttft: ms(x.timings.ttft),
    duration: ms(x.timings.duration) ?? 0,
    inputTokens: x.usage.input,
    outputTokens: x.usage.output,
    totalTokens: x.usage.total,
    cachedTokens: x.usage.cacheRead,
    reasoningTokens: x.usage.reasoning,
    tokensSource: x.usage.source,
    requestBytes: x.bytes.requestIn,
    responseBytes: x.bytes.responseOut,
    cost,
    traceId: x.traceId,
    failoverFrom: x.failover && x.failover.length > 0 ? x.failover.map((f) => f.upstream).join(',') : null,
    queuedMs: x.queuedMs !== undefined && x.queuedMs > 0 ? ms(x.queuedMs) : null,
  };
}
