// Subscriber that logs one line per exchange: what an operator greps for.
import type { Logger } from 'pino';
import type { ExchangeTap } from './bus.ts';
import type { ExchangeRecord } from './record.ts';

const ms = (v: number | null): string => (v === null ? '-' : `${Math.round(v)}ms`);

export function exchangeLine(r: ExchangeRecord): string {
  const tokens = r.usage.input === null && r.usage.output === null ? '-' : `${r.usage.input ?? '-'}/${r.usage.output ?? '-'}${r.usage.source === 'estimated' ? '~' : ''}`;
  return `${r.method} ${r.url} ${r.model} ${r.status ?? '-'} ${r.outcome} ttft=${ms(r.timings.ttft)} dur=${ms(r.timings.duration)} tokens=${tokens}`;
}

export function logTap(logger: Logger): ExchangeTap {
  return {
    name: 'log',
    onEnd(r) {
      const failed = r.outcome !== 'ok' || (r.status !== null && r.status >= 500);
      const fields = {
        id: r.id,
        method: r.method,
        path: r.url,
        dialect: r.dialect,
        model: r.model,
        status: r.status,
        outcome: r.outcome,
        ttft_ms: r.timings.ttft === null ? null : Math.round(r.timings.ttft * 10) / 10,
        duration_ms: Math.round(r.timings.duration * 10) / 10,
        input_tokens: r.usage.input,
        output_tokens: r.usage.output,
        usage_source: r.usage.source,
        ...(r.errorMessage ? { error: r.errorMessage } : {}),
      };
      if (failed) logger.warn(fields, exchangeLine(r));
      else logger.info(fields, exchangeLine(r));
    },
  };
}
