// The benchmark's load generator: runs in its own (pinned) process, drives every target and prints the figures as JSON.
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { Agent, request } from 'undici';
import { z } from 'zod';
import { CHAT_PATH, expectedCompletionBody, expectedStreamBody } from './fast-upstream.ts';
import { isMain } from './serve.ts';

export const PLAN_ENV = 'BENCH_PLAN';

const PlanSchema = z.object({
  // The bench only ever talks to servers it started itself.
  targets: z
    .array(
      z.object({
        name: z.string().min(1),
        origin: z.string().url().refine((u) => new URL(u).hostname === '127.0.0.1', 'a 127.0.0.1 URL'),
        /** the processes that do this target's work on the servers' CPU (the proxy and the upstream): their CPU time is read per slice */
        pids: z.array(z.number().int().positive()).default([]),
      }),
    )
    .min(1),
  durationS: z.number().positive().max(600),
  warmupS: z.number().min(0).max(60),
  connections: z.number().int().min(1).max(1000),
  ttfbRequests: z.number().int().min(1).max(10_000),
  ttfbWarmup: z.number().int().min(0).max(1000),
  /** each throughput run is cut into this many slices, targets taken A B … B A, A B … */
  slices: z.number().int().min(1).max(20),
  /** a pause before each measured slice, so what the last target still does once its load stops is not counted against the next one */
  settleMs: z.number().int().min(0).max(10_000).default(0),
});
export type LoadPlan = z.infer<typeof PlanSchema>;

export type RunName = 'nonStreaming' | 'streaming' | 'ttfb';

/** One run against one target. Latencies in ms (null with no 2xx response); `rps` is 2xx responses per second of run. */
export interface RunFigures {
  /** null for runs where a rate means nothing (sequential TTFB) */
  rps: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  ok: number;
  non2xx: number;
  /** connection errors and timeouts */
  errors: number;
  durationS: number;
  /** throughput runs: (max − min) / mean of the slices' req/s, a measure of how steady the machine was */
  spread: number | null;
  /** throughput runs: each slice's req/s, one per round in round order (the report pairs them across targets) */
  sliceRps: number[] | null;
  /**
   * throughput runs: CPU time (user + system, all threads) the target's processes used per 2xx response, in µs.
   * Unlike req/s it leaves out the time the CPU sat idle; cycles the host takes unseen still inflate it.
   */
  cpuUsPerReq: number | null;
}

export interface TargetFigures {
  name: string;
  /** problems found by one request of each kind before the runs, checked byte for byte against the upstream's answer */
  sanity: string[];
  runs: Record<RunName, RunFigures>;
}

export interface LoadResult {
  targets: TargetFigures[];
}

const HEADERS = { 'content-type': 'application/json', authorization: 'Bearer sk-bench' };
const MESSAGES = [{ role: 'user', content: 'Say hello.' }];
export const REQUEST_BODIES = {
  nonStreaming: JSON.stringify({ model: 'bench-model', messages: MESSAGES, max_tokens: 32 }),
  // The client asks for usage itself, so bare and llmtap relay the same bytes and neither has to rewrite the stream.
  streaming: JSON.stringify({ model: 'bench-model', messages: MESSAGES, max_tokens: 32, stream: true, stream_options: { include_usage: true } }),
} as const;

const REQUEST_TIMEOUT_MS = 10_000;
/** Beyond this many samples a run stops recording latencies (memory bound; ~16 MB). */
const MAX_SAMPLES = 2_000_000;
/** The TTFB loop stops after this long whatever the count, so a slow target cannot hold the bench. */
const TTFB_DEADLINE_MS = 120_000;

function log(line: string): void {
  process.stderr.write(`  ${line}\n`);
}

/** Nearest-rank percentile of sorted samples. */
export function percentile(sorted: Float64Array, p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

class Samples {
  private values = new Float64Array(1024);
  private n = 0;
  add(v: number): void {
    if (this.n === this.values.length) {
      if (this.n >= MAX_SAMPLES) return;
      const grown = new Float64Array(Math.min(MAX_SAMPLES, this.n * 2));
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.n++] = v;
  }
  sorted(): Float64Array {
    return this.values.slice(0, this.n).sort();
  }
}

/** What one autocannon slice adds to a run. */
interface Tally {
  ok: number;
  non2xx: number;
  errors: number;
  durationS: number;
  /** CPU ms the target's processes used during the slice; null when /proc could not tell */
  cpuMs: number | null;
}

/** /proc's clock ticks per second (USER_HZ): 100 on every Linux that Node runs on. */
const TICKS_PER_S = 100;

/** utime + stime of these processes, all their threads, in ms; null when a /proc entry is missing (not Linux, a process gone). */
function cpuMsOf(pids: readonly number[]): number | null {
  if (pids.length === 0) return null;
  let ticks = 0;
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return null;
    }
    // The command name (field 2) may hold spaces: count fields from the ')' that closes it. utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return Number.isFinite(ticks) ? (ticks * 1000) / TICKS_PER_S : null;
}

/**
 * One autocannon slice. Latencies are taken from its per-response event rather than its histogram,
 * which keeps whole milliseconds only: too coarse for a proxy that adds tenths of one.
 */
function cannon(origin: string, body: string, durationS: number, connections: number, samples: Samples | null, pids: readonly number[] = []): Promise<Tally> {
  const cpuBefore = cpuMsOf(pids);
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: origin + CHAT_PATH,
        method: 'POST',
        headers: HEADERS,
        body,
        connections,
        pipelining: 1,
        duration: durationS,
        timeout: REQUEST_TIMEOUT_MS / 1000,
        // autocannon only notices the end of a run on a sample tick: at its default 1 s, slices round up to whole seconds.
        sampleInt: 100,
      },
      (err: Error | null, result: autocannon.Result) => {
        if (err) reject(err);
        else {
          const cpuAfter = cpuMsOf(pids);
          const cpuMs = cpuBefore !== null && cpuAfter !== null ? cpuAfter - cpuBefore : null;
          resolve({ ok: result['2xx'], non2xx: result.non2xx, errors: result.errors, durationS: result.duration, cpuMs });
        }
      },
    );
    if (samples) {
      instance.on('response', (_client: autocannon.Client, statusCode: number, _bytes: number, responseTime: number) => {
        if (statusCode >= 200 && statusCode < 300) samples.add(responseTime);
      });
    }
  });
}

/**
 * A throughput run of every target, cut into slices taken in the order A B … B A, A B … B A:
 * a machine that drifts or is disturbed during the run (thermal, neighbours, a warming upstream)
 * then weighs on every target alike instead of on whichever came last.
 */
async function throughput(plan: LoadPlan, run: 'nonStreaming' | 'streaming'): Promise<RunFigures[]> {
  const samples = plan.targets.map(() => new Samples());
  const slices: Tally[][] = plan.targets.map(() => []);
  const forward = [...plan.targets.keys()];
  const label = run === 'streaming' ? 'streaming' : 'non-streaming';
  log(`${label}: ${plan.targets.map((t) => t.name).join(', ')}; ${plan.durationS} s each in ${plan.slices} slices, ${plan.connections} connections`);
  for (let round = 0; round < plan.slices; round++) {
    const order = round % 2 === 0 ? forward : [...forward].reverse();
    for (const t of order) {
      // Each target's unmeasured warm-up runs right before its first slice: warmed all at once up front, every
      // target then sat idle while the others warmed, and the first round came out far below the later ones.
      if (round === 0 && plan.warmupS > 0) await cannon(plan.targets[t]!.origin, REQUEST_BODIES[run], plan.warmupS, plan.connections, null);
      // A target whose load just stopped still collects garbage, exports spans, writes captures: on the servers' CPU,
      // that work would count against whichever target comes next, and the ratio of a pair with it.
      if (plan.settleMs > 0) await new Promise((resolve) => setTimeout(resolve, plan.settleMs));
      const slice = await cannon(plan.targets[t]!.origin, REQUEST_BODIES[run], plan.durationS / plan.slices, plan.connections, samples[t]!, plan.targets[t]!.pids);
      slices[t]!.push(slice);
    }
  }
  return slices.map((mine, t) => {
    const sorted = samples[t]!.sorted();
    const sum = (key: Exclude<keyof Tally, 'cpuMs'>): number => mine.reduce((acc, s) => acc + s[key], 0);
    const cpuKnown = mine.every((s) => s.cpuMs !== null);
    const cpuMs = mine.reduce((acc, s) => acc + (s.cpuMs ?? 0), 0);
    const rates = mine.map((s) => s.ok / s.durationS);
    const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
    const rps = sum('ok') / sum('durationS');
    const cpuUsPerReq = cpuKnown && sum('ok') > 0 ? (cpuMs * 1000) / sum('ok') : null;
    const cpu = cpuUsPerReq !== null ? `, ${Math.round(cpuUsPerReq)} µs CPU/req` : '';
    log(`  ${plan.targets[t]!.name.padEnd(12)} ${Math.round(rps)} req/s${cpu} (slices: ${rates.map((r) => Math.round(r)).join(', ')})`);
    return {
      rps,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      ok: sum('ok'),
      non2xx: sum('non2xx'),
      errors: sum('errors'),
      durationS: sum('durationS'),
      spread: mean > 0 ? (Math.max(...rates) - Math.min(...rates)) / mean : null,
      sliceRps: rates,
      cpuUsPerReq,
    };
  });
}

interface Exchange {
  status: number;
  contentType: string;
  body: Buffer;
  /** ms from just before sending to the first body byte */
  ttfbMs: number;
}

async function exchange(agent: Agent, origin: string, body: string): Promise<Exchange> {
  const start = process.hrtime.bigint();
  const res = await request(origin + CHAT_PATH, {
    method: 'POST',
    headers: HEADERS,
    body,
    dispatcher: agent,
    headersTimeout: REQUEST_TIMEOUT_MS,
    bodyTimeout: REQUEST_TIMEOUT_MS,
  });
  let first: bigint | null = null;
  const parts: Buffer[] = [];
  for await (const chunk of res.body) {
    first ??= process.hrtime.bigint();
    parts.push(chunk as Buffer);
  }
  const end = first ?? process.hrtime.bigint();
  const contentType = res.headers['content-type'];
  return {
    status: res.statusCode,
    contentType: Array.isArray(contentType) ? contentType.join(', ') : (contentType ?? ''),
    body: Buffer.concat(parts),
    ttfbMs: Number(end - start) / 1e6,
  };
}

/** One request of each kind, compared with what the upstream sends: a proxy that is fast because it is broken must show. */
async function sanity(agent: Agent, origin: string): Promise<string[]> {
  const problems: string[] = [];
  try {
    const plain = await exchange(agent, origin, REQUEST_BODIES.nonStreaming);
    if (plain.status !== 200) problems.push(`non-streaming answered ${plain.status}`);
    else if (!plain.body.equals(expectedCompletionBody())) problems.push('non-streaming body differs from the upstream\'s');
    const streamed = await exchange(agent, origin, REQUEST_BODIES.streaming);
    if (streamed.status !== 200) problems.push(`streaming answered ${streamed.status}`);
    else if (!streamed.contentType.startsWith('text/event-stream')) problems.push(`streaming content-type is "${streamed.contentType}"`);
    else if (!streamed.body.equals(expectedStreamBody(true))) problems.push('streamed body differs from the upstream\'s');
  } catch (err) {
    problems.push(`request failed: ${(err as Error).message}`);
  }
  return problems;
}

/**
 * Sequential streamed requests, taking the targets in turn request by request (rotating who goes first),
 * so that drift over the loop (GC, frequency scaling) falls on every target alike.
 */
async function ttfb(plan: LoadPlan, agents: Agent[]): Promise<RunFigures[]> {
  const samples = plan.targets.map(() => new Samples());
  const non2xx = plan.targets.map(() => 0);
  const errors = plan.targets.map(() => 0);
  const started = Date.now();
  const deadline = started + TTFB_DEADLINE_MS;
  const total = plan.ttfbWarmup + plan.ttfbRequests;
  for (let i = 0; i < total && Date.now() < deadline; i++) {
    for (let k = 0; k < plan.targets.length; k++) {
      const t = (i + k) % plan.targets.length;
      try {
        const ex = await exchange(agents[t]!, plan.targets[t]!.origin, REQUEST_BODIES.streaming);
        if (i < plan.ttfbWarmup) continue;
        if (ex.status >= 200 && ex.status < 300) samples[t]!.add(ex.ttfbMs);
        else non2xx[t]!++;
      } catch {
        if (i >= plan.ttfbWarmup) errors[t]!++;
      }
    }
  }
  if (Date.now() >= deadline) log(`ttfb: stopped at the ${TTFB_DEADLINE_MS / 1000} s limit`);
  const durationS = (Date.now() - started) / 1000;
  return samples.map((s, t) => {
    const sorted = s.sorted();
    return { rps: null, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), ok: sorted.length, non2xx: non2xx[t]!, errors: errors[t]!, durationS, spread: null, sliceRps: null, cpuUsPerReq: null };
  });
}

export async function runLoad(plan: LoadPlan): Promise<LoadResult> {
  const agents = plan.targets.map(() => new Agent({ connections: 1, pipelining: 1, keepAliveTimeout: 30_000 }));
  try {
    const sanityProblems: string[][] = [];
    for (let t = 0; t < plan.targets.length; t++) sanityProblems.push(await sanity(agents[t]!, plan.targets[t]!.origin));

    const nonStreaming = await throughput(plan, 'nonStreaming');
    const streaming = await throughput(plan, 'streaming');
    log(`ttfb: ${plan.targets.map((t) => t.name).join(', ')}; ${plan.ttfbRequests} sequential streamed requests each, after ${plan.ttfbWarmup} to warm up`);
    const firstBytes = await ttfb(plan, agents);
    return {
      targets: plan.targets.map((t, i) => ({
        name: t.name,
        sanity: sanityProblems[i]!,
        runs: { nonStreaming: nonStreaming[i]!, streaming: streaming[i]!, ttfb: firstBytes[i]! },
      })),
    };
  } finally {
    await Promise.all(agents.map((a) => a.close()));
  }
}

/** Reads the plan bench.ts passes in the environment; throws naming what is wrong. */
export function readPlan(text: string | undefined): LoadPlan {
  if (!text) throw new Error(`${PLAN_ENV} is not set (load.ts is started by scripts/bench.ts)`);
  const parsed = PlanSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${PLAN_ENV} is not a valid plan: ${parsed.error.message}`);
  return parsed.data;
}

if (isMain(import.meta.url)) {
  runLoad(readPlan(process.env[PLAN_ENV]))
    .then((result) => process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0)))
    .catch((err: unknown) => {
      process.stderr.write(`bench load: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    });
}
