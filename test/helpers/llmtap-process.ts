// Runs llmtap out of process: `node scripts/llmtap.mjs` as a user would, and the heap-reporting harness.
import { spawn, fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { canConnect, freePort } from './free-port.ts';
import { HARNESS_SETTINGS_ENV } from './harness-protocol.ts';
import type { HarnessReply, HarnessRequest, HarnessSettings, HeapSample } from './harness-protocol.ts';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const LLMTAP_BIN = join(REPO_ROOT, 'scripts', 'llmtap.mjs');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Where spawned llmtap processes keep their files, so no test writes into the repository's ./data or ./captures. */
const SCRATCH = mkdtempSync(join(tmpdir(), 'llmtap-proc-'));
let spawned = 0;

/**
 * The parent's environment without any LLMTAP_* or OTEL_* setting, so a developer's shell cannot change a test,
 * plus what keeps parallel processes apart: their own usage file and capture folder, and no fixed Prometheus port.
 */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith('LLMTAP_') || k.startsWith('OTEL_')) continue;
    env[k] = v;
  }
  const own = join(SCRATCH, String(++spawned));
  const isolation = {
    LLMTAP_USAGE_FILE: join(own, 'usage.json'),
    LLMTAP_CAPTURE_DIR: join(own, 'captures'),
    OTEL_EXPORTER_PROMETHEUS_PORT: '0',
  };
  return { ...env, ...isolation, ...extra };
}

/** Runs llmtap to its exit (for bad settings, --help): bounded by timeoutMs, after which it is killed. */
export async function runLlmtap(args: string[], env: Record<string, string> = {}, timeoutMs = 15_000): Promise<Exit & { stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [LLMTAP_BIN, ...args], { cwd: REPO_ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exit = await exitOf(child);
  clearTimeout(timer);
  return { ...exit, stdout, stderr };
}

function exitOf(child: ChildProcess): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

export interface LlmtapProcess {
  child: ChildProcess;
  port: number;
  url: string;
  stdout(): string;
  stderr(): string;
  exited: Promise<Exit>;
  /** SIGKILL if still running (cleanup) */
  kill(): void;
}

/** Starts `node scripts/llmtap.mjs` on a free port and waits (bounded) until it accepts connections on `port`.
 * The port is passed as LLMTAP_PORT unless portVia is 'none' (the test sets it itself, e.g. to check precedence). */
export async function spawnLlmtap(opts: { args?: string[]; env?: Record<string, string>; port?: number; portVia?: 'env' | 'none'; readyTimeoutMs?: number } = {}): Promise<LlmtapProcess> {
  const port = opts.port ?? (await freePort());
  const env = cleanEnv({ ...(opts.portVia === 'none' ? {} : { LLMTAP_PORT: String(port) }), ...(opts.env ?? {}) });
  const child = spawn(process.execPath, [LLMTAP_BIN, ...(opts.args ?? [])], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = exitOf(child);
  const proc: LlmtapProcess = {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  let exitedEarly = false;
  void exited.then(() => (exitedEarly = true));
  for (let i = 0; i < 1000 && Date.now() < deadline && !exitedEarly; i++) {
    if (await canConnect(port, 500)) return proc;
    await sleep(50);
  }
  proc.kill();
  const e = await exited;
  throw new Error(`llmtap did not accept connections on port ${port} (exit ${e.code ?? e.signal}); stderr: ${stderr.slice(0, 2000)} stdout: ${stdout.slice(0, 2000)}`);
}

export interface Harness {
  url: string;
  /** GC, then the heap */
  heap(): Promise<HeapSample>;
  watch(intervalMs: number): void;
  /** the peak (heapUsed + external) seen since watch() */
  unwatch(): Promise<{ samples: number; peak: HeapSample }>;
  close(): Promise<void>;
}

/** Forks test/helpers/llmtap-harness.ts (startLlmtap in a child with --expose-gc) and talks to it over IPC. */
export async function startHarness(settings: HarnessSettings, timeoutMs = 15_000): Promise<Harness> {
  const child = fork(join(REPO_ROOT, 'test', 'helpers', 'llmtap-harness.ts'), [], {
    cwd: REPO_ROOT,
    execArgv: ['--expose-gc', '--import', 'tsx'],
    env: cleanEnv({ [HARNESS_SETTINGS_ENV]: JSON.stringify(settings) }),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = exitOf(child);
  const next = <T extends HarnessReply['type']>(type: T): Promise<Extract<HarnessReply, { type: T }>> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`harness: no "${type}" reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const onMessage = (raw: unknown): void => {
        const msg = raw as HarnessReply;
        if (msg.type === 'failed') {
          cleanup();
          reject(new Error(`harness failed: ${msg.message}`));
        } else if (msg.type === type) {
          cleanup();
          resolve(msg as Extract<HarnessReply, { type: T }>);
        }
      };
      const onExit = (): void => {
        cleanup();
        reject(new Error(`harness exited before "${type}"`));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  const ask = (msg: HarnessRequest): void => {
    child.send(msg);
  };
  let ready: { url: string };
  try {
    ready = await next('ready');
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    url: ready.url,
    async heap() {
      const r = next('heap');
      ask({ type: 'heap' });
      return (await r).sample;
    },
    watch(intervalMs) {
      ask({ type: 'watch', intervalMs });
    },
    async unwatch() {
      const r = next('watched');
      ask({ type: 'unwatch' });
      const m = await r;
      return { samples: m.samples, peak: m.peak };
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const closed = next('closed').catch(() => undefined);
      ask({ type: 'close' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await closed;
      await exited;
      clearTimeout(timer);
    },
  };
}
