// Shared by the upstream health, limits and reload tests: upstream specs, bounded polling, and reading gauges from a scrape.
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, type Config, type RawSettings } from '../../src/config.ts';
import type { UpstreamSpec } from '../../src/upstreams/spec.ts';

/** An OpenAI-dialect upstream entry as the config file would give it. */
export function openaiSpec(name: string, url: string, models: string[], extra: Partial<UpstreamSpec> = {}): UpstreamSpec {
  return { name, dialect: 'openai', url, models, apiKeyEnv: null, apiKey: null, maxConcurrent: null, maxQueue: null, weight: 1, ...extra };
}

/** A Config with an upstreams list, as a config file with these settings and entries would give. */
export function routedConfig(settings: RawSettings, upstreams: UpstreamSpec[]): Config {
  const action = loadConfig({ env: {}, overrides: { port: 0, logLevel: 'silent', ...settings }, upstreams });
  if (action.kind !== 'run') throw new Error('loadConfig did not return a config');
  return action.config;
}

/**
 * Calls probe until it returns a value that is not undefined, at most `tries` times and for at most timeoutMs;
 * throws with describe()'s last view otherwise.
 */
export async function pollFor<T>(what: string, probe: () => Promise<T | undefined>, describe: () => string, timeoutMs = 5000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  const tries = Math.ceil(timeoutMs / everyMs) + 10;
  for (let i = 0; i < tries; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) break;
    await sleep(everyMs);
  }
  throw new Error(`${what}: not seen within ${timeoutMs} ms; last: ${describe()}`);
}

/** The value of a metric for one upstream in a Prometheus text exposition, or null when the series is absent. */
export function upstreamGauge(scrape: string, metric: string, upstream: string): number | null {
  for (const line of scrape.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    const close = line.lastIndexOf('}');
    if (!line.slice(0, close).includes(`llmtap_upstream="${upstream}"`)) continue;
    return Number(line.slice(close + 1).trim().split(' ')[0]);
  }
  return null;
}

/** The value of a metric with no upstream label (a counter like llmtap_rate_limited_total), or null. */
export function plainMetric(scrape: string, metric: string): number | null {
  for (const line of scrape.split('\n')) {
    if (line.startsWith(`${metric}{`) || line.startsWith(`${metric} `)) {
      const close = line.lastIndexOf('}');
      return Number(line.slice(close + 1).trim().split(' ')[0]);
    }
  }
  return null;
}

/** The text of an SSE chat stream's generated content: the delta contents joined. */
export function sseContent(body: string): string {
  let out = '';
  for (const event of body.split('\n\n')) {
    const data = event.split('\n').find((l) => l.startsWith('data: '));
    if (!data || data === 'data: [DONE]') continue;
    const chunk = JSON.parse(data.slice(6)) as { choices?: Array<{ delta?: { content?: string } }> };
    out += chunk.choices?.[0]?.delta?.content ?? '';
  }
  return out;
}
