// `npm run bench`: runs a fast mock upstream, a bare reference proxy and llmtap, loads each from a pinned process, prints the verdict.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { PLAN_ENV, type LoadPlan, type LoadResult } from './bench/load.ts';
import { buildReport, formatReport, type Role } from './bench/report.ts';
import { CHILD_ENV } from './bench/serve.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BENCH_DIR = join(ROOT, 'scripts', 'bench');
const EXIT_WITH_PARENT = pathToFileURL(join(BENCH_DIR, 'exit-with-parent.mjs')).href;
const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 15_000;
const READY_POLL_MS = 50;
const STOP_GRACE_MS = 3_000;
const MAX_LOAD_OUTPUT = 16 * 1024 * 1024;
/** Servers share one core, the load generator has the other: the proxy cannot borrow the client's CPU. */
const CPU = { servers: 1, load: 0 } as const;

const DEFAULTS = {
  durationS: 10,
  quickDurationS: 3,
  connections: 50,
  ttfbRequests: 300,
  ttfbWarmup: 30,
  // llmtap's first slice ran well below its later ones after a 1 s warm-up: it has more code to get optimised.
  warmupS: 2,
  // Many short rounds: the checks pair each round's slices, and the median of 8 rounds shrugs off a noisy one or two.
  slices: 8,
  settleMs: 500,
  llmtapEntry: join(ROOT, 'scripts', 'llmtap.mjs'),
} as const;

// ---------------------------------------------------------------------------------------------------------------
// Targets. Adding an llmtap variant is one line: a name, its role, and how to start it (command and env).

interface StartContext {
  upstreamUrl: string;
  port: number;
  llmtapEntry: string;
  /** an OTLP/HTTP sink in the bench process that accepts and discards exports */
  otlpSinkUrl: string;
  /** a loopback URL nothing listens on: a collector that is down */
  closedUrl: string;
}

interface ChildSpec {
  /** arguments to node */
  args: string[];
  env: Record<string, string>;
}

interface TargetDef {
  name: string;
  role: Role;
  /** how to start it on `ctx.port`; null means "the upstream itself" */
  start: ((ctx: StartContext) => ChildSpec) | null;
  /** compare this candidate with another target instead of the reference, with its own throughput limit */
  against?: { target: string; ratio: number };
  /** a control: the target it is a second copy of */
  twin?: string;
}

function shortPath(file: string): string {
  const rel = relative(ROOT, file);
  return rel && !rel.startsWith('..') ? rel : file;
}

// tsx's ESM hooks only: the full `--import tsx` also hooks CommonJS loading (undici, autocannon),
// and the reference proxy should carry nothing it does not need.
const benchScript = (file: string): string[] => ['--import', 'tsx/esm', join(BENCH_DIR, file)];

/** llmtap on the bench upstream; `extraEnv` is what makes a variant (telemetry, captures...). */
function llmtap(extraEnv: Record<string, string> = {}): (ctx: StartContext) => ChildSpec {
  return (ctx) => ({
    args: [ctx.llmtapEntry],
    // Telemetry and the usage store off unless a variant turns them on, so each variant measures its own feature.
    env: { LLMTAP_PORT: String(ctx.port), LLMTAP_OPENAI_URL: ctx.upstreamUrl, LLMTAP_LOG_LEVEL: 'warn', OTEL_SDK_DISABLED: 'true', LLMTAP_USAGE: 'off', ...extraEnv },
  });
}

let benchCaptureDir: string | null = null;
/** One temporary capture folder per bench run, deleted at exit. */
function captureDir(): string {
  if (!benchCaptureDir) {
    const dir = mkdtempSync(join(tmpdir(), 'llmtap-bench-captures-'));
    benchCaptureDir = dir;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return benchCaptureDir;
}

const TARGETS: readonly TargetDef[] = [
  { name: 'direct', role: 'baseline', start: null },
  {
    name: 'bare',
    role: 'reference',
    start: (ctx) => ({ args: benchScript('bare-proxy.ts'), env: { [CHILD_ENV.port]: String(ctx.port), [CHILD_ENV.upstream]: ctx.upstreamUrl } }),
  },
  { name: 'llmtap', role: 'candidate', start: llmtap() },
  // Captures into a fresh temporary folder (removed when the bench exits); issue 4 wants it within 15% of plain llmtap.
  {
    name: 'llmtap+captures',
    role: 'candidate',
    // Small files and few of them: rotation and pruning run during the bench, and the disk use stays bounded.
    start: (ctx) => llmtap({ LLMTAP_CAPTURE: 'on', LLMTAP_CAPTURE_DIR: captureDir(), LLMTAP_CAPTURE_MAX_FILE_MB: '16', LLMTAP_CAPTURE_MAX_FILES: '4' })(ctx),
    against: { target: 'llmtap', ratio: 0.85 },
  },
  // Full telemetry (issue 3): Prometheus metrics (own listener on a free port) and OTLP traces; within 10% of plain llmtap.
  { name: 'llmtap+otel', role: 'candidate', start: (ctx) => llmtap(otelEnv(ctx.otlpSinkUrl))(ctx), against: { target: 'llmtap', ratio: 0.9 } },
  { name: 'llmtap+otel (collector down)', role: 'candidate', start: (ctx) => llmtap(otelEnv(ctx.closedUrl))(ctx), against: { target: 'llmtap', ratio: 0.9 } },
  // llmtap again, unchanged: how far this run's noise alone moves a ratio between two identical processes.
  { name: 'llmtap (control)', role: 'control', start: llmtap(), twin: 'llmtap' },
];

function otelEnv(endpoint: string): Record<string, string> {
  return { OTEL_SDK_DISABLED: 'false', OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_PORT: '0', OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: endpoint };
}

/** Accepts OTLP/HTTP exports and throws them away, as a collector that keeps up would. */
function startOtlpSink(): Promise<{ url: string; close(): void }> {
  const server = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': req.headers['content-type'] === 'application/json' ? 'application/json' : 'application/x-protobuf' });
      res.end(req.headers['content-type'] === 'application/json' ? '{}' : '');
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => {
      server.unref();
      const a = server.address();
      resolve({ url: `http://${HOST}:${typeof a === 'object' && a ? a.port : 0}`, close: () => server.close() });
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Options

interface Options {
  durationS: number;
  connections: number;
  ttfbRequests: number;
  targets: TargetDef[];
  llmtapEntry: string;
  pin: boolean;
  json: boolean;
  help: boolean;
}

const USAGE = `Usage: npm run bench -- [options]

  --duration <s>        seconds per throughput run (default ${DEFAULTS.durationS}, 1 to 600)
  --quick               ${DEFAULTS.quickDurationS} s runs
  --connections <n>     concurrent connections of the throughput runs (default ${DEFAULTS.connections})
  --ttfb-requests <n>   sequential streamed requests per target for time to first byte (default ${DEFAULTS.ttfbRequests}, 10 to 10000)
  --targets <a,b,...>   which targets to run (default all: ${TARGETS.map((t) => t.name).join(', ')})
  --llmtap-entry <file> the llmtap entry point to start (default scripts/llmtap.mjs): to bench another build
  --no-pin              do not pin servers and load generator to separate CPUs
  --json                print the figures as JSON instead of the table
  --help
`;

/** A usage error: printed with the usage text, exit code 2. */
class UsageError extends Error {}

function boundedNumber(name: string, raw: string | undefined, fallback: number, min: number, max: number, integer: boolean): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${name} ${JSON.stringify(raw)}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
  }
  return n;
}

function parseOptions(argv: string[]): Options {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        duration: { type: 'string' },
        quick: { type: 'boolean', default: false },
        connections: { type: 'string' },
        'ttfb-requests': { type: 'string' },
        targets: { type: 'string' },
        'llmtap-entry': { type: 'string' },
        'no-pin': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const names = values.targets?.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names?.filter((n) => !TARGETS.some((t) => t.name === n)) ?? [];
  if (unknown.length) throw new UsageError(`--targets: unknown ${unknown.join(', ')} (known: ${TARGETS.map((t) => t.name).join(', ')})`);
  if (names && names.length === 0) throw new UsageError('--targets: name at least one target');
  return {
    durationS: boundedNumber('duration', values.duration, values.quick ? DEFAULTS.quickDurationS : DEFAULTS.durationS, 1, 600, false),
    connections: boundedNumber('connections', values.connections, DEFAULTS.connections, 1, 1000, true),
    ttfbRequests: boundedNumber('ttfb-requests', values['ttfb-requests'], DEFAULTS.ttfbRequests, 10, 10_000, true),
    targets: TARGETS.filter((t) => !names || names.includes(t.name)),
    llmtapEntry: values['llmtap-entry'] ? resolve(values['llmtap-entry']) : DEFAULTS.llmtapEntry,
    pin: !values['no-pin'],
    json: values.json,
    help: values.help,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Child processes: every one is tracked here and killed however the bench ends.

/** The bench itself failed (a server did not come up, the load generator broke): exit non-zero, show the log's end. */
class BenchError extends Error {
  constructor(message: string, readonly logFile: string | null) {
    super(message);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

interface Spawned {
  child: ChildProcess;
  /** name and command, for messages */
  label: string;
  logFile: string;
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

class Fleet {
  private readonly children = new Set<ChildProcess>();
  readonly logDir = mkdtempSync(join(tmpdir(), 'llmtap-bench-'));
  keepLogs = false;
  /** servers that died while the bench still needed them */
  readonly deaths: string[] = [];
  private readonly serverLogs = new Map<string, string>();
  private stopping = false;

  constructor(private readonly pinned: boolean) {}

  /**
   * Starts `node <args>` in its own process group (so stopping it takes its own children too), pinned to `cpu`.
   * stdin is a pipe that exit-with-parent.mjs, preloaded, watches: if this process is killed outright,
   * the children still go.
   */
  spawn(name: string, cpu: number, spec: ChildSpec, kind: 'server' | 'job'): Spawned {
    const label = `${name} (node ${spec.args.map(shortPath).join(' ')})`;
    const logFile = join(this.logDir, `${name.replace(/[^\w.+-]/g, '_')}.log`);
    // A server's output is kept for the post-mortem; a job's result comes on stdout and its progress on our stderr.
    const fd = kind === 'server' ? openSync(logFile, 'a') : null;
    const command = [...(this.pinned ? ['taskset', '-c', String(cpu)] : []), process.execPath, '--import', EXIT_WITH_PARENT];
    const env: NodeJS.ProcessEnv = {};
    // The user's own LLMTAP_* / OTEL_* settings would change what is measured: each target states its own.
    for (const [k, v] of Object.entries(process.env)) if (!/^(LLMTAP_|OTEL_)/.test(k)) env[k] = v;
    Object.assign(env, spec.env, { [CHILD_ENV.parentPipe]: '1' });
    const child = spawn(command[0]!, [...command.slice(1), ...spec.args], {
      cwd: ROOT,
      env,
      detached: true,
      stdio: fd === null ? ['pipe', 'pipe', 'inherit'] : ['pipe', fd, fd],
    });
    if (fd !== null) closeSync(fd);
    this.children.add(child);
    if (kind === 'server') this.serverLogs.set(label, logFile);
    child.on('error', () => {}); // spawn failures surface as an exit; the readiness wait reports them
    child.on('exit', (code, signal) => {
      if (kind === 'server' && !this.stopping) this.deaths.push(`${label} exited (${signal ?? `code ${code}`}); log: ${logFile}`);
    });
    return { child, label, logFile };
  }

  /** Waits until `port` accepts a TCP connection; bounded by READY_TIMEOUT_MS. */
  async ready({ child, label, logFile }: Spawned, port: number): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (let attempt = 0; attempt < READY_TIMEOUT_MS / READY_POLL_MS && Date.now() < deadline; attempt++) {
      if (!isRunning(child)) {
        throw new BenchError(`${label} exited (${child.signalCode ?? `code ${child.exitCode}`}) before accepting connections on ${HOST}:${port}`, logFile);
      }
      if (await accepts(port)) return;
      await sleep(READY_POLL_MS);
    }
    throw new BenchError(`${label} did not accept connections on ${HOST}:${port} within ${READY_TIMEOUT_MS / 1000} s`, logFile);
  }

  /**
   * What servers logged beyond their start-up line: at warn level, llmtap writing during a run is worth a look
   * (and writing costs time). Client aborts are expected: autocannon drops the requests in flight when a slice ends.
   */
  serverLogNotes(): { text: string; keep: boolean }[] {
    const notes: { text: string; keep: boolean }[] = [];
    for (const [label, logFile] of this.serverLogs) {
      let log = '';
      try {
        log = readFileSync(logFile, 'utf8');
      } catch {
        continue;
      }
      const lines = log.split('\n').filter((l) => l.trim() && !/ listening on http:\/\//.test(l));
      if (!lines.length) continue;
      const aborts = lines.filter((l) => l.includes('client_aborted')).length;
      const other = lines.find((l) => !l.includes('client_aborted'));
      const text = other
        ? `${label} logged ${lines.length} lines, kept in ${logFile}; the first that is not a client abort: ${other.slice(0, 300)}`
        : `${label} logged ${aborts} client aborts: expected, autocannon drops the requests in flight when a slice ends`;
      notes.push({ text, keep: Boolean(other) });
    }
    return notes;
  }

  /** SIGTERM to every process group, SIGKILL to those still there after STOP_GRACE_MS. */
  async stopAll(): Promise<void> {
    this.stopping = true;
    const alive = [...this.children].filter(isRunning);
    const exits = alive.map((c) => new Promise<void>((r) => c.once('exit', () => r())));
    for (const c of alive) signalGroup(c, 'SIGTERM');
    await Promise.race([Promise.all(exits), sleep(STOP_GRACE_MS)]);
    this.killNow();
    if (!this.keepLogs) rmSync(this.logDir, { recursive: true, force: true });
  }

  /** Synchronous last resort, for process 'exit'. */
  killNow(): void {
    this.stopping = true;
    for (const c of this.children) if (isRunning(c)) signalGroup(c, 'SIGKILL');
  }
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** taskset is there and both CPUs may be used by this process. */
function pinningWorks(): { ok: true } | { ok: false; why: string } {
  if (availableParallelism() < 2) return { ok: false, why: `only ${availableParallelism()} CPU available` };
  const probe = spawnSync('taskset', ['-c', `${CPU.load},${CPU.servers}`, process.execPath, '-e', ''], { stdio: 'ignore', timeout: 10_000 });
  if (probe.error) return { ok: false, why: `taskset: ${(probe.error as NodeJS.ErrnoException).code ?? probe.error.message}` };
  if (probe.status !== 0) return { ok: false, why: `taskset -c ${CPU.load},${CPU.servers} exited ${probe.status}` };
  return { ok: true };
}

// ---------------------------------------------------------------------------------------------------------------
// The run

/** The node process behind a spawned server (taskset execs it in place, so the pid is the same). */
function pidsOf(s: Spawned): number[] {
  return s.child.pid ? [s.child.pid] : [];
}

function isLoadResult(value: unknown): value is LoadResult {
  if (typeof value !== 'object' || value === null) return false;
  const targets = (value as { targets?: unknown }).targets;
  return Array.isArray(targets) && targets.every((t: unknown) => typeof t === 'object' && t !== null && 'name' in t && 'runs' in t && 'sanity' in t);
}

async function runLoad(fleet: Fleet, plan: LoadPlan): Promise<LoadResult> {
  const perRunS = plan.durationS + plan.warmupS + plan.slices * (1 + plan.settleMs / 1000);
  // Throughput runs, the ttfb loop's own 120 s cap, and start-up: past this the load generator is hung.
  const timeoutMs = (plan.targets.length * 2 * perRunS + 120 + 60) * 1000;
  const { child } = fleet.spawn('load', CPU.load, { args: benchScript('load.ts'), env: { [PLAN_ENV]: JSON.stringify(plan) } }, 'job');
  const chunks: Buffer[] = [];
  let size = 0;
  child.stdout?.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_LOAD_OUTPUT) chunks.push(chunk);
  });
  const exit = await new Promise<{ code: number | null; timedOut: boolean }>((resolveExit) => {
    const timer = setTimeout(() => {
      signalGroup(child, 'SIGKILL');
      resolveExit({ code: null, timedOut: true });
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolveExit({ code, timedOut: false });
    });
  });
  if (exit.timedOut) throw new BenchError(`the load generator did not finish within ${timeoutMs / 1000} s`, null);
  if (exit.code !== 0) throw new BenchError(`the load generator failed (exit code ${exit.code})`, null);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BenchError('the load generator printed no readable result', null);
  }
  if (!isLoadResult(parsed)) throw new BenchError('the load generator\'s result has an unexpected shape', null);
  return parsed;
}

async function main(argv: string[]): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`bench: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }

  // Read before this process pins itself to one CPU below.
  const machineCpus = availableParallelism();
  let pinned = false;
  if (options.pin) {
    const probe = pinningWorks();
    pinned = probe.ok;
    if (!probe.ok) process.stderr.write(`bench: warning: cannot pin to CPUs (${probe.why}); running unpinned, figures will be noisier\n`);
  }

  // This process hosts the OTLP sink, which stands for a collector on another machine: it must not take the
  // servers' CPU, so it shares the load generator's.
  if (pinned) spawnSync('taskset', ['-a', '-p', '-c', String(CPU.load), String(process.pid)], { stdio: 'ignore', timeout: 10_000 });
  const fleet = new Fleet(pinned);
  let interrupted = false;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (interrupted) return;
      interrupted = true;
      process.stderr.write(`\nbench: ${signal}: stopping the servers\n`);
      void fleet.stopAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
  process.on('exit', () => fleet.killNow());

  try {
    const upstreamPort = await freePort();
    const upstreamSpec: ChildSpec = { args: benchScript('fast-upstream.ts'), env: { [CHILD_ENV.port]: String(upstreamPort) } };
    const upstream = fleet.spawn('upstream', CPU.servers, upstreamSpec, 'server');
    await fleet.ready(upstream, upstreamPort);
    const upstreamUrl = `http://${HOST}:${upstreamPort}`;

    const sink = await startOtlpSink();
    const closedUrl = `http://${HOST}:${await freePort()}`;
    const targets: LoadPlan['targets'] = [];
    for (const def of options.targets) {
      if (!def.start) {
        targets.push({ name: def.name, origin: upstreamUrl, pids: pidsOf(upstream) });
        continue;
      }
      const port = await freePort();
      const spec = def.start({ upstreamUrl, port, llmtapEntry: options.llmtapEntry, otlpSinkUrl: sink.url, closedUrl });
      const started = fleet.spawn(def.name, CPU.servers, spec, 'server');
      await fleet.ready(started, port);
      // The upstream's CPU counts too: it shares the servers' core, and a proxy that makes it work harder costs that.
      targets.push({ name: def.name, origin: `http://${HOST}:${port}`, pids: [...pidsOf(started), ...pidsOf(upstream)] });
    }

    const plan: LoadPlan = {
      targets,
      durationS: options.durationS,
      warmupS: DEFAULTS.warmupS,
      connections: options.connections,
      ttfbRequests: options.ttfbRequests,
      ttfbWarmup: DEFAULTS.ttfbWarmup,
      slices: DEFAULTS.slices,
      settleMs: DEFAULTS.settleMs,
    };
    const aboutS = Math.ceil(targets.length * 2 * (options.durationS + DEFAULTS.warmupS + (DEFAULTS.slices * DEFAULTS.settleMs) / 1000) + targets.length * 0.003 * (options.ttfbRequests + DEFAULTS.ttfbWarmup));
    process.stderr.write(`bench: ${['upstream', ...targets.filter((t) => t.origin !== upstreamUrl).map((t) => t.name)].join(', ')} up; running for about ${aboutS} s\n`);
    const result = await runLoad(fleet, plan);

    const report = buildReport(result, {
      node: process.version,
      cpus: machineCpus,
      pinned,
      durationS: options.durationS,
      connections: options.connections,
      ttfbRequests: options.ttfbRequests,
      roles: Object.fromEntries(options.targets.map((t) => [t.name, t.role])),
      against: Object.fromEntries(options.targets.flatMap((t) => (t.against && options.targets.some((o) => o.name === t.against!.target) ? [[t.name, t.against]] : []))),
      controls: Object.fromEntries(options.targets.flatMap((t) => (t.twin && options.targets.some((o) => o.name === t.twin) ? [[t.name, t.twin]] : []))),
    });
    const deaths = [...fleet.deaths];
    const logNotes = fleet.serverLogNotes();
    const json = { ...report, deaths, logNotes: logNotes.map((n) => n.text) };
    process.stdout.write(options.json ? `${JSON.stringify(json, null, 2)}\n` : `\n${formatReport(report)}\n`);
    for (const death of deaths) process.stderr.write(`bench: warning: ${death}\n`);
    for (const note of logNotes) process.stderr.write(`bench: note: ${note.text}\n`);
    if (deaths.length || logNotes.some((n) => n.keep)) fleet.keepLogs = true;
    await fleet.stopAll();
    // A missed target is a finding, not a failure of the bench: the exit code stays 0.
    return 0;
  } catch (err) {
    // Interrupted: the signal handler is already stopping everything, and what failed did so because of it.
    if (interrupted) return 130;
    fleet.keepLogs = true;
    if (err instanceof BenchError) {
      process.stderr.write(`bench: ${err.message}\n`);
      if (err.logFile) process.stderr.write(`--- last lines of ${err.logFile} ---\n${tail(err.logFile, 20)}\n---\n`);
    } else {
      process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    }
    await fleet.stopAll();
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
