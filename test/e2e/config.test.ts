// End to end: settings as a user gives them (flags, environment, config file), their validation at start-up, and --help.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SETTINGS, DEFAULTS, loadConfig } from '../../src/config.ts';
import type { Config } from '../../src/config.ts';
import { runLlmtap, spawnLlmtap } from '../helpers/llmtap-process.ts';
import { freePort, canConnect } from '../helpers/free-port.ts';

let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'llmtap-config-test-'));
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function allowedFor(key: keyof Config): string {
  const s = SETTINGS.find((x) => x.key === key);
  assert.ok(s, `setting ${key} exists`);
  return s.allowed;
}

function nonEmptyLines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}

function runConfig(argv: string[], env: Record<string, string>): Config {
  const action = loadConfig({ argv, env });
  assert.equal(action.kind, 'run');
  return (action as { kind: 'run'; config: Config }).config;
}

describe('a bad setting stops llmtap with one line naming the setting, the value and what is allowed', () => {
  const cases: { name: string; args: string[]; env: Record<string, string>; key: keyof Config; names: RegExp; value: string; file?: string }[] = [
    { name: '--port abc', args: ['--port', 'abc'], env: {}, key: 'port', names: /--port|LLMTAP_PORT/, value: 'abc' },
    { name: 'LLMTAP_MAX_BODY_MB=-1', args: [], env: { LLMTAP_MAX_BODY_MB: '-1' }, key: 'maxBodyMb', names: /LLMTAP_MAX_BODY_MB|--max-body-mb/, value: '-1' },
    { name: 'LLMTAP_STREAM_USAGE=maybe', args: [], env: { LLMTAP_STREAM_USAGE: 'maybe' }, key: 'streamUsage', names: /LLMTAP_STREAM_USAGE|--stream-usage/, value: 'maybe' },
    { name: '--openai-url ftp://example.com', args: ['--openai-url', 'ftp://example.com'], env: {}, key: 'openaiUrl', names: /--openai-url|LLMTAP_OPENAI_URL/, value: 'ftp://example.com' },
    { name: 'port: 70000 in the config file', args: [], env: {}, key: 'port', names: /LLMTAP_PORT|port/, value: '70000', file: 'port: 70000\n' },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const env = { ...c.env };
      if (c.file !== undefined) {
        const path = join(dir, `bad-${c.key}.yaml`);
        writeFileSync(path, c.file);
        env.LLMTAP_CONFIG = path;
      }
      const r = await runLlmtap(c.args, env, 15_000);
      assert.notEqual(r.code, 0, `exit code ${r.code} (signal ${r.signal})`);
      assert.notEqual(r.code, null, 'exited by itself, not killed');
      const lines = nonEmptyLines(r.stderr);
      assert.equal(lines.length, 1, `exactly one line on stderr, got:\n${r.stderr}`);
      const line = lines[0]!;
      assert.match(line, c.names, `names the setting: ${line}`);
      assert.ok(line.includes(c.value), `names the value ${c.value}: ${line}`);
      assert.ok(line.includes(allowedFor(c.key)), `says what is allowed (${allowedFor(c.key)}): ${line}`);
    });
  }
});

describe('--help', () => {
  it("lists every setting's flag, environment variable and default", async () => {
    const r = await runLlmtap(['--help'], {}, 15_000);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    for (const s of SETTINGS) {
      const def = DEFAULTS[s.key];
      const shown = typeof def === 'boolean' ? (def ? 'on' : 'off') : def === null ? 'none' : String(def);
      const row = lines.find((l) => l.includes(s.env));
      assert.ok(row, `--help mentions ${s.env}`);
      assert.ok(row.includes(`--${s.flag}`), `${s.env} row shows --${s.flag}: ${row}`);
      assert.ok(row.includes(shown), `${s.env} row shows the default ${shown}: ${row}`);
    }
    assert.ok(r.stdout.includes('LLMTAP_CONFIG'), '--help mentions the config file setting');
  });
});

describe('precedence: CLI > environment > config file > default', () => {
  it('is applied per setting by loadConfig', () => {
    const file = join(dir, 'precedence.yaml');
    writeFileSync(file, ['port: 3333', 'max_body_mb: 3', 'streamIdleMs: 3000', 'LLMTAP_SHUTDOWN_GRACE_MS: 3001', 'stream-usage: off', ''].join('\n'));
    const env = { LLMTAP_CONFIG: file, LLMTAP_PORT: '2222', LLMTAP_MAX_BODY_MB: '2', LLMTAP_STREAM_USAGE: 'on' };
    const argv = ['--port', '1111', '--no-stream-usage'];

    const all = runConfig(argv, env);
    assert.equal(all.port, 1111, 'CLI beats environment and file');
    assert.equal(all.streamUsage, false, 'a CLI switch beats the environment');
    assert.equal(all.maxBodyMb, 2, 'environment beats file');
    assert.equal(all.streamIdleMs, 3000, 'file beats default');
    assert.equal(all.shutdownGraceMs, 3001, 'a file key may be the environment name');
    assert.equal(all.upstreamTimeoutMs, DEFAULTS.upstreamTimeoutMs, 'default when nothing says otherwise');
    assert.equal(all.configFile, file);

    assert.equal(runConfig([], env).port, 2222, 'environment beats file');
    assert.equal(runConfig([], { LLMTAP_CONFIG: file }).port, 3333, 'file beats default');
    assert.equal(runConfig([], { LLMTAP_CONFIG: file }).streamUsage, false);
    assert.equal(runConfig([], {}).port, DEFAULTS.port);
    assert.equal(runConfig(['--config', file], {}).port, 3333, '--config names the file too');
  });

  it('decides the port the real process listens on', async () => {
    const [cliPort, envPort, filePort] = [await freePort(), await freePort(), await freePort()];
    const file = join(dir, 'ports.yaml');
    writeFileSync(file, `port: ${filePort}\nlog_level: silent\n`);
    const layers: { args: string[]; env: Record<string, string>; expect: number; others: number[] }[] = [
      { args: ['--port', String(cliPort)], env: { LLMTAP_PORT: String(envPort), LLMTAP_CONFIG: file }, expect: cliPort, others: [envPort, filePort] },
      { args: [], env: { LLMTAP_PORT: String(envPort), LLMTAP_CONFIG: file }, expect: envPort, others: [filePort] },
      { args: [], env: { LLMTAP_CONFIG: file }, expect: filePort, others: [] },
    ];
    for (const l of layers) {
      const p = await spawnLlmtap({ args: l.args, env: l.env, port: l.expect, portVia: 'none', readyTimeoutMs: 15_000 });
      try {
        for (const other of l.others) assert.equal(await canConnect(other, 300), false, `nothing listens on the overridden port ${other}`);
      } finally {
        p.child.kill('SIGTERM');
        // ref: false, so a timer that lost the race does not keep the test process alive.
        const exit = await Promise.race([p.exited, sleep(10_000, null, { ref: false })]);
        if (exit === null) p.kill();
      }
    }
  });
});
