// The one reader of settings: CLI flags > environment > config file > defaults, validated and frozen.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { httpUrl, parseUpstreamSpecs, UpstreamSpecError, type UpstreamSpec } from './upstreams/spec.ts';

type Kind = 'string' | 'url' | 'int' | 'number' | 'switch' | 'enum' | 'list' | 'path';

interface SettingSpec<K extends keyof Config = keyof Config> {
  key: K;
  env: string;
  flag: string;
  kind: Kind;
  help: string;
  /** what is allowed, in words, for the one-line error */
  allowed: string;
  schema: z.ZodType<Config[K]>;
}

export interface Config {
  host: string;
  port: number;
  openaiUrl: string;
  anthropicUrl: string;
  ollamaUrl: string;
  maxBodyMb: number;
  connectTimeoutMs: number;
  upstreamTimeoutMs: number;
  streamIdleMs: number;
  streamUsage: boolean;
  shutdownGraceMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** telemetry: most distinct model values a metric keeps before counting the rest as 'other' */
  metricsMaxModels: number;
  /** wire captures (CONTRACT §4) */
  capture: boolean;
  captureDir: string;
  captureMaxFileMb: number;
  captureMaxFiles: number;
  /** extra header names to redact, lower-cased, beside the built-in credential list */
  captureRedact: string[];
  captureBodies: boolean;
  /** usage store and API (CONTRACT §5) */
  usage: boolean;
  usageFile: string;
  usageFlushMs: number;
  usageMaxRecords: number;
  /** a JSON/YAML price table overriding the built-in one; '' for none */
  prices: string;
  /** '' = admin endpoints answer loopback clients only */
  adminToken: string;
  /** several upstreams (the config file's `upstreams:` list); null: the single upstream per dialect above */
  upstreams: readonly UpstreamSpec[] | null;
  routingStrategy: RoutingStrategy;
  /** how long a request may wait for a free slot at an upstream at its max_concurrent (503 past it) */
  queueTimeoutMs: number;
  /** requests waiting per upstream, unless its entry sets max_queue (503 past it) */
  queueMax: number;
  /** per-client token bucket; null: no limit */
  rateLimit: RateLimit | null;
  /** upstream health probes: how often */
  healthIntervalMs: number;
  /** circuit breaker: consecutive failures that open it, cool-down before half-open, successes that close it */
  breakerFailures: number;
  breakerCooldownMs: number;
  breakerSuccesses: number;
  /** how long models discovered from an upstream (/v1/models, /api/tags) are trusted */
  modelsTtlMs: number;
  /** the config file read, if any (LLMTAP_CONFIG / --config) */
  configFile: string | null;
}

export type RoutingStrategy = 'least_busy' | 'round_robin' | 'weighted';

export interface RateLimit {
  /** bucket size: requests a client may make at once */
  requests: number;
  /** the bucket refills completely over this many ms */
  perMs: number;
  /** as written ("60/min") */
  text: string;
}

export const DEFAULTS: Readonly<Config> = Object.freeze({
  host: '127.0.0.1',
  port: 7878,
  openaiUrl: 'https://api.openai.com',
  anthropicUrl: 'https://api.anthropic.com',
  ollamaUrl: 'http://127.0.0.1:11434',
  maxBodyMb: 32,
  connectTimeoutMs: 10_000,
  upstreamTimeoutMs: 600_000,
  streamIdleMs: 300_000,
  streamUsage: true,
  shutdownGraceMs: 10_000,
  logLevel: 'info',
  metricsMaxModels: 100,
  capture: false,
  captureDir: './captures',
  captureMaxFileMb: 64,
  captureMaxFiles: 20,
  captureRedact: [],
  captureBodies: true,
  usage: true,
  usageFile: './data/usage.json',
  usageFlushMs: 1000,
  usageMaxRecords: 50_000,
  prices: '',
  adminToken: '',
  upstreams: null,
  routingStrategy: 'least_busy',
  queueTimeoutMs: 30_000,
  queueMax: 100,
  rateLimit: null,
  healthIntervalMs: 10_000,
  breakerFailures: 5,
  breakerCooldownMs: 30_000,
  breakerSuccesses: 2,
  modelsTtlMs: 300_000,
  configFile: null,
});

const SWITCH_ON = ['on', 'true', '1', 'yes'];
const SWITCH_OFF = ['off', 'false', '0', 'no'];
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const ROUTING_STRATEGIES = ['least_busy', 'round_robin', 'weighted'] as const;

/** A number given as a number (file) or as digits (env, flag); anything else is refused, never coerced. */
const numeric = (pattern: RegExp) =>
  z.union([z.number(), z.string().trim().regex(pattern).transform(Number)]).pipe(z.number().finite());
const int = (min: number, max: number) => numeric(/^-?\d+$/).pipe(z.number().int().min(min).max(max));
const decimal = (min: number, max: number) => numeric(/^-?(\d+\.?\d*|\.\d+)$/).pipe(z.number().min(min).max(max));
const onOff = z
  .union([z.boolean(), z.string()])
  .transform((v, ctx) => {
    if (typeof v === 'boolean') return v;
    const s = v.trim().toLowerCase();
    if (SWITCH_ON.includes(s)) return true;
    if (SWITCH_OFF.includes(s)) return false;
    ctx.addIssue({ code: 'custom', message: 'on or off' });
    return z.NEVER;
  });

/** Comma-separated header names (env, flag) or a list (file); lower-cased, empty entries dropped. */
const headerList = z.union([z.string(), z.array(z.string())]).transform((v, ctx) => {
  const items = (Array.isArray(v) ? v : v.split(',')).map((x) => x.trim().toLowerCase()).filter(Boolean);
  const bad = items.find((x) => !/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(x));
  if (bad) {
    ctx.addIssue({ code: 'custom', message: `"${bad}" is not a header name` });
    return z.NEVER;
  }
  return items;
});
const PERIODS: Record<string, number> = { s: 1000, sec: 1000, second: 1000, m: 60_000, min: 60_000, minute: 60_000, h: 3_600_000, hour: 3_600_000, d: 86_400_000, day: 86_400_000 };
/** "60/min", "5/s", "1000/h"; off, none or empty for no limit. */
const rateLimit = z.union([z.null(), z.string()]).transform((v, ctx): RateLimit | null => {
  const s = (v ?? '').trim().toLowerCase();
  if (s === '' || s === 'off' || s === 'none') return null;
  const m = /^(\d+)\s*\/\s*([a-z]+)$/.exec(s);
  const perMs = m ? PERIODS[m[2]!] : undefined;
  if (!m || perMs === undefined || Number(m[1]) < 1 || Number(m[1]) > 1_000_000_000) {
    ctx.addIssue({ code: 'custom', message: 'N/s, N/min or N/h' });
    return z.NEVER;
  }
  return { requests: Number(m[1]), perMs, text: s };
});
const path = z.string().trim().min(1);
const optionalPath = z.string().trim();

function spec<K extends keyof Config>(s: SettingSpec<K>): SettingSpec<K> {
  return s;
}

/** Every setting, in the order `llmtap --help` lists them. Later features add theirs here. */
export const SETTINGS = [
  spec({ key: 'host', env: 'LLMTAP_HOST', flag: 'host', kind: 'string', help: 'address to listen on', allowed: 'a host name or IP address', schema: z.string().min(1) }),
  spec({ key: 'port', env: 'LLMTAP_PORT', flag: 'port', kind: 'int', help: 'port to listen on (0 picks a free one)', allowed: 'an integer from 0 to 65535', schema: int(0, 65535) }),
  spec({ key: 'openaiUrl', env: 'LLMTAP_OPENAI_URL', flag: 'openai-url', kind: 'url', help: 'upstream for /v1/* (OpenAI dialect)', allowed: 'an http(s) URL', schema: httpUrl }),
  spec({ key: 'anthropicUrl', env: 'LLMTAP_ANTHROPIC_URL', flag: 'anthropic-url', kind: 'url', help: 'upstream for /v1/messages (Anthropic dialect)', allowed: 'an http(s) URL', schema: httpUrl }),
  spec({ key: 'ollamaUrl', env: 'LLMTAP_OLLAMA_URL', flag: 'ollama-url', kind: 'url', help: 'upstream for /api/* (Ollama dialect)', allowed: 'an http(s) URL', schema: httpUrl }),
  spec({ key: 'maxBodyMb', env: 'LLMTAP_MAX_BODY_MB', flag: 'max-body-mb', kind: 'number', help: 'largest client request body accepted, in MB (413 past it)', allowed: 'a number from 0.001 to 4096', schema: decimal(0.001, 4096) }),
  spec({ key: 'connectTimeoutMs', env: 'LLMTAP_CONNECT_TIMEOUT_MS', flag: 'connect-timeout-ms', kind: 'int', help: 'time to open a connection to an upstream (502 past it)', allowed: 'an integer from 1 to 600000', schema: int(1, 600_000) }),
  spec({ key: 'upstreamTimeoutMs', env: 'LLMTAP_UPSTREAM_TIMEOUT_MS', flag: 'upstream-timeout-ms', kind: 'int', help: 'time to wait for the upstream response head (504 past it)', allowed: 'an integer from 1 to 86400000', schema: int(1, 86_400_000) }),
  spec({ key: 'streamIdleMs', env: 'LLMTAP_STREAM_IDLE_MS', flag: 'stream-idle-ms', kind: 'int', help: 'longest silence inside a response body before it is ended (outcome upstream_idle)', allowed: 'an integer from 1 to 86400000', schema: int(1, 86_400_000) }),
  spec({ key: 'streamUsage', env: 'LLMTAP_STREAM_USAGE', flag: 'stream-usage', kind: 'switch', help: 'ask OpenAI-dialect streams for usage and hide it from clients that did not ask', allowed: 'on or off', schema: onOff }),
  spec({ key: 'shutdownGraceMs', env: 'LLMTAP_SHUTDOWN_GRACE_MS', flag: 'shutdown-grace-ms', kind: 'int', help: 'on SIGTERM/SIGINT, how long in-flight exchanges may finish', allowed: 'an integer from 0 to 3600000', schema: int(0, 3_600_000) }),
  spec({ key: 'logLevel', env: 'LLMTAP_LOG_LEVEL', flag: 'log-level', kind: 'enum', help: 'log level', allowed: LOG_LEVELS.join(', '), schema: z.enum(LOG_LEVELS) }),
  spec({ key: 'metricsMaxModels', env: 'LLMTAP_METRICS_MAX_MODELS', flag: 'metrics-max-models', kind: 'int', help: "distinct model values kept in metric labels; the rest count as 'other'", allowed: 'an integer from 1 to 10000', schema: int(1, 10_000) }),
  spec({ key: 'capture', env: 'LLMTAP_CAPTURE', flag: 'capture', kind: 'switch', help: 'write every exchange to CBOR wire captures', allowed: 'on or off', schema: onOff }),
  spec({ key: 'captureDir', env: 'LLMTAP_CAPTURE_DIR', flag: 'capture-dir', kind: 'path', help: 'folder for capture files', allowed: 'a folder path', schema: path }),
  spec({ key: 'captureMaxFileMb', env: 'LLMTAP_CAPTURE_MAX_FILE_MB', flag: 'capture-max-file-mb', kind: 'number', help: 'a capture file is closed and a new one started past this size', allowed: 'a number from 0.01 to 65536', schema: decimal(0.01, 65_536) }),
  spec({ key: 'captureMaxFiles', env: 'LLMTAP_CAPTURE_MAX_FILES', flag: 'capture-max-files', kind: 'int', help: 'oldest capture files are deleted past this count', allowed: 'an integer from 1 to 100000', schema: int(1, 100_000) }),
  spec({ key: 'captureRedact', env: 'LLMTAP_CAPTURE_REDACT', flag: 'capture-redact', kind: 'list', help: 'more header names never written to captures (comma-separated)', allowed: 'comma-separated header names', schema: headerList }),
  spec({ key: 'captureBodies', env: 'LLMTAP_CAPTURE_BODIES', flag: 'capture-bodies', kind: 'switch', help: 'write request and response bodies to captures (off: heads and timings only)', allowed: 'on or off', schema: onOff }),
  spec({ key: 'usage', env: 'LLMTAP_USAGE', flag: 'usage', kind: 'switch', help: 'keep per-exchange usage records and serve the usage API', allowed: 'on or off', schema: onOff }),
  spec({ key: 'usageFile', env: 'LLMTAP_USAGE_FILE', flag: 'usage-file', kind: 'path', help: 'the usage store (lowdb JSON file)', allowed: 'a file path', schema: path }),
  spec({ key: 'usageFlushMs', env: 'LLMTAP_USAGE_FLUSH_MS', flag: 'usage-flush-ms', kind: 'int', help: 'how often new usage records are written', allowed: 'an integer from 10 to 3600000', schema: int(10, 3_600_000) }),
  spec({ key: 'usageMaxRecords', env: 'LLMTAP_USAGE_MAX_RECORDS', flag: 'usage-max-records', kind: 'int', help: 'records kept whole; older ones are rolled up into daily totals', allowed: 'an integer from 10 to 10000000', schema: int(10, 10_000_000) }),
  spec({ key: 'prices', env: 'LLMTAP_PRICES', flag: 'prices', kind: 'path', help: 'a JSON/YAML price table overriding the built-in one (USD per million tokens)', allowed: 'a file path', schema: optionalPath }),
  spec({ key: 'adminToken', env: 'LLMTAP_ADMIN_TOKEN', flag: 'admin-token', kind: 'string', help: 'admin endpoints accept this bearer token from any client (else loopback only)', allowed: 'a string', schema: z.string() }),
  spec({ key: 'rateLimit', env: 'LLMTAP_RATE_LIMIT', flag: 'rate-limit', kind: 'string', help: 'per-client limit (key hash, else address), a token bucket: 60/min, 5/s, 1000/h (429 past it)', allowed: 'N/s, N/min or N/h (N from 1), or off', schema: rateLimit }),
  spec({ key: 'routingStrategy', env: 'LLMTAP_ROUTING_STRATEGY', flag: 'routing-strategy', kind: 'enum', help: 'with several upstreams: how one is picked among those serving the model', allowed: ROUTING_STRATEGIES.join(', '), schema: z.enum(ROUTING_STRATEGIES) }),
  spec({ key: 'queueTimeoutMs', env: 'LLMTAP_QUEUE_TIMEOUT_MS', flag: 'queue-timeout-ms', kind: 'int', help: "with several upstreams: longest wait for a slot at an upstream's max_concurrent (503 past it)", allowed: 'an integer from 0 to 3600000', schema: int(0, 3_600_000) }),
  spec({ key: 'queueMax', env: 'LLMTAP_QUEUE_MAX', flag: 'queue-max', kind: 'int', help: "with several upstreams: requests waiting per upstream unless its entry sets max_queue (503 past it)", allowed: 'an integer from 0 to 100000', schema: int(0, 100_000) }),
  spec({ key: 'healthIntervalMs', env: 'LLMTAP_HEALTH_INTERVAL_MS', flag: 'health-interval-ms', kind: 'int', help: 'with several upstreams: how often each one is probed (and its models rediscovered)', allowed: 'an integer from 100 to 3600000', schema: int(100, 3_600_000) }),
  spec({ key: 'breakerFailures', env: 'LLMTAP_BREAKER_FAILURES', flag: 'breaker-failures', kind: 'int', help: "consecutive failures (requests or probes) that open an upstream's circuit breaker", allowed: 'an integer from 1 to 1000', schema: int(1, 1000) }),
  spec({ key: 'breakerCooldownMs', env: 'LLMTAP_BREAKER_COOLDOWN_MS', flag: 'breaker-cooldown-ms', kind: 'int', help: 'an open breaker turns half-open (lets trial requests through) after this long', allowed: 'an integer from 10 to 3600000', schema: int(10, 3_600_000) }),
  spec({ key: 'breakerSuccesses', env: 'LLMTAP_BREAKER_SUCCESSES', flag: 'breaker-successes', kind: 'int', help: 'successes in half-open that close the breaker again', allowed: 'an integer from 1 to 1000', schema: int(1, 1000) }),
  spec({ key: 'modelsTtlMs', env: 'LLMTAP_MODELS_TTL_MS', flag: 'models-ttl-ms', kind: 'int', help: 'models discovered from an upstream (/v1/models, /api/tags) are fetched again after this long', allowed: 'an integer from 1000 to 86400000', schema: int(1000, 86_400_000) }),
] as const satisfies readonly SettingSpec[];

const CONFIG_FILE = { env: 'LLMTAP_CONFIG', flag: 'config' } as const;

/** A settings problem: main prints its message (one line) and exits 1. */
export class ConfigError extends Error {
  readonly code = 'LLMTAP_BAD_SETTING';
}

export type RawSettings = Partial<Record<Exclude<keyof Config, 'upstreams' | 'configFile'>, unknown>>;

export interface ConfigSources {
  argv?: readonly string[];
  env?: Readonly<Record<string, string | undefined>>;
  /** values set by code (tests, the demo); they win over everything */
  overrides?: RawSettings;
  /** an upstream list set by code, in place of a config file's */
  upstreams?: UpstreamSpec[];
}

export type CliAction = { kind: 'run'; config: Config } | { kind: 'help'; text: string } | { kind: 'version' };

/** Parses CLI flags (--name value, --name=value, --switch, --no-switch) into raw setting values. */
function parseArgv(argv: readonly string[]): { raw: RawSettings; configFile?: string; help: boolean; version: boolean } {
  const raw: RawSettings = {};
  let configFile: string | undefined;
  let help = false;
  let version = false;
  const byFlag = new Map<string, (typeof SETTINGS)[number]>(SETTINGS.map((s) => [s.flag, s]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') { help = true; continue; }
    if (arg === '--version' || arg === '-v') { version = true; continue; }
    if (!arg.startsWith('--')) throw new ConfigError(`llmtap: unexpected argument "${arg}" (settings are given as --name value; see llmtap --help)`);
    const eq = arg.indexOf('=');
    let name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let value: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
    if (name === CONFIG_FILE.flag) {
      configFile = value ?? argv[++i];
      if (!configFile) throw new ConfigError('llmtap: --config needs a file path');
      continue;
    }
    let negated = false;
    if (!byFlag.has(name) && name.startsWith('no-') && byFlag.get(name.slice(3))?.kind === 'switch') {
      name = name.slice(3);
      negated = true;
    }
    const s = byFlag.get(name);
    if (!s) throw new ConfigError(`llmtap: unknown option --${name} (see llmtap --help for the settings)`);
    if (s.kind === 'switch') {
      if (value === undefined && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--'))) value = negated ? 'off' : 'on';
      else if (value === undefined) value = argv[++i];
      else if (negated) throw new ConfigError(`llmtap: --no-${name} takes no value`);
    } else if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new ConfigError(`llmtap: --${name} needs a value (${s.allowed})`);
    }
    raw[s.key] = value;
  }
  return { raw, configFile, help, version };
}

/** The keys of a config file that are not settings. */
const UPSTREAMS_KEY = 'upstreams';

function parseFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`llmtap: cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let data: unknown;
  try {
    data = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`llmtap: config file ${path} does not parse: ${(err as Error).message.split('\n')[0]}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new ConfigError(`llmtap: config file ${path} must hold a mapping of settings`);
  return data as Record<string, unknown>;
}

function upstreamsOf(data: Record<string, unknown>, path: string, env: Readonly<Record<string, string | undefined>>): UpstreamSpec[] | null {
  if (data[UPSTREAMS_KEY] === undefined) return null;
  try {
    return parseUpstreamSpecs(data[UPSTREAMS_KEY], env);
  } catch (err) {
    if (err instanceof UpstreamSpecError) throw new ConfigError(`llmtap: config file ${path}: ${err.message}`);
    throw err;
  }
}

function readConfigFile(path: string, env: Readonly<Record<string, string | undefined>>): { raw: RawSettings; upstreams: UpstreamSpec[] | null } {
  const data = parseFile(path);
  const raw: RawSettings = {};
  // A file may name a setting by its key (maxBodyMb), its snake_case form (max_body_mb), its flag or its env name.
  const names = new Map<string, (typeof SETTINGS)[number]>();
  for (const s of SETTINGS) {
    for (const n of [s.key, s.flag, s.flag.replace(/-/g, '_'), s.env]) names.set(n.toLowerCase(), s);
  }
  for (const [k, v] of Object.entries(data)) {
    if (k === UPSTREAMS_KEY) continue;
    const s = names.get(k.toLowerCase());
    if (!s) throw new ConfigError(`llmtap: config file ${path} has an unknown setting "${k}" (see llmtap --help)`);
    raw[s.key] = v;
  }
  return { raw, upstreams: upstreamsOf(data, path, env) };
}

/**
 * The upstream list of the config file as it is now (SIGHUP reloads it). Throws ConfigError for a file that
 * does not read, parse or validate, or that no longer has a list: the caller keeps the one it has.
 */
export function readUpstreams(path: string, env: Readonly<Record<string, string | undefined>>): UpstreamSpec[] {
  const upstreams = upstreamsOf(parseFile(path), path, env);
  if (!upstreams) throw new ConfigError(`llmtap: config file ${path} has no upstreams list any more`);
  return upstreams;
}

function fromEnv(env: Readonly<Record<string, string | undefined>>): RawSettings {
  const raw: RawSettings = {};
  for (const s of SETTINGS) {
    const v = env[s.env];
    if (v !== undefined && v !== '') raw[s.key] = v;
  }
  return raw;
}

function describeSource(s: (typeof SETTINGS)[number], layers: { name: string; raw: RawSettings }[]): string {
  const layer = layers.find((l) => l.raw[s.key] !== undefined);
  if (!layer) return s.env;
  if (layer.name === 'cli') return `--${s.flag}`;
  if (layer.name === 'env') return s.env;
  if (layer.name === 'file') return `${s.env} (in the config file)`;
  return s.env;
}

function validate(layers: { name: string; raw: RawSettings }[], configFile: string | null, upstreams: UpstreamSpec[] | null): Config {
  const out: Record<string, unknown> = { configFile, upstreams };
  for (const s of SETTINGS) {
    const layer = layers.find((l) => l.raw[s.key] !== undefined);
    const value = layer ? layer.raw[s.key] : DEFAULTS[s.key];
    const parsed = (s.schema as z.ZodType).safeParse(value);
    if (!parsed.success) {
      const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
      throw new ConfigError(`llmtap: invalid setting ${describeSource(s, layers)}=${shown}: expected ${s.allowed}`);
    }
    out[s.key] = parsed.data;
  }
  return Object.freeze(out) as unknown as Config;
}

/** Resolves the settings into a frozen Config, or what the CLI asked for instead (--help, --version). */
export function loadConfig(sources: ConfigSources = {}): CliAction {
  const env = sources.env ?? {};
  const cli = parseArgv(sources.argv ?? []);
  if (cli.help) return { kind: 'help', text: helpText() };
  if (cli.version) return { kind: 'version' };
  const configFile = cli.configFile ?? env[CONFIG_FILE.env] ?? null;
  const file = configFile ? readConfigFile(configFile, env) : { raw: {}, upstreams: null };
  const layers = [
    { name: 'overrides', raw: sources.overrides ?? {} },
    { name: 'cli', raw: cli.raw },
    { name: 'env', raw: fromEnv(env) },
    { name: 'file', raw: file.raw },
  ];
  const upstreams = sources.upstreams ?? file.upstreams;
  return { kind: 'run', config: validate(layers, configFile || null, upstreams) };
}

/** A Config from defaults plus the given values: for tests and embedding. Throws ConfigError on a bad value. */
export function configWith(overrides: RawSettings = {}): Config {
  const action = loadConfig({ overrides });
  if (action.kind !== 'run') throw new Error('unreachable');
  return action.config;
}

export function helpText(): string {
  const rows = SETTINGS.map((s) => {
    const flag = s.kind === 'switch' ? `--${s.flag} / --no-${s.flag}` : `--${s.flag} <${s.kind}>`;
    const def = DEFAULTS[s.key];
    const shownDefault = typeof def === 'boolean' ? (def ? 'on' : 'off') : def === '' || def === null || (Array.isArray(def) && def.length === 0) ? 'none' : String(def);
    return `  ${flag.padEnd(34)} ${s.env.padEnd(28)} default ${shownDefault}\n      ${s.help}`;
  });
  return [
    'llmtap: a transparent proxy that records LLM API exchanges as OpenTelemetry spans and metrics',
    '',
    'Usage: llmtap [options]',
    '',
    'Every setting can be given as a flag, an environment variable or a key in a YAML/JSON file',
    `(--config <file> or ${CONFIG_FILE.env}); precedence: flag > environment > file > default.`,
    '',
    ...rows,
    `  ${'--config <file>'.padEnd(34)} ${CONFIG_FILE.env.padEnd(28)} default none\n      YAML or JSON file of settings (keys like port or max_body_mb)\n      and of several upstreams (an upstreams: list; see README "Several upstreams"; SIGHUP reloads it)`,
    `  ${'--help, --version'.padEnd(34)}`,
    '',
  ].join('\n');
}
