// Runs a real Prometheus server (and promtool) for tests: generated config, temp storage, a free loopback port, killed at the end.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './free-port.ts';

export const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';
export const PROMTOOL_BIN = process.env.PROMTOOL_BIN ?? '/usr/bin/promtool';

/**
 * Why a test needing a system binary cannot run here, or null when it can. Under CI a missing binary is a failure,
 * not a skip: the caller passes the reason to `t.skip` only when this returns non-null and CI is unset.
 */
export function missingBinary(path: string): string | null {
  if (existsSync(path)) return null;
  const why = `${path} is not installed (Debian package "prometheus")`;
  if (process.env.CI) throw new Error(`${why}; CI must have it`);
  return why;
}

export interface ScrapeTarget {
  job: string;
  /** host:port */
  target: string;
  metricsPath?: string;
}

export interface PromSample {
  metric: Record<string, string>;
  /** [unix seconds, "value"] */
  value: [number, string];
}

export interface PromQueryResult {
  status: 'success' | 'error';
  errorType?: string;
  error?: string;
  warnings?: string[];
  data?: { resultType: string; result: PromSample[] };
}

export interface RunningPrometheus {
  /** http://127.0.0.1:port */
  url: string;
  port: number;
  /** GET /api/v1/query; the raw answer, errors included (status 400/422 answers are returned, not thrown) */
  query(expr: string): Promise<PromQueryResult>;
  /** the instant vector of expr; throws when Prometheus answers an error */
  samples(expr: string): Promise<PromSample[]>;
  /** polls expr until pred holds on its samples (bounded), then returns them */
  waitFor(expr: string, pred: (s: PromSample[]) => boolean, timeoutMs?: number): Promise<PromSample[]>;
  /** waits for a scrape of every target to have happened after now (so the data reflects what happened before) */
  freshScrape(timeoutMs?: number): Promise<void>;
  /** all that Prometheus wrote on stdout/stderr, for failure messages */
  output(): string;
  close(): Promise<void>;
}

export interface PrometheusOptions {
  targets: ScrapeTarget[];
  /** scrape (and evaluation) interval, e.g. '1s' */
  interval?: string;
  /** rule files to load (absolute paths) */
  ruleFiles?: string[];
}

export async function startPrometheus(opts: PrometheusOptions): Promise<RunningPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'llmtap-prom-'));
  const port = await freePort();
  const interval = opts.interval ?? '1s';
  const config = [
    'global:',
    `  scrape_interval: ${interval}`,
    `  scrape_timeout: ${interval}`,
    `  evaluation_interval: ${interval}`,
    ...(opts.ruleFiles?.length ? ['rule_files:', ...opts.ruleFiles.map((f) => `  - ${JSON.stringify(f)}`)] : []),
    'scrape_configs:',
    ...opts.targets.flatMap((t) => [
      `  - job_name: ${JSON.stringify(t.job)}`,
      `    metrics_path: ${JSON.stringify(t.metricsPath ?? '/metrics')}`,
      '    static_configs:',
      `      - targets: [${JSON.stringify(t.target)}]`,
    ]),
    '',
  ].join('\n');
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, config);

  let log = '';
  const child: ChildProcess = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const keep = (b: Buffer) => {
    // Bounded: only the tail matters for a failure message.
    log = (log + b.toString('utf8')).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));

  const url = `http://127.0.0.1:${port}`;
  const close = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      await Promise.race([exit, sleep(5000)]);
      if (!exited) child.kill('SIGKILL');
      await Promise.race([exit, sleep(2000)]);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  // Ready within 20 s or give up (the storage is empty, so it is usually well under a second).
  const deadline = Date.now() + 20_000;
  let ready = false;
  for (let i = 0; i < 400 && !exited && Date.now() < deadline; i++) {
    try {
      const r = await fetch(`${url}/-/ready`);
      if (r.ok) {
        ready = true;
        break;
      }
    } catch {
      /* not listening yet */
    }
    await sleep(50);
  }
  if (!ready) {
    await close();
    throw new Error(`prometheus did not become ready on ${url}: ${log.slice(-2000)}`);
  }

  const query = async (expr: string): Promise<PromQueryResult> => {
    const r = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return (await r.json()) as PromQueryResult;
  };
  const samples = async (expr: string): Promise<PromSample[]> => {
    const r = await query(expr);
    if (r.status !== 'success') throw new Error(`prometheus rejected ${expr}: ${r.errorType}: ${r.error}`);
    return r.data?.result ?? [];
  };

  return {
    url,
    port,
    query,
    samples,
    async waitFor(expr, pred, timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs;
      let last: PromSample[] = [];
      for (let i = 0; i < 1000; i++) {
        last = await samples(expr);
        if (pred(last)) return last;
        if (Date.now() > end) break;
        await sleep(200);
      }
      throw new Error(`prometheus: ${expr} not as expected within ${timeoutMs} ms; last: ${JSON.stringify(last).slice(0, 1500)}`);
    },
    async freshScrape(timeoutMs = 10_000) {
      const since = Date.now() / 1000;
      const end = Date.now() + timeoutMs;
      for (let i = 0; i < 1000; i++) {
        const r = await fetch(`${url}/api/v1/targets?state=active`);
        const body = (await r.json()) as { data: { activeTargets: Array<{ lastScrape: string; health: string; lastError: string }> } };
        const targets = body.data.activeTargets;
        if (targets.length > 0 && targets.every((t) => Date.parse(t.lastScrape) / 1000 > since + 0.05 && t.health === 'up')) return;
        if (Date.now() > end) throw new Error(`prometheus: no fresh successful scrape within ${timeoutMs} ms: ${JSON.stringify(targets)}`);
        await sleep(100);
      }
    },
    output: () => log,
    close,
  };
}

/** Runs promtool with args; status and combined output. */
export function promtool(args: string[]): { status: number | null; output: string } {
  const r = spawnSync(PROMTOOL_BIN, args, { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}
