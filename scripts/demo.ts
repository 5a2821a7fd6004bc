// `npm run demo`: llmtap in front of the built-in simulated LLM, a few requests through it, and what llmtap recorded.
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig, SETTINGS, type CliAction, type Config, type ConfigSources } from '../src/config.ts';
import type { ExchangeRecord } from '../src/exchange/record.ts';
import { startSimulator, type RunningSimulator } from '../src/simulator/index.ts';
import { startLlmtap, type RunningLlmtap } from '../src/start.ts';
import { ALL_FEATURES } from '../src/feature-list.ts';

/**
 * Settings the demo prefers when the user has not chosen: quiet logs so the table stays readable, and
 * captures on so there is something to inspect. They sit under the user's environment, so
 * LLMTAP_LOG_LEVEL=info npm run demo still wins; names this build does not know are ignored by loadConfig.
 */
const DEMO_ENV_DEFAULTS: Record<string, string> = { LLMTAP_LOG_LEVEL: 'warn', LLMTAP_CAPTURE: 'on' };

// How long to wait for the bus to hand over the records of the demo's own requests.
const RECORD_WAIT_MS = 3000;
const REQUEST_TIMEOUT_MS = 15_000;

const useColour = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
const paint = (code: string) => (s: string): string => (useColour ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = paint('1');
const dim = paint('2');
const green = paint('32');
const red = paint('31');
const yellow = paint('33');
const cyan = paint('36');

const say = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

interface DemoRequest {
  label: string;
  path: string;
  headers?: Record<string, string>;
  body: Record<string, unknown>;
}

const REQUESTS: readonly DemoRequest[] = [
  {
    label: 'OpenAI chat, streamed',
    path: '/v1/chat/completions',
    headers: { authorization: 'Bearer sk-demo' },
    body: { model: 'sim-gpt', messages: [{ role: 'user', content: 'What does llmtap record?' }], stream: true },
  },
  {
    label: 'OpenAI chat',
    path: '/v1/chat/completions',
    headers: { authorization: 'Bearer sk-demo' },
    body: { model: 'sim-gpt-mini', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }] },
  },
  {
    label: 'Anthropic messages, streamed',
    path: '/v1/messages',
    headers: { 'x-api-key': 'sk-ant-demo', 'anthropic-version': '2023-06-01' },
    body: { model: 'sim-claude', max_tokens: 256, messages: [{ role: 'user', content: 'How do I point my client at llmtap?' }], stream: true },
  },
  {
    label: 'Ollama chat, streamed',
    path: '/api/chat',
    body: { model: 'sim-llama', messages: [{ role: 'user', content: 'Why is the first token slower?' }] },
  },
  {
    label: 'OpenAI embeddings',
    path: '/v1/embeddings',
    headers: { authorization: 'Bearer sk-demo' },
    body: { model: 'sim-embed', input: ['llmtap records every exchange', 'tokens in, tokens out'] },
  },
];

interface ClientResult {
  request: DemoRequest;
  status: number | null;
  traceId: string | null;
  error: string | null;
}

async function send(proxyUrl: string, request: DemoRequest): Promise<ClientResult> {
  try {
    const res = await fetch(`${proxyUrl}${request.path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...request.headers },
      body: JSON.stringify(request.body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    // Read to the end: the exchange is recorded once the last byte has reached the client.
    await res.arrayBuffer();
    return { request, status: res.status, traceId: res.headers.get('x-llmtap-trace-id'), error: null };
  } catch (err) {
    return { request, status: null, traceId: null, error: (err as Error).message };
  }
}

const COLUMNS = [
  ['dialect', 9],
  ['operation', 15],
  ['model', 13],
  ['stream', 6],
  ['status', 6],
  ['outcome', 20],
  ['ttft', 7],
  ['duration', 8],
  ['tokens in/out', 13],
  ['usage', 0],
] as const;

function row(cells: readonly string[]): string {
  return cells
    .map((c, i) => {
      const width = COLUMNS[i]?.[1] ?? 0;
      const right = i === 6 || i === 7;
      return width === 0 ? c : right ? c.padStart(width) : c.padEnd(width);
    })
    .join('  ');
}

const ms = (v: number | null): string => (v === null ? '-' : `${Math.round(v)}ms`);
const count = (v: number | null): string => (v === null ? '-' : String(v));

/** One line per exchange, from the record alone: the demo shows what llmtap really saw. */
function recordRow(r: ExchangeRecord): string {
  const outcome = r.outcome === 'ok' && r.status !== null && r.status < 400 ? green(r.outcome.padEnd(20)) : red(r.outcome.padEnd(20));
  const source = r.usage.source === 'reported' ? r.usage.source : yellow(r.usage.source);
  const notes = [r.usageInjected ? 'usage asked by llmtap' : '', r.stream && !r.streamComplete ? red('stream cut short') : '']
    .filter(Boolean)
    .join(', ');
  return row([
    r.dialect,
    r.operation ?? '-',
    r.model.length > 13 ? `${r.model.slice(0, 12)}…` : r.model,
    r.stream ? 'yes' : 'no',
    r.status === null ? '-' : String(r.status),
    outcome,
    ms(r.timings.ttft),
    ms(r.timings.duration),
    `${count(r.usage.input)} / ${count(r.usage.output)}`,
    notes ? `${source} (${notes})` : source,
  ]);
}

/** A config setting's current value by its environment name, or undefined when this build has no such setting. */
function setting(config: Config, env: string): unknown {
  const spec = SETTINGS.find((s) => s.env === env);
  return spec ? (config as unknown as Record<string, unknown>)[spec.key] : undefined;
}

const hasSetting = (env: string): boolean => SETTINGS.some((s) => s.env === env);

interface DemoContext {
  proxyUrl: string;
  simUrl: string;
  config: Config;
  results: readonly ClientResult[];
  records: readonly ExchangeRecord[];
}

/** Whether llmtap itself answers a GET on `path` (a forwarded request would come back from the simulator). */
async function llmtapServes(proxyUrl: string, path: string): Promise<number | null> {
  try {
    const res = await fetch(`${proxyUrl}${path}`, { signal: AbortSignal.timeout(3000) });
    await res.arrayBuffer();
    if (res.headers.get('server') === 'llmtap-simulator' || res.status === 404) return null;
    return res.status;
  } catch {
    return null;
  }
}

/**
 * The "where to look" pointers, one per feature. Each says how to use its feature when this build has it,
 * or null (printed as "not enabled in this build"). A new feature adds its entry here.
 */
interface Pointer {
  label: string;
  /** what the user gets once the feature exists, for the "not enabled" line */
  arrives: string;
  /** paths probed on the proxy; records of these probes are left out of the table */
  probes?: readonly string[];
  lines(ctx: DemoContext): Promise<string[] | null>;
}

const POINTERS: readonly Pointer[] = [
  {
    label: 'metrics',
    arrives: 'Prometheus metrics at /metrics',
    probes: ['/metrics'],
    async lines({ proxyUrl }) {
      return (await llmtapServes(proxyUrl, '/metrics')) === 200 ? [`curl ${proxyUrl}/metrics`] : null;
    },
  },
  {
    label: 'traces',
    arrives: 'OpenTelemetry tracing, exported as OTEL_TRACES_EXPORTER says',
    async lines({ results, records }) {
      const traced = results.some((r) => r.traceId) || records.some((r) => r.traceId);
      if (!traced) return null;
      const id = results.find((r) => r.traceId)?.traceId ?? records.find((r) => r.traceId)?.traceId;
      return [
        `every response carries x-llmtap-trace-id${id ? ` (e.g. ${id})` : ''}`,
        'OTEL_TRACES_EXPORTER=console npm run demo   prints the spans; otlp or jaeger sends them to a collector',
      ];
    },
  },
  {
    label: 'captures',
    arrives: 'CBOR wire captures, LLMTAP_CAPTURE=on',
    async lines({ config }) {
      if (!hasSetting('LLMTAP_CAPTURE')) return null;
      const dir = String(setting(config, 'LLMTAP_CAPTURE_DIR') ?? './captures');
      return setting(config, 'LLMTAP_CAPTURE') === true
        ? [`written to ${dir} (llmtap-*.cbor)`, `npm run inspect -- ${dir}   then --show <id>, --detect-issues, --stats, --har out.har, --follow`]
        : ['off in this run', `LLMTAP_CAPTURE=on npm run demo, then npm run inspect -- ${dir}`];
    },
  },
  {
    label: 'usage',
    arrives: 'the usage API at /v1/usage/*',
    probes: ['/v1/usage/recent?limit=5'],
    async lines({ proxyUrl }) {
      if ((await llmtapServes(proxyUrl, '/v1/usage/recent?limit=5')) !== 200) return null;
      return [
        `open ${proxyUrl}/dashboard   live page: active exchanges, per-model totals, ttft and tokens/s`,
        `npm run top -- --url ${proxyUrl}   the same in the terminal, like top`,
        `curl ${proxyUrl}/v1/usage/stats   totals, p50/p95/p99, per model and upstream (?model= &since=1h ...)`,
        `curl '${proxyUrl}/v1/usage/export?format=csv'   every record; also /v1/usage/recent, /v1/diagnostics/activity`,
      ];
    },
  },
  {
    label: 'health',
    arrives: 'GET /health',
    probes: ['/health'],
    async lines({ proxyUrl }) {
      const status = await llmtapServes(proxyUrl, '/health');
      return status === 200 || status === 503 ? [`curl ${proxyUrl}/health   ${status === 200 ? '200: every upstream answers' : '503: names the upstream that does not answer'}`] : null;
    },
  },
];

const PROBE_PATHS = new Set(POINTERS.flatMap((p) => p.probes ?? []));

async function whereToLook(ctx: DemoContext): Promise<string[]> {
  const { proxyUrl } = ctx;
  const json = "-H 'content-type: application/json'";
  const out = [
    bold('where to look'),
    `  proxy       ${cyan(proxyUrl)}   (simulated upstream: ${ctx.simUrl})`,
    '',
    `  ${bold('try it yourself')} (every call shows up in the table above as it finishes)`,
    `  openai      curl -N ${proxyUrl}/v1/chat/completions ${json} -d '{"model":"sim-gpt","messages":[{"role":"user","content":"hi"}],"stream":true}'`,
    `  anthropic   curl -N ${proxyUrl}/v1/messages ${json} -H 'anthropic-version: 2023-06-01' -d '{"model":"sim-claude","max_tokens":256,"messages":[{"role":"user","content":"hi"}],"stream":true}'`,
    `  ollama      curl -N ${proxyUrl}/api/chat -d '{"model":"sim-llama","messages":[{"role":"user","content":"hi"}]}'`,
    `  embeddings  curl ${proxyUrl}/v1/embeddings ${json} -d '{"model":"sim-embed","input":"hello"}'`,
    '',
    `  ${bold('from code')}`,
    `  openai      new OpenAI({ baseURL: '${proxyUrl}/v1', apiKey: 'sk-demo' })`,
    `  anthropic   new Anthropic({ baseURL: '${proxyUrl}', apiKey: 'sk-ant-demo' })`,
    `  ollama      new Ollama({ host: '${proxyUrl}' })`,
    '',
    `  ${bold('telemetry')}`,
  ];
  for (const pointer of POINTERS) {
    const lines = await pointer.lines(ctx);
    const label = pointer.label.padEnd(10);
    if (!lines) {
      out.push(`  ${label}  ${dim(`not enabled in this build; arrives with ${pointer.arrives}`)}`);
      continue;
    }
    lines.forEach((line, i) => out.push(`  ${i === 0 ? label : ' '.repeat(10)}  ${line}`));
  }
  return out;
}

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

// startLlmtap reports a taken port as a ConfigError whose message says so; older errors carry the errno code.
const isAddressInUse = (err: unknown): boolean =>
  (err as NodeJS.ErrnoException | null)?.code === 'EADDRINUSE' || /EADDRINUSE|already in use/i.test(String((err as Error | null)?.message));

async function main(): Promise<number> {
  const sources: ConfigSources = { env: { ...DEMO_ENV_DEFAULTS, ...process.env }, argv: process.argv.slice(2) };
  // Validate the user's settings (and answer --help) before anything starts listening.
  let action: CliAction;
  try {
    action = loadConfig(sources);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  if (action.kind === 'help') {
    say('npm run demo [-- options]: llmtap in front of a built-in simulated LLM. Options as for llmtap:\n');
    say(action.text);
    return 0;
  }
  if (action.kind === 'version') {
    say(readVersion());
    return 0;
  }

  const sim = await startSimulator();
  const again = loadConfig({ ...sources, overrides: { openaiUrl: sim.url, anthropicUrl: sim.url, ollamaUrl: sim.url } });
  if (again.kind !== 'run') throw new Error('unreachable: the same settings parsed differently');
  const config = again.config;

  let proxy: RunningLlmtap;
  try {
    proxy = await startLlmtap(config, { features: ALL_FEATURES, env: process.env });
  } catch (err) {
    await sim.close();
    if (isAddressInUse(err)) {
      process.stderr.write(
        `llmtap demo: port ${config.port} on ${config.host} is already in use; try LLMTAP_PORT=${config.port < 65535 ? config.port + 1 : 7879} npm run demo (or LLMTAP_PORT=0 for any free port)\n`,
      );
      return 1;
    }
    process.stderr.write(`llmtap demo: llmtap did not start: ${(err as Error).message}\n`);
    return 1;
  }
  return run(sim, proxy, config);
}

async function run(sim: RunningSimulator, proxy: RunningLlmtap, config: Config): Promise<number> {
  const records: ExchangeRecord[] = [];
  let printing = false;
  let wake: (() => void) | null = null;
  proxy.bus.subscribe({
    name: 'demo',
    onEnd(record) {
      if (record.method === 'GET' && PROBE_PATHS.has(record.url)) return;
      records.push(record);
      if (printing) say(`  ${recordRow(record)}`);
      wake?.();
    },
  });

  say(`${bold('llmtap demo')} ${dim(`v${readVersion()}`)}`);
  say(`  simulated LLM  ${sim.url}   ${dim('OpenAI, Anthropic and Ollama dialects; canned answers, no network, no API key')}`);
  say(`  llmtap proxy   ${cyan(proxy.url)}   ${dim('all three upstreams point at the simulator')}`);
  say();
  say(`sending ${REQUESTS.length} requests through the proxy: ${REQUESTS.map((r) => r.label).join('; ')}`);
  say();
  say(`  ${bold(row(COLUMNS.map(([name]) => name)))}`);
  printing = true;

  // Staggered a little so the streams overlap, as real traffic does, without arriving in one burst.
  const results = await Promise.all(
    REQUESTS.map(async (request, i) => {
      await new Promise((resolve) => setTimeout(resolve, i * 100));
      return send(proxy.url, request);
    }),
  );

  const deadline = Date.now() + RECORD_WAIT_MS;
  while (records.length < REQUESTS.length && Date.now() < deadline) {
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, 100);
    });
  }
  wake = null;
  for (const r of results) {
    if (r.error) say(`  ${red('✗')} ${r.request.label}: the client got no answer (${r.error})`);
  }
  if (records.length < REQUESTS.length) {
    say(`  ${yellow(`${records.length} of ${REQUESTS.length} exchanges were recorded within ${RECORD_WAIT_MS / 1000}s`)}`);
  }
  say();

  for (const line of await whereToLook({ proxyUrl: proxy.url, simUrl: sim.url, config, results, records })) say(line);
  say();
  say(dim('serving until Ctrl-C; new exchanges are added to the table as they finish'));

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        // A second Ctrl-C means "now": skip the grace period.
        process.exit(130);
      }
      stopping = true;
      const n = proxy.inFlight();
      say();
      say(`${signal}: closing llmtap${n > 0 ? ` (letting ${n} exchange${n === 1 ? '' : 's'} finish)` : ''} and the simulator`);
      void (async () => {
        try {
          await proxy.close();
        } finally {
          await sim.close();
        }
        say('bye');
        resolve(0);
      })().catch((err: unknown) => {
        process.stderr.write(`llmtap demo: shutdown failed: ${(err as Error).message}\n`);
        resolve(1);
      });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`llmtap demo: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
