// The configured upstreams at run time: who serves which model, who is healthy, slots and wait queues, probes and reloads.
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import type { RoutingStrategy } from '../config.ts';
import { LlmtapError } from '../errors.ts';
import type { DialectName } from '../exchange/record.ts';
import type { Logger } from '../log.ts';
import { publicUrl, upstreamOf, type Upstream } from '../proxy/route.ts';
import { BREAKER_GAUGE, breakerAllows, breakerRetryInMs, breakerState, newBreaker, recordFailure, recordSuccess, type Breaker, type BreakerChange, type BreakerSettings, type BreakerState } from './breaker.ts';
import { createChooser, type Chooser } from './choose.ts';
import { modelMatcher, type ModelMatcher } from './models.ts';
import { probeUpstream, type ProbeResult } from './probe.ts';
import type { UpstreamSpec } from './spec.ts';

export interface PoolSettings {
  strategy: RoutingStrategy;
  queueTimeoutMs: number;
  queueMax: number;
  healthIntervalMs: number;
  modelsTtlMs: number;
  breaker: BreakerSettings;
}

interface Waiter {
  resolve(lease: Lease): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | null;
  done: boolean;
  cleanup(): void;
}

export interface Member {
  name: string;
  weight: number;
  spec: UpstreamSpec;
  upstream: Upstream;
  breaker: Breaker;
  inFlight: number;
  queue: Waiter[];
  /** configured models, or the last discovered list; null while unknown */
  matcher: ModelMatcher | null;
  /** monotonic ms of the last discovery (0: never) */
  discoveredAt: number;
  probe: ProbeResult | null;
  probing: boolean;
  /** requests sent to it and how many failed (connection, timeout, 5xx), since start */
  sent: number;
  failed: number;
}

/** How an attempt at an upstream went, for its breaker. */
export type AttemptResult = { kind: 'success' } | { kind: 'failure'; error: string } | { kind: 'neutral' };

export interface Lease {
  member: Member;
  /** ms spent waiting in the member's queue */
  waitedMs: number;
  /** gives the slot back (once) and tells the breaker how the attempt went */
  release(result: AttemptResult): void;
}

export interface RouteRequest {
  dialect: DialectName;
  /** null: the request names no model (model lists, version); any upstream of the dialect will do */
  model: string | null;
  /** upstreams already tried for this request */
  exclude: ReadonlySet<string>;
  /** performance.now() past which a queued request gives up */
  deadline: number;
  signal: AbortSignal;
}

export interface UpstreamStatus {
  name: string;
  dialect: DialectName;
  url: string;
  /** up: its breaker lets requests through and its last probe was answered */
  status: 'up' | 'down';
  breaker: BreakerState;
  inFlight: number;
  queued: number;
  maxConcurrent: number | null;
  maxQueue: number;
  weight: number;
  /** the first MAX_MODELS_SHOWN models, for status pages */
  models: readonly string[];
  modelsSource: 'configured' | 'discovered' | 'unknown';
  lastProbe: ProbeResult | null;
  /** why it is down (probe or breaker), null when up */
  error: string | null;
  sent: number;
  failed: number;
}

export interface UpstreamPool {
  acquire(rq: RouteRequest): Lease | Promise<Lease>;
  /** whether another upstream could take the request if this attempt fails */
  hasAlternative(dialect: DialectName, model: string | null, exclude: ReadonlySet<string>): boolean;
  /** every member's state, for /health, /v1/diagnostics and the gauges */
  status(): UpstreamStatus[];
  /** every model name the upstreams of a dialect list (globs left out), with the upstreams serving it */
  listedModels(dialect: DialectName): Map<string, string[]>;
  /** the gauge value of each breaker state */
  readonly breakerGauge: Readonly<Record<BreakerState, number>>;
  /** probes every member once (at start, after a reload); resolves when all answered or timed out */
  probeAll(): Promise<void>;
  /** replaces the member list; members whose name, dialect and URL are unchanged keep their state */
  update(specs: readonly UpstreamSpec[]): void;
  close(): void;
}

const MAX_MODELS_SHOWN = 50;

function names(ms: readonly Member[]): string {
  return ms.map((m) => m.name).join(', ');
}

function retryAfterS(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

export function createUpstreamPool(specs: readonly UpstreamSpec[], settings: PoolSettings, log: Logger, dispatcher?: Dispatcher): UpstreamPool {
  let members: Member[] = [];
  const choose: Chooser = createChooser(settings.strategy);
  const bs = settings.breaker;
  const probeTimeoutMs = Math.min(5000, Math.max(1000, settings.healthIntervalMs));

  const maxQueueOf = (m: Member): number => m.spec.maxQueue ?? settings.queueMax;

  function build(spec: UpstreamSpec, previous?: Member): Member {
    const m: Member = previous ?? {
      name: spec.name,
      weight: spec.weight,
      spec,
      upstream: upstreamOf(spec.name, spec.url),
      breaker: newBreaker(),
      inFlight: 0,
      queue: [],
      matcher: null,
      discoveredAt: 0,
      probe: null,
      probing: false,
      sent: 0,
      failed: 0,
    };
    const modelsChanged = previous !== undefined && JSON.stringify(previous.spec.models) !== JSON.stringify(spec.models);
    m.spec = spec;
    m.weight = spec.weight;
    if (spec.models) m.matcher = modelMatcher(spec.models, spec.dialect);
    else if (modelsChanged) {
      m.matcher = null;
      m.discoveredAt = 0;
    }
    return m;
  }

  function onBreaker(m: Member, change: BreakerChange | null): void {
    if (!change) return;
    const fields = { upstream: m.name, url: m.spec.url, breaker: change.to, from: change.from };
    if (change.to === 'open') log.warn(fields, `upstream ${m.name} (${m.spec.url}): circuit breaker open after ${bs.failures} consecutive failure(s), last: ${m.breaker.lastError}; no traffic for ${bs.cooldownMs} ms`);
    else log.info(fields, `upstream ${m.name} (${m.spec.url}): circuit breaker ${change.to.replace('_', '-')}`);
  }

  function serves(m: Member, dialect: DialectName, model: string | null): boolean {
    if (m.spec.dialect !== dialect) return false;
    if (model === null) return true;
    return m.matcher !== null && m.matcher.matches(model);
  }

  function take(m: Member, waitedMs: number): Lease {
    m.inFlight++;
    m.sent++;
    const trial = breakerState(m.breaker, bs, performance.now()) === 'half_open';
    if (trial) m.breaker.trials++;
    let released = false;
    return {
      member: m,
      waitedMs,
      release(result) {
        if (released) return;
        released = true;
        m.inFlight--;
        if (trial) m.breaker.trials = Math.max(0, m.breaker.trials - 1);
        const now = performance.now();
        if (result.kind === 'failure') {
          m.failed++;
          onBreaker(m, recordFailure(m.breaker, bs, now, result.error));
        } else if (result.kind === 'success') onBreaker(m, recordSuccess(m.breaker, bs, now));
        grantNext(m);
      },
    };
  }

  function grantNext(m: Member): void {
    const max = m.spec.maxConcurrent;
    while (m.queue.length > 0 && (max === null || m.inFlight < max)) {
      const w = m.queue.shift()!;
      if (w.done) continue;
      w.done = true;
      w.cleanup();
      w.resolve(take(m, 0));
    }
  }

  function knownModels(dialect: DialectName): string[] {
    const all = new Set<string>();
    for (const m of members) if (m.spec.dialect === dialect && m.matcher) for (const n of m.matcher.names) all.add(n);
    return [...all].sort();
  }

  function notServed(rq: RouteRequest, serving: readonly Member[]): LlmtapError {
    const ofDialect = members.filter((m) => m.spec.dialect === rq.dialect);
    if (ofDialect.length === 0) {
      return new LlmtapError('LLMTAP_NO_UPSTREAM', `none of the configured upstreams speaks the ${rq.dialect} dialect (configured: ${names(members)})`);
    }
    if (serving.length > 0) {
      // Every upstream serving it was tried already (failover).
      return new LlmtapError('LLMTAP_NO_HEALTHY_UPSTREAM', `every upstream serving model ${rq.model} failed for this request (${names(serving)})`, { retryAfterS: 1 });
    }
    const known = knownModels(rq.dialect);
    const shown = known.length > MAX_MODELS_SHOWN ? `${known.slice(0, MAX_MODELS_SHOWN).join(', ')} and ${known.length - MAX_MODELS_SHOWN} more` : known.join(', ') || 'none discovered yet';
    return new LlmtapError('LLMTAP_UNKNOWN_MODEL', `none of the configured upstreams advertises model ${rq.model}; known models: ${shown}`);
  }

  function noneHealthy(rq: RouteRequest, serving: readonly Member[], now: number): LlmtapError {
    const why = serving.map((m) => `${m.name} (${describeDown(m, now) ?? 'busy with a half-open trial'})`).join('; ');
    const soonest = Math.min(...serving.map((m) => breakerRetryInMs(m.breaker, bs, now)));
    const what = rq.model === null ? `every ${rq.dialect} upstream is down` : `every upstream serving model ${rq.model} is down`;
    return new LlmtapError('LLMTAP_NO_HEALTHY_UPSTREAM', `${what}: ${why}`, { retryAfterS: retryAfterS(soonest) });
  }

  function describeDown(m: Member, now: number): string | null {
    const state = breakerState(m.breaker, bs, now);
    if (state === 'open') return `circuit breaker open for ${retryAfterS(breakerRetryInMs(m.breaker, bs, now))} s more; last error: ${m.breaker.lastError}`;
    if (m.probe && !m.probe.ok) return `health probe failed: ${m.probe.error}`;
    return null;
  }

  function enqueue(m: Member, rq: RouteRequest, t0: number): Promise<Lease> {
    return new Promise<Lease>((resolve, reject) => {
      const w: Waiter = {
        done: false,
        timer: null,
        resolve: (lease) => resolve({ ...lease, waitedMs: performance.now() - t0 }),
        reject,
        cleanup: () => {
          if (w.timer) clearTimeout(w.timer);
          rq.signal.removeEventListener('abort', onAbort);
        },
      };
      const drop = (err: Error): void => {
        if (w.done) return;
        w.done = true;
        w.cleanup();
        const i = m.queue.indexOf(w);
        if (i !== -1) m.queue.splice(i, 1);
        reject(err);
      };
      const onAbort = (): void => drop(new LlmtapError('LLMTAP_CLIENT_ABORTED', `the client went away while its request waited for upstream ${m.name}`));
      w.timer = setTimeout(() => {
        drop(
          new LlmtapError(
            'LLMTAP_QUEUE_TIMEOUT',
            `waited ${Math.round(performance.now() - t0)} ms for a free slot at upstream ${m.name} (max_concurrent ${m.spec.maxConcurrent}; LLMTAP_QUEUE_TIMEOUT_MS ${settings.queueTimeoutMs})`,
            { retryAfterS: retryAfterS(settings.queueTimeoutMs / 2) },
          ),
        );
      }, Math.max(0, rq.deadline - t0));
      rq.signal.addEventListener('abort', onAbort, { once: true });
      m.queue.push(w);
    });
  }

  function acquire(rq: RouteRequest): Lease | Promise<Lease> {
    const now = performance.now();
    const serving: Member[] = [];
    let triedServing: Member[] | null = null;
    for (const m of members) {
      if (!serves(m, rq.dialect, rq.model)) continue;
      if (rq.exclude.has(m.name)) (triedServing ??= []).push(m);
      else serving.push(m);
    }
    if (serving.length === 0) throw notServed(rq, triedServing ?? []);
    const usable = serving.filter((m) => breakerAllows(m.breaker, bs, now));
    if (usable.length === 0) throw noneHealthy(rq, serving, now);
    const key = `${rq.dialect}\u0000${rq.model ?? ''}`;
    const free = usable.filter((m) => m.spec.maxConcurrent === null || m.inFlight < m.spec.maxConcurrent);
    if (free.length > 0) return take(choose(key, free), 0);
    if (rq.signal.aborted) throw new LlmtapError('LLMTAP_CLIENT_ABORTED', 'the client went away before its request was routed');
    let shortest: Member | null = null;
    for (const m of usable) {
      if (m.queue.length >= maxQueueOf(m)) continue;
      if (!shortest || m.queue.length < shortest.queue.length) shortest = m;
    }
    if (!shortest || rq.deadline <= now) {
      const detail = usable.map((m) => `${m.name} ${m.inFlight}/${m.spec.maxConcurrent} in flight, ${m.queue.length}/${maxQueueOf(m)} waiting`).join('; ');
      throw new LlmtapError('LLMTAP_QUEUE_FULL', `every upstream serving ${rq.model === null ? `the ${rq.dialect} dialect` : `model ${rq.model}`} is at its max_concurrent and its wait queue is full (${detail})`, {
        retryAfterS: 1,
      });
    }
    return enqueue(shortest, rq, now);
  }

  async function probeOne(m: Member): Promise<void> {
    if (m.probing) return;
    m.probing = true;
    try {
      const r = await probeUpstream(m.spec, { timeoutMs: probeTimeoutMs, dispatcher });
      const now = performance.now();
      const wasOk = m.probe?.ok ?? true;
      m.probe = r;
      if (r.ok) onBreaker(m, recordSuccess(m.breaker, bs, now));
      else {
        onBreaker(m, recordFailure(m.breaker, bs, now, `health probe: ${r.error}`));
        if (wasOk) log.warn({ upstream: m.name, url: m.spec.url, cause: r.error }, `upstream ${m.name} (${m.spec.url}) failed its health probe: ${r.error}`);
      }
      if (r.ok && !wasOk) log.info({ upstream: m.name }, `upstream ${m.name} (${m.spec.url}) answers its health probe again`);
      if (!m.spec.models) {
        const stale = m.discoveredAt === 0 || now - m.discoveredAt >= settings.modelsTtlMs;
        if (r.models && stale) {
          m.matcher = modelMatcher(r.models, m.spec.dialect);
          m.discoveredAt = now;
        } else if (r.ok && !r.models && m.matcher === null) {
          log.warn({ upstream: m.name, status: r.httpStatus }, `upstream ${m.name} (${m.spec.url}): its models could not be discovered (GET answered ${r.httpStatus}); list them under models: in the config file`);
        }
      }
    } finally {
      m.probing = false;
    }
  }

  const probeAll = async (): Promise<void> => {
    await Promise.all(members.map((m) => probeOne(m)));
  };

  const update = (next: readonly UpstreamSpec[]): void => {
    const byName = new Map(members.map((m) => [m.name, m]));
    members = next.map((spec) => {
      const prev = byName.get(spec.name);
      const keep = prev && prev.spec.url === spec.url && prev.spec.dialect === spec.dialect ? prev : undefined;
      return build(spec, keep);
    });
    // A raised max_concurrent frees slots for requests already waiting.
    for (const m of members) grantNext(m);
  };

  update(specs);
  const timer = setInterval(() => void probeAll(), settings.healthIntervalMs);
  timer.unref();

  return {
    acquire,
    hasAlternative(dialect, model, exclude) {
      const now = performance.now();
      return members.some((m) => !exclude.has(m.name) && serves(m, dialect, model) && breakerAllows(m.breaker, bs, now));
    },
    breakerGauge: BREAKER_GAUGE,
    listedModels(dialect) {
      const out = new Map<string, string[]>();
      for (const m of members) {
        if (m.spec.dialect !== dialect || !m.matcher) continue;
        for (const name of m.matcher.names) {
          if (name.includes('*')) continue;
          const by = out.get(name);
          if (by) by.push(m.name);
          else out.set(name, [m.name]);
        }
      }
      return out;
    },
    status() {
      const now = performance.now();
      return members.map((m): UpstreamStatus => {
        const error = describeDown(m, now);
        return {
          name: m.name,
          dialect: m.spec.dialect,
          url: publicUrl(m.spec.url),
          status: error === null ? 'up' : 'down',
          breaker: breakerState(m.breaker, bs, now),
          inFlight: m.inFlight,
          queued: m.queue.length,
          maxConcurrent: m.spec.maxConcurrent,
          maxQueue: maxQueueOf(m),
          weight: m.weight,
          models: m.matcher ? m.matcher.names.slice(0, MAX_MODELS_SHOWN) : [],
          modelsSource: m.spec.models ? 'configured' : m.matcher ? 'discovered' : 'unknown',
          lastProbe: m.probe,
          error,
          sent: m.sent,
          failed: m.failed,
        };
      });
    },
    probeAll,
    update,
    close() {
      clearInterval(timer);
      for (const m of members) {
        for (const w of m.queue.splice(0)) {
          if (w.done) continue;
          w.done = true;
          w.cleanup();
          w.reject(new LlmtapError('LLMTAP_QUEUE_TIMEOUT', 'llmtap is shutting down', { retryAfterS: 1 }));
        }
      }
    },
  };
}
