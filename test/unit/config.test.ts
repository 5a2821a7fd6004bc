// Settings: precedence of the sources, validation messages, CLI parsing and --help.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, SETTINGS, configWith, loadConfig, type Config, type ConfigSources } from '../../src/config.ts';

const dir = mkdtempSync(join(tmpdir(), 'llmtap-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function run(sources: ConfigSources): Config {
  const action = loadConfig(sources);
  assert.equal(action.kind, 'run');
  return (action as { kind: 'run'; config: Config }).config;
}

/** The ConfigError thrown, checked to be one line. */
function configError(sources: ConfigSources): string {
  let caught: unknown;
  try {
    loadConfig(sources);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError for ${JSON.stringify(sources)}, got ${String(caught)}`);
  const msg = (caught as ConfigError).message;
  assert.ok(!msg.includes('\n'), `one line: ${JSON.stringify(msg)}`);
  return msg;
}

describe('config: defaults and precedence', () => {
  it('defaults are the documented ones (CONTRACT §2, §5)', () => {
    const c = run({ argv: [], env: {} });
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 7878);
    assert.equal(c.openaiUrl, 'https://api.openai.com');
    assert.equal(c.anthropicUrl, 'https://api.anthropic.com');
    assert.equal(c.ollamaUrl, 'http://127.0.0.1:11434');
    assert.equal(c.streamUsage, true);
    assert.equal(c.configFile, null);
    assert.ok(Object.isFrozen(c));
  });

  const yaml = file('llmtap.yaml', ['port: 1111', 'host: 10.0.0.1', 'max_body_mb: 8', 'log-level: warn', 'streamUsage: off', 'LLMTAP_OLLAMA_URL: http://gpu-box:11434/', ''].join('\n'));

  it('file > default (keys as key, snake_case, flag or env name)', () => {
    const c = run({ env: { LLMTAP_CONFIG: yaml } });
    assert.equal(c.port, 1111);
    assert.equal(c.host, '10.0.0.1');
    assert.equal(c.maxBodyMb, 8);
    assert.equal(c.logLevel, 'warn');
    assert.equal(c.streamUsage, false);
    assert.equal(c.ollamaUrl, 'http://gpu-box:11434', 'trailing slash dropped');
    assert.equal(c.configFile, yaml);
    assert.equal(c.connectTimeoutMs, 10_000, 'unset in the file: default');
  });

  it('env > file', () => {
    const c = run({ env: { LLMTAP_CONFIG: yaml, LLMTAP_PORT: '2222', LLMTAP_STREAM_USAGE: 'on' } });
    assert.equal(c.port, 2222);
    assert.equal(c.streamUsage, true);
    assert.equal(c.host, '10.0.0.1', 'from the file');
  });

  it('an empty environment variable counts as unset', () => {
    assert.equal(run({ env: { LLMTAP_CONFIG: yaml, LLMTAP_PORT: '' } }).port, 1111);
  });

  it('CLI > env > file', () => {
    const c = run({ argv: ['--port', '3333', '--host=0.0.0.0'], env: { LLMTAP_CONFIG: yaml, LLMTAP_PORT: '2222', LLMTAP_HOST: '10.9.9.9' } });
    assert.equal(c.port, 3333);
    assert.equal(c.host, '0.0.0.0');
    assert.equal(c.maxBodyMb, 8, 'from the file');
  });

  it('overrides > CLI > env > file', () => {
    const c = run({ argv: ['--port', '3333'], env: { LLMTAP_CONFIG: yaml, LLMTAP_PORT: '2222' }, overrides: { port: 4444 } });
    assert.equal(c.port, 4444);
    assert.equal(configWith({ port: 0 }).port, 0);
    assert.equal(configWith({}).port, 7878);
  });

  it('--config on the CLI wins over LLMTAP_CONFIG; JSON files work too', () => {
    const json = file('other.json', JSON.stringify({ port: 5555, stream_usage: true }));
    const c = run({ argv: ['--config', json], env: { LLMTAP_CONFIG: yaml } });
    assert.equal(c.port, 5555);
    assert.equal(c.configFile, json);
    assert.equal(run({ argv: [`--config=${json}`] }).port, 5555);
  });

  it('a file with an upstreams list: settings beside it, each entry read with its defaults, keys from the environment', () => {
    const f = file(
      'routing.yaml',
      [
        'port: 7000',
        'routing_strategy: weighted',
        'rate_limit: 120/min',
        'upstreams:',
        '  - { name: gpu-1, dialect: ollama, url: "http://10.0.0.5:11434/", models: [llama3, "qwen*"], max_concurrent: 4, weight: 3 }',
        '  - { name: cloud, dialect: openai, url: https://api.openai.com, api_key_env: TEST_KEY, max_queue: 0 }',
        '',
      ].join('\n'),
    );
    const c = run({ env: { LLMTAP_CONFIG: f, TEST_KEY: 'sk-from-env' } });
    assert.equal(c.port, 7000);
    assert.equal(c.routingStrategy, 'weighted');
    assert.deepEqual(c.rateLimit, { requests: 120, perMs: 60_000, text: '120/min' });
    assert.deepEqual(c.upstreams, [
      { name: 'gpu-1', dialect: 'ollama', url: 'http://10.0.0.5:11434', models: ['llama3', 'qwen*'], apiKeyEnv: null, apiKey: null, maxConcurrent: 4, maxQueue: null, weight: 3 },
      { name: 'cloud', dialect: 'openai', url: 'https://api.openai.com', models: null, apiKeyEnv: 'TEST_KEY', apiKey: 'sk-from-env', maxConcurrent: null, maxQueue: 0, weight: 1 },
    ]);
    assert.equal(run({ env: {} }).upstreams, null, 'no file: the single upstream per dialect');
  });

  it("README's \"Several upstreams\" example file is valid as printed", () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Several upstreams'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(yaml, 'the section has a yaml block');
    const c = run({ env: { LLMTAP_CONFIG: file('readme.yaml', yaml), OPENAI_API_KEY: 'sk-a', ANTHROPIC_API_KEY: 'sk-b' } });
    assert.deepEqual(c.upstreams?.map((u) => `${u.name}/${u.dialect}`), ['gpu-1/ollama', 'gpu-2/ollama', 'vllm/openai', 'openai/openai', 'anthropic/anthropic']);
    assert.equal(c.rateLimit?.text, '600/min');
    // Without the keys in the environment, the entry that needs one is named.
    assert.match(configError({ env: { LLMTAP_CONFIG: file('readme.yaml', yaml) } }), /upstreams\[3\] \("openai"\)\.api_key_env: the environment variable OPENAI_API_KEY is not set/);
  });

  it('an empty YAML file is no settings', () => {
    assert.equal(run({ env: { LLMTAP_CONFIG: file('empty.yaml', '') } }).port, 7878);
  });
});

describe('config: switches', () => {
  it('--no-stream-usage turns it off; --stream-usage alone turns it on; --stream-usage off / =off too', () => {
    assert.equal(run({ argv: ['--no-stream-usage'] }).streamUsage, false);
    assert.equal(run({ argv: ['--no-stream-usage', '--port', '1'] }).streamUsage, false);
    assert.equal(run({ argv: ['--stream-usage'], env: { LLMTAP_STREAM_USAGE: 'off' } }).streamUsage, true);
    assert.equal(run({ argv: ['--stream-usage', 'off'] }).streamUsage, false);
    assert.equal(run({ argv: ['--stream-usage=off'] }).streamUsage, false);
    assert.equal(run({ argv: ['--stream-usage', '--port', '9'] }).streamUsage, true);
    for (const v of ['off', 'false', '0', 'no', 'OFF']) assert.equal(run({ env: { LLMTAP_STREAM_USAGE: v } }).streamUsage, false, v);
    for (const v of ['on', 'true', '1', 'yes', 'On']) assert.equal(run({ env: { LLMTAP_STREAM_USAGE: v } }).streamUsage, true, v);
  });

  it('--no-stream-usage takes no value; --no-<non-switch> is unknown', () => {
    assert.match(configError({ argv: ['--no-stream-usage=on'] }), /--no-stream-usage/);
    assert.match(configError({ argv: ['--no-port'] }), /--no-port/);
  });
});

describe('config: bad values give one line naming the setting, the value and what is allowed', () => {
  // [setting env, flag, bad value, fragments of the allowed range]
  const cases: [string, string, string, string[]][] = [
    ['LLMTAP_PORT', 'port', '70000', ['0', '65535']],
    ['LLMTAP_PORT', 'port', 'abc', ['0', '65535']],
    ['LLMTAP_PORT', 'port', '-1', ['0', '65535']],
    ['LLMTAP_PORT', 'port', '80.5', ['integer', '65535']],
    ['LLMTAP_OPENAI_URL', 'openai-url', 'ftp://example.com', ['http']],
    ['LLMTAP_ANTHROPIC_URL', 'anthropic-url', 'not a url', ['http']],
    ['LLMTAP_OLLAMA_URL', 'ollama-url', 'localhost:11434x', ['http']],
    ['LLMTAP_MAX_BODY_MB', 'max-body-mb', '0', ['0.001', '4096']],
    ['LLMTAP_MAX_BODY_MB', 'max-body-mb', '5000', ['0.001', '4096']],
    ['LLMTAP_CONNECT_TIMEOUT_MS', 'connect-timeout-ms', '0', ['1', '600000']],
    ['LLMTAP_UPSTREAM_TIMEOUT_MS', 'upstream-timeout-ms', '86400001', ['1', '86400000']],
    ['LLMTAP_STREAM_IDLE_MS', 'stream-idle-ms', 'soon', ['1', '86400000']],
    ['LLMTAP_STREAM_USAGE', 'stream-usage', 'maybe', ['on', 'off']],
    ['LLMTAP_SHUTDOWN_GRACE_MS', 'shutdown-grace-ms', '-5', ['0', '3600000']],
    ['LLMTAP_LOG_LEVEL', 'log-level', 'loud', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']],
    ['LLMTAP_METRICS_MAX_MODELS', 'metrics-max-models', '0', ['1', '10000']],
    ['LLMTAP_CAPTURE', 'capture', 'maybe', ['on', 'off']],
    ['LLMTAP_CAPTURE_DIR', 'capture-dir', '  ', ['folder']],
    ['LLMTAP_CAPTURE_MAX_FILE_MB', 'capture-max-file-mb', '0', ['0.01', '65536']],
    ['LLMTAP_CAPTURE_MAX_FILES', 'capture-max-files', '0', ['1', '100000']],
    ['LLMTAP_CAPTURE_REDACT', 'capture-redact', 'x-ok,bad header', ['header names']],
    ['LLMTAP_CAPTURE_BODIES', 'capture-bodies', 'maybe', ['on', 'off']],
    ['LLMTAP_USAGE', 'usage', 'maybe', ['on', 'off']],
    ['LLMTAP_USAGE_FILE', 'usage-file', '  ', ['file path']],
    ['LLMTAP_USAGE_FLUSH_MS', 'usage-flush-ms', '5', ['10', '3600000']],
    ['LLMTAP_USAGE_MAX_RECORDS', 'usage-max-records', '1', ['10', '10000000']],
    ['LLMTAP_RATE_LIMIT', 'rate-limit', '60/fortnight', ['N/s', 'N/min', 'N/h']],
    ['LLMTAP_RATE_LIMIT', 'rate-limit', '0/min', ['N/s', 'N/min', 'N/h']],
    ['LLMTAP_ROUTING_STRATEGY', 'routing-strategy', 'random', ['least_busy', 'round_robin', 'weighted']],
    ['LLMTAP_QUEUE_TIMEOUT_MS', 'queue-timeout-ms', '-1', ['0', '3600000']],
    ['LLMTAP_QUEUE_MAX', 'queue-max', 'lots', ['0', '100000']],
    ['LLMTAP_HEALTH_INTERVAL_MS', 'health-interval-ms', '10', ['100', '3600000']],
    ['LLMTAP_BREAKER_FAILURES', 'breaker-failures', '0', ['1', '1000']],
    ['LLMTAP_BREAKER_COOLDOWN_MS', 'breaker-cooldown-ms', '5', ['10', '3600000']],
    ['LLMTAP_BREAKER_SUCCESSES', 'breaker-successes', '1001', ['1', '1000']],
    ['LLMTAP_MODELS_TTL_MS', 'models-ttl-ms', '999', ['1000', '86400000']],
  ];

  /** Free text: any value is a valid host name to try, token or (empty = none) price file. */
  const FREE_TEXT = new Set(['LLMTAP_HOST', 'LLMTAP_ADMIN_TOKEN', 'LLMTAP_PRICES']);

  it('every setting but the free-text ones has a bad-value case here', () => {
    const covered = new Set(cases.map((c) => c[0]));
    for (const s of SETTINGS) if (!FREE_TEXT.has(s.env)) assert.ok(covered.has(s.env), s.env);
  });

  for (const [env, flag, value, allowed] of cases) {
    it(`${env}=${value} (env) and --${flag} ${value} (CLI)`, () => {
      const fromEnv = configError({ env: { [env]: value } });
      assert.ok(fromEnv.includes(env), `names ${env}: ${fromEnv}`);
      assert.ok(fromEnv.includes(value), `shows the value: ${fromEnv}`);
      for (const a of allowed) assert.ok(fromEnv.includes(a), `says what is allowed (${a}): ${fromEnv}`);
      const fromCli = configError({ argv: [`--${flag}=${value}`] });
      assert.ok(fromCli.includes(`--${flag}`), `names --${flag}: ${fromCli}`);
      assert.ok(fromCli.includes(value), `shows the value: ${fromCli}`);
      for (const a of allowed) assert.ok(fromCli.includes(a), `says what is allowed (${a}): ${fromCli}`);
    });
  }

  it('a bad value in the config file names the setting and the value', () => {
    const msg = configError({ env: { LLMTAP_CONFIG: file('bad.yaml', 'port: 99999\n') } });
    assert.match(msg, /LLMTAP_PORT/);
    assert.match(msg, /99999/);
    assert.match(msg, /65535/);
  });

  it('host given empty on the CLI is refused', () => {
    const msg = configError({ argv: ['--host='] });
    assert.match(msg, /--host/);
  });

  it('an empty --port= is refused, not taken as port 0', () => {
    const msg = configError({ argv: ['--port='] });
    assert.match(msg, /--port/);
  });

  it('port: true in a YAML file is refused, not taken as port 1', () => {
    const msg = configError({ env: { LLMTAP_CONFIG: file('bool-port.yaml', 'port: true\n') } });
    assert.match(msg, /LLMTAP_PORT/);
  });

  it('a flag missing its value', () => {
    assert.match(configError({ argv: ['--port'] }), /--port/);
    assert.match(configError({ argv: ['--config'] }), /--config/);
  });

  it('unknown flags, stray arguments, unknown file keys and missing files', () => {
    assert.match(configError({ argv: ['--prot', '8000'] }), /--prot\b/);
    assert.match(configError({ argv: ['8000'] }), /8000/);
    assert.match(configError({ env: { LLMTAP_CONFIG: file('unknown.yaml', 'colour: blue\n') } }), /colour/);
    assert.match(configError({ env: { LLMTAP_CONFIG: join(dir, 'missing.yaml') } }), /missing\.yaml/);
    assert.match(configError({ env: { LLMTAP_CONFIG: file('list.yaml', '- a\n- b\n') } }), /list\.yaml/);
    assert.match(configError({ env: { LLMTAP_CONFIG: file('broken.json', '{"port":') } }), /broken\.json/);
  });

  it('configWith throws ConfigError for a bad override', () => {
    assert.throws(() => configWith({ port: 'x' }), (err: unknown) => err instanceof ConfigError && /LLMTAP_PORT/.test(err.message));
  });
});

describe('config: --help', () => {
  it('lists every setting: its env name, its flag and its default, on one row', () => {
    const action = loadConfig({ argv: ['--help'] });
    assert.equal(action.kind, 'help');
    const text = (action as { kind: 'help'; text: string }).text;
    const lines = text.split('\n');
    const defaults = run({});
    for (const s of SETTINGS) {
      const row = lines.find((l) => l.includes(` ${s.env} `));
      assert.ok(row, `--help lists ${s.env}`);
      assert.ok(row.includes(`--${s.flag}`), `${s.env} row names --${s.flag}`);
      const v = defaults[s.key];
      const shown = typeof v === 'boolean' ? (v ? 'on' : 'off') : v === null ? 'none' : String(v);
      assert.ok(row.includes(`default ${shown}`), `${s.env} row shows default ${shown}: ${row}`);
    }
    // the documented defaults, by hand
    for (const [env, def] of <[string, string][]>[['LLMTAP_PORT', '7878'], ['LLMTAP_HOST', '127.0.0.1'], ['LLMTAP_OPENAI_URL', 'https://api.openai.com'], ['LLMTAP_ANTHROPIC_URL', 'https://api.anthropic.com'], ['LLMTAP_OLLAMA_URL', 'http://127.0.0.1:11434'], ['LLMTAP_STREAM_USAGE', 'on']]) {
      assert.ok(lines.some((l) => l.includes(env) && l.includes(`default ${def}`)), `${env} default ${def}`);
    }
    assert.match(text, /LLMTAP_CONFIG/);
    assert.match(text, /--no-stream-usage/);
    assert.equal(loadConfig({ argv: ['-h'] }).kind, 'help');
    assert.equal(loadConfig({ argv: ['--version'] }).kind, 'version');
  });

  it('--help wins even next to a bad value', () => {
    assert.equal(loadConfig({ argv: ['--help'], env: { LLMTAP_PORT: 'bad' } }).kind, 'help');
  });
});
