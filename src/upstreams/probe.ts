// One health probe of an upstream: GET its model list; any answer below 500 means up, and a 200 says which models it has.
import { performance } from 'node:perf_hooks';
import { request, type Dispatcher } from 'undici';
import { describeCause } from '../errors.ts';
import { keyHeaders } from './credentials.ts';
import { MODELS_PATH, modelNamesIn } from './models.ts';
import type { UpstreamSpec } from './spec.ts';

export interface ProbeResult {
  ok: boolean;
  /** wall clock, ISO 8601 */
  at: string;
  latencyMs: number | null;
  httpStatus: number | null;
  /** why it is down, in words */
  error: string | null;
  /** the model names the answer listed (null when it was not a model list) */
  models: string[] | null;
}

/** A model list bigger than this is not read (an upstream with thousands of models still fits). */
const MAX_BODY = 8 * 1024 * 1024;

async function readCapped(body: Dispatcher.ResponseData['body']): Promise<string | null> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) {
      body.destroy();
      return null;
    }
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts).toString('utf8');
}

export async function probeUpstream(spec: UpstreamSpec, opts: { timeoutMs: number; dispatcher?: Dispatcher }): Promise<ProbeResult> {
  const t0 = performance.now();
  const at = new Date().toISOString();
  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'llmtap-health' };
  if (spec.apiKey) for (const [name, value] of keyHeaders(spec.dialect, spec.apiKey)) headers[name] = value;
  try {
    const res = await request(spec.url + MODELS_PATH[spec.dialect], {
      method: 'GET',
      headers,
      signal: AbortSignal.timeout(opts.timeoutMs),
      dispatcher: opts.dispatcher,
    });
    const latencyMs = Math.round((performance.now() - t0) * 10) / 10;
    let models: string[] | null = null;
    if (res.statusCode === 200) {
      const text = await readCapped(res.body);
      try {
        models = text === null ? null : modelNamesIn(spec.dialect, JSON.parse(text));
      } catch {
        models = null;
      }
    } else {
      res.body.resume();
      res.body.on('error', () => {});
    }
    const ok = res.statusCode < 500;
    return { ok, at, latencyMs, httpStatus: res.statusCode, error: ok ? null : `GET ${MODELS_PATH[spec.dialect]} answered ${res.statusCode}`, models };
  } catch (err) {
    const timedOut = (err as Error).name === 'TimeoutError';
    return { ok: false, at, latencyMs: null, httpStatus: null, error: timedOut ? `no answer within ${opts.timeoutMs} ms` : describeCause(err), models: null };
  }
}
