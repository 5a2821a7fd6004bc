// End to end: `kill -9` of an llmtap process during a burst leaves a usage store that parses and holds every
// exchange that finished more than one flush interval before the kill; a restart reads it and carries on.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { UsageRecord } from '../../src/usage/record.ts';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.ts';
import { jsonOf, postJson, send } from '../helpers/http-client.ts';
import { spawnLlmtap, type LlmtapProcess } from '../helpers/llmtap-process.ts';

const FLUSH_MS = 400;
const WORKERS = 8;

let dir: string;
let mock: MockUpstream;
const procs: LlmtapProcess[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'llmtap-usage-crash-'));
  mock = await startMockUpstream();
  mock.handle({ kind: 'chat', usage: { input: 9, output: 4 }, pieces: ['x', 'y'] });
});

after(async () => {
  for (const p of procs) p.kill();
  await mock?.close();
  rmSync(dir, { recursive: true, force: true });
});

const env = (file: string): Record<string, string> => ({
  LLMTAP_USAGE_FILE: file,
  LLMTAP_USAGE_FLUSH_MS: String(FLUSH_MS),
  LLMTAP_OPENAI_URL: mock.url,
  LLMTAP_ANTHROPIC_URL: mock.url,
  LLMTAP_OLLAMA_URL: mock.url,
  LLMTAP_LOG_LEVEL: 'warn',
  LLMTAP_CAPTURE: 'off',
  // Only the store is under test: no metrics listener to collide with other runs.
  OTEL_SDK_DISABLED: 'true',
  OTEL_METRICS_EXPORTER: 'none',
  OTEL_TRACES_EXPORTER: 'none',
});

/** Runs a burst of requests against a running llmtap until `ms` pass; returns when each request finished (by its unique model). */
async function burst(proc: LlmtapProcess, round: number, ms: number): Promise<{ finishedAt: Map<string, number>; killedAt: number }> {
  const finishedAt = new Map<string, number>();
  let n = 0;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop && n < 20_000) {
      const model = `burst-${round}-${n++}`;
      try {
        const r = await postJson(`${proc.url}/v1/chat/completions`, { model, stream: n % 2 === 0, messages: [{ role: 'user', content: 'hi' }] }, { authorization: 'Bearer k' }, { timeoutMs: 5000 });
        if (r.status === 200 && r.complete) finishedAt.set(model, Date.now());
      } catch {
        /* the kill cuts requests in flight */
      }
    }
  };
  const workers = Array.from({ length: WORKERS }, worker);
  await sleep(ms);
  const killedAt = Date.now();
  proc.child.kill('SIGKILL');
  const exit = await proc.exited;
  stop = true;
  await Promise.all(workers);
  assert.equal(exit.signal, 'SIGKILL');
  return { finishedAt, killedAt };
}

it('kill -9 during a burst, three times: the store parses and holds every record older than one flush interval', { timeout: 60_000 }, async () => {
  const file = join(dir, 'usage.json');
  const mustHave = new Set<string>();
  let total = 0;
  // Bursts of different lengths, so the kills land at different points of the flush cycle.
  for (const [round, ms] of [1300, 1900, 2600].entries()) {
    const proc = await spawnLlmtap({ env: env(file) });
    procs.push(proc);
    assert.ok(existsSync(file), 'the store file exists from the start');
    const { finishedAt, killedAt } = await burst(proc, round, ms);
    total += finishedAt.size;

    const text = readFileSync(file, 'utf8');
    let data: { format: string; records: UsageRecord[] } | null = null;
    assert.doesNotThrow(() => (data = JSON.parse(text) as { format: string; records: UsageRecord[] }), `round ${round}: the file parses`);
    const records = data!.records;
    assert.equal(data!.format, 'llmtap-usage');
    const stored = new Set(records.map((r) => r.model));
    const old = [...finishedAt].filter(([, at]) => at <= killedAt - FLUSH_MS).map(([m]) => m);
    for (const m of old) mustHave.add(m);
    const missing = [...mustHave].filter((m) => !stored.has(m));
    console.log(`# round ${round}: kill -9 after ${finishedAt.size} finished exchanges; ${records.length} records on disk in all; ${old.length} finished more than ${FLUSH_MS} ms before the kill; ${missing.length} missing`);
    assert.ok(old.length > 20, `the burst produced enough old records to check (${old.length})`);
    assert.deepEqual(missing, [], `round ${round}: every record older than one flush interval is on disk, earlier rounds' too`);
    assert.ok(records.length <= total, 'no record twice');
    for (const r of records) {
      assert.equal(r.outcome, 'ok');
      assert.equal(r.inputTokens, 9);
      assert.equal(r.outputTokens, 4);
    }
  }

  // A restart takes the file over, keeps adding to it, and a graceful stop writes everything.
  const onDisk = (JSON.parse(readFileSync(file, 'utf8')) as { records: UsageRecord[] }).records.length;
  const again = await spawnLlmtap({ env: env(file) });
  procs.push(again);
  const before = (jsonOf(await send(`${again.url}/v1/usage/stats`)) as { totals: { requests: number } }).totals.requests;
  assert.equal(before, onDisk);
  await postJson(`${again.url}/v1/chat/completions`, { model: 'after-restart', messages: [{ role: 'user', content: 'hi' }] }, { authorization: 'Bearer k' });
  again.child.kill('SIGTERM');
  const e2 = await again.exited;
  assert.equal(e2.code, 0, again.stderr());
  const after = JSON.parse(readFileSync(file, 'utf8')) as { records: UsageRecord[] };
  assert.equal(after.records.length, onDisk + 1);
  assert.equal(after.records[after.records.length - 1]!.model, 'after-restart');
});
