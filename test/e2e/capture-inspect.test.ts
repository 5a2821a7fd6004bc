// End to end: the inspect script on real captures — --detect-issues finds each injected fault and nothing on a clean run; --har, --json, --stats, --follow, bad input.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { configWith, type Config } from '../../src/config.ts';
import { startLlmtap } from '../../src/start.ts';
import { captureFeature } from '../../src/capture/feature.ts';
import { startMockUpstream, type MockUpstream, type Script } from '../helpers/mock-upstream.ts';
import { postJson, send } from '../helpers/http-client.ts';
import { REPO_ROOT } from '../helpers/llmtap-process.ts';

const run = promisify(execFile);
const INSPECT = join(REPO_ROOT, 'scripts', 'llmtap-inspect.mjs');

let mock: MockUpstream;
let root: string;

before(async () => {
  mock = await startMockUpstream();
  root = mkdtempSync(join(tmpdir(), 'llmtap-inspect-e2e-'));
});
after(async () => {
  await mock?.close();
  rmSync(root, { recursive: true, force: true });
});

async function inspect(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [INSPECT, ...args], { timeout: 20_000, env: { ...process.env, NO_COLOR: '1' } });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

async function llmtap(dir: string, extra: Partial<Config> = {}) {
  return startLlmtap(configWith({ port: 0, openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: mock.url, logLevel: 'silent', capture: true, captureDir: dir, ...extra }), { features: [captureFeature] });
}

const CLEAN: { path: string; body: Record<string, unknown> }[] = [
  { path: '/v1/chat/completions', body: { model: 'clean-openai', messages: [{ role: 'user', content: 'Hi' }] } },
  { path: '/v1/chat/completions', body: { model: 'clean-openai', messages: [{ role: 'user', content: 'Hi' }], stream: true } },
  { path: '/v1/messages', body: { model: 'clean-claude', max_tokens: 16, messages: [{ role: 'user', content: 'Hi' }], stream: true } },
  { path: '/v1/messages', body: { model: 'clean-claude', max_tokens: 16, messages: [{ role: 'user', content: 'Hi' }] } },
  { path: '/api/chat', body: { model: 'clean-llama', messages: [{ role: 'user', content: 'Hi' }] } },
  { path: '/api/generate', body: { model: 'clean-llama', prompt: 'Hi', stream: false } },
  { path: '/v1/embeddings', body: { model: 'clean-embed', input: 'Hi' } },
];

async function sendClean(url: string): Promise<void> {
  for (const c of CLEAN) {
    const res = await postJson(`${url}${c.path}`, c.body, { authorization: 'Bearer sk-x', 'anthropic-version': '2023-06-01' });
    assert.equal(res.status, 200, `${c.path} ${res.body.toString().slice(0, 200)}`);
  }
}

const SSE = { 'content-type': 'text/event-stream' };
/** model name → the script that injects its fault, and the issue kind --detect-issues must report for it */
const FAULTS: { model: string; path: string; kind: string; script: Script; abortAfterFirstChunk?: boolean }[] = [
  { model: 'fault-cut', path: '/v1/chat/completions', kind: 'truncated_stream', script: { kind: 'chat', fault: { kind: 'destroy', afterFrames: 3 } } },
  {
    model: 'fault-no-stop',
    path: '/v1/messages',
    kind: 'truncated_stream',
    script: { kind: 'raw', status: 200, headers: SSE, body: ['event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"fault-no-stop","usage":{"input_tokens":3,"output_tokens":1}}}\n\n', 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}\n\n'] },
  },
  { model: 'fault-500', path: '/v1/chat/completions', kind: 'upstream_error', script: { kind: 'raw', status: 500, headers: { 'content-type': 'application/json' }, body: '{"error":{"message":"The server had an error","type":"server_error"}}' } },
  { model: 'fault-429', path: '/v1/chat/completions', kind: 'rate_limited', script: { kind: 'fixture', file: 'openai/error_429_rate_limit_exceeded.json', status: 429 } },
  { model: 'fault-abort', path: '/api/chat', kind: 'client_aborted', script: { kind: 'chat', gapMs: 300, pieces: ['a', 'b', 'c', 'd', 'e'] }, abortAfterFirstChunk: true },
  { model: 'fault-slow', path: '/v1/messages', kind: 'slow_first_chunk', script: { kind: 'chat', firstChunkDelayMs: 700 } },
  { model: 'fault-gap', path: '/api/generate', kind: 'long_gap', script: { kind: 'chat', gapMs: 600, pieces: ['x', 'y'] } },
  { model: 'fault-dropped', path: '/v1/chat/completions', kind: 'no_response', script: { kind: 'drop' } },
  {
    model: 'fault-no-usage',
    path: '/v1/chat/completions',
    kind: 'missing_usage',
    script: { kind: 'raw', status: 200, headers: { 'content-type': 'application/json' }, body: '{"id":"c","object":"chat.completion","model":"fault-no-usage","choices":[{"index":0,"message":{"role":"assistant","content":"hi there"},"finish_reason":"stop"}]}' },
  },
];
const THRESHOLDS = ['--slow-ms', '400', '--gap-ms', '450'];

describe('--detect-issues', () => {
  const cleanDir = () => join(root, 'clean');
  const faultDir = () => join(root, 'faults');

  before(async () => {
    const clean = await llmtap(cleanDir());
    await sendClean(clean.url);
    await clean.close();

    const proxy = await llmtap(faultDir());
    await sendClean(proxy.url);
    for (const f of FAULTS) {
      mock.once(f.script);
      const stream = f.model !== 'fault-no-usage' && f.model !== 'fault-500' && f.model !== 'fault-dropped';
      const body = { model: f.model, max_tokens: 16, messages: [{ role: 'user', content: 'Hi' }], prompt: 'Hi', stream };
      if (f.abortAfterFirstChunk) {
        await send(`${proxy.url}${f.path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), onChunk: (_c, abort) => abort() });
      } else {
        await postJson(`${proxy.url}${f.path}`, body, { authorization: 'Bearer sk-x', 'anthropic-version': '2023-06-01' });
      }
    }
    await proxy.close();
  });

  it('reports nothing on a clean run', async () => {
    const r = await inspect([cleanDir(), '--detect-issues', ...THRESHOLDS]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '', 'no issue lines');
    assert.match(r.stderr, new RegExp(`no issues found in ${CLEAN.length} exchange\\(s\\)`));
  });

  it('finds each injected fault, one line each with the exchange id, and nothing for the clean exchanges beside them', async () => {
    const json = await inspect([faultDir(), '--json']);
    assert.equal(json.code, 0, json.stderr);
    const rows = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string; model: string; outcome: string; status: number | null });
    assert.equal(rows.length, CLEAN.length + FAULTS.length);
    const idOf = new Map(rows.map((r) => [r.model, r.id]));

    const r = await inspect([faultDir(), '--detect-issues', ...THRESHOLDS]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    for (const f of FAULTS) {
      const id = idOf.get(f.model);
      assert.ok(id, `${f.model} captured`);
      const mine = lines.filter((l) => l.includes(id));
      assert.ok(mine.some((l) => new RegExp(`\\s${id}\\s+${f.kind}\\s`).test(l)), `${f.model}: expected ${f.kind}, got:\n${mine.join('\n') || '(nothing)'}`);
    }
    for (const l of lines) assert.ok(/ fault-/.test(l), `only faults are reported: ${l}`);
    assert.ok(!lines.some((l) => l.includes('clean-')));
  });

  it('--har writes HAR 1.2 with the required fields for every exchange', async () => {
    const out = join(root, 'faults.har');
    const r = await inspect([faultDir(), '--har', out]);
    assert.equal(r.code, 0, r.stderr);
    const har = JSON.parse(readFileSync(out, 'utf8')) as { log: Record<string, unknown> };
    const log = har.log;
    assert.equal(log.version, '1.2');
    assert.equal(typeof (log.creator as { name: string }).name, 'string');
    assert.equal(typeof (log.creator as { version: string }).version, 'string');
    const entries = log.entries as Record<string, Record<string, unknown>>[];
    assert.equal(entries.length, CLEAN.length + FAULTS.length);
    for (const e of entries) {
      const label = JSON.stringify(e._llmtap);
      assert.ok(!Number.isNaN(Date.parse(String(e.startedDateTime))), label);
      assert.equal(typeof e.time, 'number');
      assert.ok((e.time as unknown as number) >= 0);
      assert.deepEqual(e.cache, {});
      const req = e.request!;
      for (const k of ['method', 'url', 'httpVersion']) assert.equal(typeof req[k], 'string', `${label} request.${k}`);
      for (const k of ['cookies', 'headers', 'queryString']) assert.ok(Array.isArray(req[k]), `${label} request.${k}`);
      for (const k of ['headersSize', 'bodySize']) assert.equal(typeof req[k], 'number', `${label} request.${k}`);
      assert.ok(new URL(String(req.url)).protocol.startsWith('http'));
      const res = e.response!;
      for (const k of ['status', 'headersSize', 'bodySize']) assert.equal(typeof res[k], 'number', `${label} response.${k}`);
      for (const k of ['statusText', 'httpVersion', 'redirectURL']) assert.equal(typeof res[k], 'string', `${label} response.${k}`);
      for (const k of ['cookies', 'headers']) assert.ok(Array.isArray(res[k]), `${label} response.${k}`);
      const content = res.content as Record<string, unknown>;
      assert.equal(typeof content.size, 'number');
      assert.equal(typeof content.mimeType, 'string');
      const t = e.timings as Record<string, number>;
      for (const k of ['send', 'wait', 'receive']) assert.ok(typeof t[k] === 'number' && t[k]! >= 0, `${label} timings.${k}`);
      for (const h of [...(req.headers as { name: string; value: string }[]), ...(res.headers as { name: string; value: string }[])]) {
        assert.equal(typeof h.name, 'string');
        assert.equal(typeof h.value, 'string');
      }
    }
    const streamed = entries.find((e) => (e._llmtap as { model: string }).model === 'clean-claude' && String((e.request!.postData as { text: string }).text).includes('"stream":true'))!;
    assert.match(String((streamed.response!.content as { text: string }).text), /event: message_stop/);
  });

  it('--stats gives counts and percentiles per model; --filter and --last narrow the table', async () => {
    const stats = await inspect([cleanDir(), '--stats']);
    assert.equal(stats.code, 0, stats.stderr);
    assert.match(stats.stdout, /^model\s+count\s+errors.*ttft p50\s+p95\s+p99\s+duration p50\s+p95\s+p99/m);
    assert.match(stats.stdout, /^clean-openai\s+2\s+0\s/m);
    assert.match(stats.stdout, /^\*\s+7\s+0\s/m);

    const filtered = await inspect([faultDir(), '--json', '--filter', 'status=4xx']);
    const models = filtered.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { model: string }).model);
    assert.deepEqual(models, ['fault-429']);
    const byOutcome = await inspect([faultDir(), '--json', '--filter', 'outcome=client_aborted,path=/api/']);
    assert.deepEqual(byOutcome.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { model: string }).model), ['fault-abort']);
    const glob = await inspect([faultDir(), '--json', '--filter', 'model=clean-*', '--last', '2']);
    assert.deepEqual(glob.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { model: string }).model), ['clean-llama', 'clean-embed']);
    const future = await inspect([faultDir(), '--json', '--filter', 'since=2999-01-01T00:00:00Z']);
    assert.equal(future.stdout, '');

    const table = await inspect([cleanDir()]);
    assert.equal(table.code, 0);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0]!, /time \(UTC\)\s+id\s+request\s+model\s+status\s+outcome\s+ttft\s+duration\s+tok in\/out\s+bytes in\/out/);
    assert.equal(lines.length, CLEAN.length + 1);
    assert.match(lines[2]!, /POST \/v1\/chat\/completions\s+clean-openai\s+200\s+ok\s+\d+ms\s+\d+ms\s+12\/6\s/);
    assert.ok(!table.stdout.includes('\x1b['), 'no colours when not on a terminal');
  });
});

describe('bad input', () => {
  it('a missing path, a file that is not a capture and a bad option each get a clear message', async () => {
    const missing = await inspect([join(root, 'nope')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nope: no such file or folder/);
    const other = join(root, 'other.cbor');
    writeFileSync(other, '{"just":"json"}\n');
    const foreign = await inspect([other]);
    assert.equal(foreign.code, 1);
    assert.match(foreign.stderr, /other\.cbor is not an llmtap capture/);
    const bad = await inspect([root, '--filter', 'colour=red']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--filter colour: unknown key/);
  });
});

describe('--follow', () => {
  it('prints each exchange as llmtap finishes it', async () => {
    const dir = join(root, 'follow');
    const proxy = await llmtap(dir);
    // A first exchange makes the file exist.
    await postJson(`${proxy.url}/v1/chat/completions`, { model: 'follow-1', messages: [{ role: 'user', content: 'Hi' }] });
    const child = spawn(process.execPath, [INSPECT, dir, '--follow', '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const waitFor = async (model: string): Promise<void> => {
      const deadline = Date.now() + 10_000;
      while (!out.includes(`"model":"${model}"`)) {
        if (Date.now() > deadline) throw new Error(`--follow did not print ${model}; got: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      await waitFor('follow-1');
      await postJson(`${proxy.url}/v1/chat/completions`, { model: 'follow-2', messages: [{ role: 'user', content: 'Hi' }], stream: true });
      await waitFor('follow-2');
    } finally {
      child.kill('SIGINT');
      await proxy.close();
    }
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    assert.equal(code, 0);
    assert.equal(out.trim().split('\n').length, 2);
  });
});
