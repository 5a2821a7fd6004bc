// Subscriber that logs one line per exchange: what an operator greps for.
import type { Logger } from 'pino';
import type { JsonLineWriter } from '../log.ts';
import type { ExchangeTap } from './bus.ts';
import type { ExchangeRecord } from './record.ts';

const ms = (v: number | null): string => (v === null ? '-' : `${Math.round(v)}ms`);
const tenth = (v: number | null): number | null => (v === null ? null : Math.round(v * 10) / 10);

export function exchangeLine(r: ExchangeRecord): string {
  const tokens = r.usage.input === null && r.usage.output === null ? '-' : `${r.usage.input ?? '-'}/${r.usage.output ?? '-'}${r.usage.source === 'estimated' ? '~' : ''}`;
  const line = `${r.method} ${r.url} ${r.model} ${r.status ?? '-'} ${r.outcome} ttft=${ms(r.timings.ttft)} dur=${ms(r.timings.duration)} tokens=${tokens}`;
  // Several upstreams: which one answered, and which failed before it.
  if (r.failover === undefined && r.queuedMs === undefined) return line;
  const via = r.failover?.length ? ` via=${r.upstream.name} after ${r.failover.map((f) => `${f.upstream} (${f.status ?? f.outcome})`).join(', ')}` : ` via=${r.upstream.name}`;
  return `${line}${via}${r.queuedMs ? ` queued=${ms(r.queuedMs)}` : ''}`;
}

/** The structured fields of an exchange's log line. */
export function exchangeFields(r: ExchangeRecord) {
  return {
    id: r.id,
    method: r.method,
    path: r.url,
    dialect: r.dialect,
    model: r.model,
    status: r.status,
    outcome: r.outcome,
    ttft_ms: tenth(r.timings.ttft),
    duration_ms: tenth(r.timings.duration),
    input_tokens: r.usage.input,
    output_tokens: r.usage.output,
    usage_source: r.usage.source,
    error: r.errorMessage ?? undefined,
    upstream: r.failover !== undefined || r.queuedMs !== undefined ? r.upstream.name : undefined,
    failover_from: r.failover?.map((f) => f.upstream),
  };
}

/** exchangeFields as JSON, spelled out: this runs for every exchange. */
function fieldsJson(r: ExchangeRecord): string {
  const s = JSON.stringify;
  return (
    `"id":${s(r.id)},"method":${s(r.method)},"path":${s(r.url)},"dialect":"${r.dialect}","model":${s(r.model)},` +
    `"status":${r.status},"outcome":"${r.outcome}","ttft_ms":${tenth(r.timings.ttft)},"duration_ms":${tenth(r.timings.duration)},` +
    `"input_tokens":${r.usage.input},"output_tokens":${r.usage.output},"usage_source":"${r.usage.source}"` +
    (r.errorMessage ? `,"error":${s(r.errorMessage)}` : '') +
    (r.failover !== undefined || r.queuedMs !== undefined ? `,"upstream":${s(r.upstream.name)}` : '') +
    (r.failover ? `,"failover_from":${s(r.failover.map((f) => f.upstream))}` : '')
  );
}

export function logTap(logger: Logger, jsonLine: JsonLineWriter | null = null): ExchangeTap {
  return {
    name: 'log',
    onEnd(r) {
      const level = r.outcome !== 'ok' || (r.status !== null && r.status >= 500) ? 'warn' : 'info';
      // Checked before the line is built: at LLMTAP_LOG_LEVEL=warn most exchanges log nothing, and cost nothing.
      if (!logger.isLevelEnabled(level)) return;
      if (jsonLine) jsonLine(level, fieldsJson(r), exchangeLine(r));
      else logger[level](exchangeFields(r), exchangeLine(r));
    },
  };
}
