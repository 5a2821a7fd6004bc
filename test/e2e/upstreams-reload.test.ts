// End to end: the llmtap command with a config file's upstreams list; SIGHUP with a changed file reroutes new requests without cutting one in flight, and a broken file is refused with the old list kept.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnLlmtap, type LlmtapProcess } from '../helpers/llmtap-process.ts';
import { startMockUpstream, DEFAULT_PIECES, type MockUpstream } from '../helpers/mock-upstream.ts';
import { jsonOf, postJson, send } from '../helpers/http-client.ts';
import { pollFor, sseContent } from '../helpers/upstreams-watch.ts';

const MODEL = 'm';

let dir: string;
let file: string;
let a: MockUpstream;
let b: MockUpstream;
let proc: LlmtapProcess;

const fileWith = (entries: Array<{ name: string; url: string }>): string =>
  [
    'health_interval_ms: 200',
    'upstreams:',
    ...entries.flatMap((e) => [`  - name: ${e.name}`, '    dialect: openai', `    url: ${e.url}`, `    models: [${MODEL}]`]),
    '',
  ].join('\n');

const chatCount = (m: MockUpstream): number => m.requests.filter((r) => r.path === '/v1/chat/completions').length;
const chat = (stream = false) => postJson(`${proc.url}/v1/chat/completions`, { model: MODEL, stream, messages: [{ role: 'user', content: 'hi' }] }, { authorization: 'Bearer sk-test' }, { timeoutMs: 10_000 });
const healthNames = async (): Promise<string[]> => Object.keys((jsonOf(await send(`${proc.url}/health`)) as { upstreams: Record<string, unknown> }).upstreams).sort();

/** The messages of llmtap's JSON log lines so far. */
function logMessages(): string[] {
  const out: string[] = [];
  for (const line of proc.stdout().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const msg = (JSON.parse(line) as { msg?: unknown }).msg;
      if (typeof msg === 'string') out.push(msg);
    } catch {
      /* a line cut by the read: the next poll has it whole */
    }
  }
  return out;
}

/** Sends SIGHUP and waits (bounded; the log is flushed at least once a second) for one more log line matching re. */
async function hangUpAndWaitForLog(re: RegExp): Promise<string> {
  const before = logMessages().filter((m) => re.test(m)).length;
  process.kill(proc.child.pid!, 'SIGHUP');
  return pollFor(
    `a new log line matching ${re}`,
    async () => {
      const hits = logMessages().filter((m) => re.test(m));
      return hits.length > before ? hits[hits.length - 1] : undefined;
    },
    () => `stdout tail: ${proc.stdout().slice(-1500)} stderr: ${proc.stderr().slice(-500)}`,
    6000,
    50,
  );
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'llmtap-upstreams-reload-'));
  file = join(dir, 'llmtap.yaml');
  a = await startMockUpstream({ name: 'A' });
  b = await startMockUpstream({ name: 'B' });
  writeFileSync(file, fileWith([{ name: 'A', url: a.url }]));
  proc = await spawnLlmtap({ env: { LLMTAP_CONFIG: file, LLMTAP_USAGE: 'off', OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none' } });
});

after(async () => {
  proc?.kill();
  await proc?.exited;
  await a?.close();
  await b?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('SIGHUP reloads the upstreams list', () => {
  it('starts routing model m to A', async () => {
    const r = await chat();
    assert.equal(r.status, 200, r.body.toString('utf8').slice(0, 300));
    assert.equal(chatCount(a), 1);
    assert.equal(chatCount(b), 0);
    assert.deepEqual(await healthNames(), ['A']);
  });

  it('a changed file: new requests for m go to B, a stream in flight at A completes intact, the log says reloaded', async () => {
    // ~1.7 s stream at A, still running when the reload happens.
    a.handle({ kind: 'chat', firstChunkDelayMs: 200, gapMs: 300 });
    const slow = chat(true);
    const atA = await a.waitForRequest((r) => r.path === '/v1/chat/completions' && (r.json as { stream?: boolean } | undefined)?.stream === true, 5000);

    writeFileSync(file, fileWith([{ name: 'B', url: b.url }]));
    process.kill(proc.child.pid!, 'SIGHUP');
    await pollFor('/health listing B only', async () => ((await healthNames()).join() === 'B' ? true : undefined), () => proc.stdout().slice(-800), 5000, 20);
    assert.equal(atA.responseEnded, false, 'the stream at A was still in flight when the new list took over');

    const r = await chat();
    assert.equal(r.status, 200, r.body.toString('utf8').slice(0, 300));
    assert.equal(chatCount(b), 1, 'the new request for m reached B');
    assert.equal(chatCount(a), 2, 'and not A');

    const s = await slow;
    assert.equal(s.status, 200);
    assert.ok(s.complete, 'the in-flight stream ended normally');
    assert.equal(s.error, null);
    assert.equal(sseContent(s.body.toString('utf8')), DEFAULT_PIECES.join(''), 'every piece arrived');
    assert.match(s.body.toString('utf8'), /data: \[DONE\]\n\n$/);
    assert.ok(atA.responseEnded);

    const logged = await pollFor(
      'the reload log line',
      async () => logMessages().find((m) => /upstreams reloaded from/.test(m)),
      () => proc.stdout().slice(-1500),
      5000,
      50,
    );
    assert.ok(logged.includes(file) && logged.includes('B (openai'), logged);
  });

  it('a file that is not YAML: refused, naming the problem; m still goes to B', async () => {
    writeFileSync(file, 'upstreams:\n  - name: C\n    url: [unclosed\n   dialect: : openai\n');
    const msg = await hangUpAndWaitForLog(/upstream reload refused/);
    assert.ok(msg.includes(file), msg);
    assert.match(msg, /does not parse/);
    assert.match(msg, /kept the previous upstreams/);
    const before = chatCount(b);
    const r = await chat();
    assert.equal(r.status, 200);
    assert.equal(chatCount(b), before + 1, 'routed by the previous list');
    assert.deepEqual(await healthNames(), ['B']);
  });

  it('an entry with a bad url: refused, naming the entry and field; m still goes to B', async () => {
    writeFileSync(file, fileWith([{ name: 'C', url: 'not-a-url' }]));
    const msg = await hangUpAndWaitForLog(/upstream reload refused/);
    assert.ok(msg.includes(file), msg);
    assert.ok(msg.includes('upstreams[0] ("C").url: "not-a-url" is not a URL'), msg);
    assert.match(msg, /kept the previous upstreams/);
    const before = chatCount(b);
    const r = await chat();
    assert.equal(r.status, 200);
    assert.equal(chatCount(b), before + 1, 'routed by the previous list');
    assert.deepEqual(await healthNames(), ['B']);
    assert.equal(proc.child.exitCode, null, 'llmtap kept running');
  });
});
