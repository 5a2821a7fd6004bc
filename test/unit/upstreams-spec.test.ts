// A config file's `upstreams:` list (src/upstreams/spec.ts through src/config.ts): good entries read with defaults, each bad one a one-line ConfigError naming the entry and field.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, loadConfig, readUpstreams, type Config } from '../../src/config.ts';
import { parseUpstreamSpecs, UpstreamSpecError } from '../../src/upstreams/spec.ts';

const dir = mkdtempSync(join(tmpdir(), 'llmtap-upstreams-spec-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function yamlFile(lines: string[]): string {
  const p = join(dir, `c${++n}.yaml`);
  writeFileSync(p, `${lines.join('\n')}\n`);
  return p;
}

const GOOD_A = '  - { name: a, dialect: openai, url: "http://127.0.0.1:9001", models: [m1] }';

/** The ConfigError a file gives, checked to be one line that names the file. */
function fileError(lines: string[], env: Record<string, string> = {}): string {
  const path = yamlFile(lines);
  let caught: unknown;
  try {
    loadConfig({ env: { LLMTAP_CONFIG: path, ...env } });
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  const msg = (caught as ConfigError).message;
  assert.ok(!msg.includes('\n'), `one line: ${JSON.stringify(msg)}`);
  assert.ok(msg.startsWith(`llmtap: config file ${path}: `), `names the file: ${msg}`);
  return msg.slice(`llmtap: config file ${path}: `.length);
}

function run(env: Record<string, string>): Config {
  const action = loadConfig({ env });
  assert.equal(action.kind, 'run');
  return (action as { kind: 'run'; config: Config }).config;
}

describe('upstreams: good entries', () => {
  it('defaults: no models (discovered), no key, no concurrency limit, weight 1; a trailing slash dropped', () => {
    const c = run({ LLMTAP_CONFIG: yamlFile(['upstreams:', '  - name: local', '    dialect: ollama', '    url: http://127.0.0.1:11434/']) });
    assert.deepEqual(c.upstreams, [
      { name: 'local', dialect: 'ollama', url: 'http://127.0.0.1:11434', models: null, apiKeyEnv: null, apiKey: null, maxConcurrent: null, maxQueue: null, weight: 1 },
    ]);
  });

  it('every field, in a JSON file; api_key_env takes its value from the environment', () => {
    const p = join(dir, 'full.json');
    writeFileSync(
      p,
      JSON.stringify({
        routing_strategy: 'round_robin',
        upstreams: [
          { name: 'claude', dialect: 'anthropic', url: 'https://api.anthropic.com', models: ['claude-*'], api_key_env: 'MY_ANTHROPIC_KEY', max_concurrent: 8, max_queue: 3, weight: 2.5 },
          { name: 'vllm.gpu-1', dialect: 'openai', url: 'http://10.0.0.7:8000/v1' },
        ],
      }),
    );
    const c = run({ LLMTAP_CONFIG: p, MY_ANTHROPIC_KEY: 'sk-ant-from-env' });
    assert.equal(c.routingStrategy, 'round_robin');
    assert.deepEqual(c.upstreams![0], {
      name: 'claude',
      dialect: 'anthropic',
      url: 'https://api.anthropic.com',
      models: ['claude-*'],
      apiKeyEnv: 'MY_ANTHROPIC_KEY',
      apiKey: 'sk-ant-from-env',
      maxConcurrent: 8,
      maxQueue: 3,
      weight: 2.5,
    });
    assert.equal(c.upstreams![1]!.url, 'http://10.0.0.7:8000/v1', 'a base path is kept');
  });

  it('no upstreams key: the single upstream per dialect (null)', () => {
    assert.equal(run({ LLMTAP_CONFIG: yamlFile(['port: 7001']) }).upstreams, null);
  });
});

describe('upstreams: a bad entry is a one-line error naming the entry and field', () => {
  it('a URL that is not one', () => {
    const msg = fileError(['upstreams:', GOOD_A, '  - { name: b, dialect: openai, url: "not a url" }']);
    assert.equal(msg, 'upstreams[1] ("b").url: "not a url" is not a URL');
  });

  it('a URL of another scheme', () => {
    assert.equal(fileError(['upstreams:', '  - { name: a, dialect: openai, url: "ftp://h/x" }']), 'upstreams[0] ("a").url: "ftp://h/x" is not http or https');
  });

  it('an unknown dialect: names the field and the allowed values', () => {
    const msg = fileError(['upstreams:', GOOD_A, GOOD_A.replace('name: a', 'name: g').replace('openai', 'gemini')]);
    assert.ok(msg.startsWith('upstreams[1] ("g").dialect: '), msg);
    for (const d of ['openai', 'anthropic', 'ollama']) assert.ok(msg.includes(d), `lists ${d}: ${msg}`);
  });

  it('a duplicate name', () => {
    const msg = fileError(['upstreams:', GOOD_A, '  - { name: z, dialect: ollama, url: "http://h:1" }', GOOD_A.replace('9001', '9002')]);
    assert.equal(msg, 'upstreams[2] ("a").name: "a" is used by an earlier entry; names must be unique');
  });

  it('an unknown field (a typo): names it and the allowed ones', () => {
    const msg = fileError(['upstreams:', '  - { name: a, dialect: openai, url: "http://h:1", modles: [m1] }']);
    assert.ok(msg.startsWith('upstreams[0] ("a")'), msg);
    assert.match(msg, /unknown field\(s\) modles/);
    for (const f of ['name', 'dialect', 'url', 'models', 'api_key_env', 'max_concurrent', 'weight']) assert.ok(msg.includes(f), `allowed ${f}: ${msg}`);
  });

  it('api_key_env naming a variable that is not set (or is empty)', () => {
    const lines = ['upstreams:', GOOD_A, '  - { name: cloud, dialect: openai, url: "https://api.openai.com", api_key_env: ROUTING_TEST_UNSET_KEY }'];
    assert.equal(fileError(lines), 'upstreams[1] ("cloud").api_key_env: the environment variable ROUTING_TEST_UNSET_KEY is not set');
    assert.equal(fileError(lines, { ROUTING_TEST_UNSET_KEY: '' }), 'upstreams[1] ("cloud").api_key_env: the environment variable ROUTING_TEST_UNSET_KEY is not set');
    assert.equal(run({ LLMTAP_CONFIG: yamlFile(lines), ROUTING_TEST_UNSET_KEY: 'sk-x' }).upstreams![1]!.apiKey, 'sk-x');
  });

  it('api_key_env that is not a variable name', () => {
    const msg = fileError(['upstreams:', '  - { name: a, dialect: openai, url: "http://h:1", api_key_env: "sk-live-abc" }']);
    assert.ok(msg.startsWith('upstreams[0] ("a").api_key_env: '), msg);
  });

  it('an empty list, and a list that is not one', () => {
    assert.match(fileError(['upstreams: []']), /^upstreams must be a non-empty list/);
    assert.match(fileError(['upstreams:']), /^upstreams must be a non-empty list/);
    assert.match(fileError(['upstreams:', '  name: a', '  dialect: openai']), /^upstreams must be a non-empty list/);
  });

  it('a missing field; an entry without a name is named by its index alone', () => {
    assert.match(fileError(['upstreams:', '  - { name: a, dialect: openai }']), /^upstreams\[0\] \("a"\)\.url: /);
    assert.match(fileError(['upstreams:', GOOD_A, '  - { dialect: openai, url: "http://h:1" }']), /^upstreams\[1\]\.name: /);
    assert.match(fileError(['upstreams:', '  - "http://h:1"']), /^upstreams\[0\]: /);
  });

  it('numbers out of range and bad names', () => {
    assert.match(fileError(['upstreams:', '  - { name: a, dialect: openai, url: "http://h:1", max_concurrent: 0 }']), /^upstreams\[0\] \("a"\)\.max_concurrent: /);
    assert.match(fileError(['upstreams:', '  - { name: a, dialect: openai, url: "http://h:1", max_concurrent: 2.5 }']), /^upstreams\[0\] \("a"\)\.max_concurrent: /);
    assert.match(fileError(['upstreams:', '  - { name: a, dialect: openai, url: "http://h:1", weight: 0 }']), /^upstreams\[0\] \("a"\)\.weight: /);
    assert.match(fileError(['upstreams:', '  - { name: a, dialect: openai, url: "http://h:1", weight: "3" }']), /^upstreams\[0\] \("a"\)\.weight: /);
    assert.match(fileError(['upstreams:', '  - { name: a, dialect: openai, url: "http://h:1", max_queue: -1 }']), /^upstreams\[0\] \("a"\)\.max_queue: /);
    assert.match(fileError(['upstreams:', '  - { name: a, dialect: openai, url: "http://h:1", models: [] }']), /^upstreams\[0\] \("a"\)\.models: /);
    assert.match(fileError(['upstreams:', '  - { name: a, dialect: openai, url: "http://h:1", models: ["ok", ""] }']), /^upstreams\[0\] \("a"\)\.models\.1: /);
    assert.match(fileError(['upstreams:', '  - { name: "has space", dialect: openai, url: "http://h:1" }']), /^upstreams\[0\] \("has space"\)\.name: /);
  });

  it('the first bad entry is the one reported', () => {
    const msg = fileError(['upstreams:', GOOD_A, '  - { name: b, dialect: openai, url: "bad-1" }', '  - { name: c, dialect: openai, url: "bad-2" }']);
    assert.match(msg, /^upstreams\[1\] \("b"\)\.url: "bad-1"/);
  });
});

describe('upstreams: parseUpstreamSpecs and readUpstreams directly', () => {
  it('parseUpstreamSpecs throws UpstreamSpecError without a file name; good input gives specs', () => {
    assert.throws(() => parseUpstreamSpecs([{ name: 'a', dialect: 'openai', url: 'x' }], {}), (err: unknown) => err instanceof UpstreamSpecError && err.message === 'upstreams[0] ("a").url: "x" is not a URL');
    const specs = parseUpstreamSpecs([{ name: 'a', dialect: 'anthropic', url: 'http://h:1/', api_key_env: 'K' }], { K: 'v' });
    assert.equal(specs[0]!.url, 'http://h:1');
    assert.equal(specs[0]!.apiKey, 'v');
  });

  it('readUpstreams (what a reload reads): the list, or a ConfigError for a file that lost or broke it', () => {
    const good = yamlFile(['upstreams:', GOOD_A]);
    assert.equal(readUpstreams(good, {})[0]!.name, 'a');
    assert.throws(() => readUpstreams(yamlFile(['port: 1']), {}), (err: unknown) => err instanceof ConfigError && /no upstreams list/.test(err.message));
    assert.throws(() => readUpstreams(yamlFile(['upstreams:', '  - { name: a, dialect: nope, url: "http://h:1" }']), {}), (err: unknown) => err instanceof ConfigError && /upstreams\[0\] \("a"\)\.dialect/.test(err.message));
    assert.throws(() => readUpstreams(join(dir, 'missing.yaml'), {}), (err: unknown) => err instanceof ConfigError && /cannot read/.test(err.message));
    assert.throws(() => readUpstreams(yamlFile(['upstreams: [ {']), {}), (err: unknown) => err instanceof ConfigError && /does not parse/.test(err.message) && !err.message.includes('\n'));
  });
});
