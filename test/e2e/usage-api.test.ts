// End to end: the usage API as a user calls it — stats and filters, recent, exports, NOMYO Router shapes, cost,
// bad parameters, admin access, health, live activity, the SSE stream and `npm run top`.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { configWith } from '../../src/config.ts';
import { startLlmtap, type RunningLlmtap } from '../../src/start.ts';
import { createUsageFeature } from '../../src/usage/feature.ts';
import { USAGE_FIELDS, type UsageRecord } from '../../src/usage/record.ts';
import type { Stats } from '../../src/usage/stats.ts';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.ts';
import { postJson, send, jsonOf, type RawResponse } from '../helpers/http-client.ts';
import { freePort } from '../helpers/free-port.ts';
import { REPO_ROOT } from '../helpers/llmtap-process.ts';

const SECRET_PROMPT = 'the secret prompt text never stored';
const TOKEN = 'admin-s3cret-token';
const feature = createUsageFeature({ streamIntervalMs: 100, heartbeatMs: 300, healthTtlMs: 100, healthTimeoutMs: 1000 });

let dir: string;
let mock: MockUpstream;
let proxy: RunningLlmtap;
let guarded: RunningLlmtap;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'llmtap-usage-api-'));
  mock = await startMockUpstream();
  const urls = { openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: mock.url };
  proxy = await startLlmtap(configWith({ port: 0, ...urls, logLevel: 'silent', usageFile: join(dir, 'usage.json'), usageFlushMs: 100 }), { features: [feature] });
  guarded = await startLlmtap(configWith({ port: 0, ...urls, logLevel: 'silent', usageFile: join(dir, 'guarded.json'), adminToken: TOKEN }), { features: [feature] });
});

after(async () => {
  await proxy?.close();
  await guarded?.close();
  await mock?.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => mock.reset());

const get = (via: RunningLlmtap, path: string, headers: Record<string, string> = {}): Promise<RawResponse> => send(`${via.url}${path}`, { headers });
const getJson = async <T>(via: RunningLlmtap, path: string): Promise<T> => {
  const r = await get(via, path);
  assert.equal(r.status, 200, `${path}: ${r.body.toString('utf8').slice(0, 300)}`);
  return jsonOf(r) as T;
};

const chat = (via: RunningLlmtap, model: string, stream = false) =>
  postJson(`${via.url}/v1/chat/completions`, { model, stream, messages: [{ role: 'user', content: SECRET_PROMPT }] }, { authorization: 'Bearer sk-test' });
const messages = (via: RunningLlmtap, model: string, stream = false) =>
  postJson(`${via.url}/v1/messages`, { model, stream, max_tokens: 64, messages: [{ role: 'user', content: SECRET_PROMPT }] }, { 'x-api-key': 'sk-ant-test', 'anthropic-version': '2023-06-01' });
const ollama = (via: RunningLlmtap, model: string) => postJson(`${via.url}/api/chat`, { model, messages: [{ role: 'user', content: SECRET_PROMPT }] });

/** Waits (bounded) until the store holds `n` records in all. */
async function waitForRecords(via: RunningLlmtap, n: number): Promise<Stats> {
  const deadline = Date.now() + 5000;
  for (let i = 0; i < 500; i++) {
    const s = await getJson<Stats>(via, '/v1/usage/stats');
    if (s.totals.requests >= n || Date.now() > deadline) return s;
    await sleep(20);
  }
  throw new Error('unreachable');
}

/** Parses RFC 4180 CSV (quoted fields, doubled quotes, CRLF rows). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(cell), (cell = '');
    else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      (row = []), (cell = ''), i++;
    } else cell += c;
  }
  if (cell !== '' || row.length > 0) row.push(cell), rows.push(row);
  return rows;
}

let base = 0;

describe('usage API', () => {
  it('stats: totals, percentiles and per model/upstream breakdown, with each filter', async () => {
    base = (await getJson<Stats>(proxy, '/v1/usage/stats')).totals.requests;
    mock.handle((req) => {
      const model = (req.json as { model?: string } | undefined)?.model ?? '';
      return model.startsWith('claude')
        ? { kind: 'chat', usage: { input: 1000, output: 200, cached: 400 } }
        : model === 'gpt-4o'
          ? { kind: 'chat', usage: { input: 1000, output: 500 }, gapMs: 2 }
          : { kind: 'chat', usage: { input: 30, output: 7 } };
    });
    for (const r of await Promise.all([chat(proxy, 'gpt-4o'), chat(proxy, 'gpt-4o', true), chat(proxy, 'gpt-4o', true), messages(proxy, 'claude-sonnet-4-5', true), ollama(proxy, 'llama3:latest')])) assert.equal(r.status, 200);
    const s = await waitForRecords(proxy, base + 5);
    assert.equal(s.totals.requests, base + 5);

    const only = await getJson<Stats>(proxy, '/v1/usage/stats?model=gpt-4o');
    assert.equal(only.totals.requests, 3);
    assert.deepEqual(only.byModel.map((m) => m.model), ['gpt-4o']);
    assert.equal(only.totals.inputTokens, 3000);
    assert.equal(only.totals.outputTokens, 1500);
    assert.equal(only.totals.totalTokens, 4500);
    assert.equal(only.totals.errors, 0);
    assert.equal(only.totals.ttftMs.count, 2, 'ttft is for streams');
    assert.equal(only.totals.durationMs.count, 3);
    const p = only.totals.durationMs;
    assert.ok(p.p50! > 0 && p.p50! <= p.p95! && p.p95! <= p.p99!, JSON.stringify(p));
    assert.equal(p.exact, true);

    const anthropic = await getJson<Stats>(proxy, '/v1/usage/stats?provider=anthropic');
    assert.equal(anthropic.totals.requests, 1);
    assert.equal(anthropic.totals.inputTokens, 1400, 'Anthropic input counts fresh and cached tokens');
    assert.equal(anthropic.totals.cachedTokens, 400);
    const ol = await getJson<Stats>(proxy, '/v1/usage/stats?upstream=ollama');
    assert.deepEqual(ol.byUpstream.map((u) => [u.upstream, u.requests]), [['ollama', 1]]);
    assert.equal(ol.byUpstream[0]!.upstreamUrl, mock.url);

    const future = await getJson<Stats>(proxy, `/v1/usage/stats?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`);
    assert.equal(future.totals.requests, 0);
    const past = await getJson<Stats>(proxy, '/v1/usage/stats?until=2000-01-01');
    assert.equal(past.totals.requests, 0);
    const window = await getJson<Stats>(proxy, '/v1/usage/stats?since=10m&model=gpt-4o');
    assert.equal(window.totals.requests, 3);
    assert.ok(s.byModel.some((m) => m.model === 'llama3:latest' && m.provider === 'ollama'));
  });

  it('cost of a known model is tokens x price, and totals include it', async () => {
    const only = await getJson<Stats>(proxy, '/v1/usage/stats?model=gpt-4o');
    // gpt-4o: $2.50 per million input tokens, $10 per million output
    const perRequest = (1000 * 2.5 + 500 * 10) / 1e6;
    assert.ok(Math.abs(only.totals.cost - 3 * perRequest) < 1e-12, `${only.totals.cost} vs ${3 * perRequest}`);
    assert.equal(only.totals.pricedRequests, 3);
    const recent = await getJson<{ records: UsageRecord[] }>(proxy, '/v1/usage/recent?limit=20');
    for (const r of recent.records.filter((x) => x.model === 'gpt-4o')) assert.ok(Math.abs(r.cost! - perRequest) < 1e-12);
    // claude-sonnet-4-5: 1000 fresh at $3, 400 cached at $0.30, 200 out at $15
    const claude = recent.records.find((x) => x.model === 'claude-sonnet-4-5')!;
    assert.ok(Math.abs(claude.cost! - (1000 * 3 + 400 * 0.3 + 200 * 15) / 1e6) < 1e-12, String(claude.cost));
    const llama = recent.records.find((x) => x.model === 'llama3:latest')!;
    assert.equal(llama.cost, null, 'no price, no cost');
    const all = await getJson<Stats>(proxy, '/v1/usage/stats');
    assert.ok(all.totals.unpricedRequests >= 1);
  });

  it('recent: the newest records first, with every field and no message content', async () => {
    const r = await getJson<{ count: number; records: UsageRecord[] }>(proxy, '/v1/usage/recent?limit=2');
    assert.equal(r.count, 2);
    assert.equal(r.records.length, 2);
    assert.ok(r.records[0]!.time >= r.records[1]!.time);
    assert.deepEqual(Object.keys(r.records[0]!).sort(), [...USAGE_FIELDS].sort());
    const everything = (await get(proxy, '/v1/usage/recent?limit=1000')).body.toString('utf8') + (await get(proxy, '/v1/usage/export?format=ndjson')).body.toString('utf8');
    assert.ok(!everything.includes(SECRET_PROMPT), 'no prompt text in the API');
    await sleep(300);
    assert.ok(!readFileSync(join(dir, 'usage.json'), 'utf8').includes(SECRET_PROMPT), 'no prompt text in the store file');
    assert.ok(!everything.includes('sk-test'), 'no credentials either');
  });

  it('export: json, ndjson and csv hold the same records, and csv parses back to them', async () => {
    const json = await get(proxy, '/v1/usage/export?format=json');
    assert.equal(json.status, 200);
    assert.match(String(json.headers['content-type']), /application\/json/);
    assert.match(String(json.headers['content-disposition']), /attachment; filename="llmtap-usage.json"/);
    assert.equal(json.headers['content-length'], undefined, 'streamed, not built whole');
    const records = JSON.parse(json.body.toString('utf8')) as UsageRecord[];
    assert.ok(records.length >= 5);
    const nd = (await get(proxy, '/v1/usage/export?format=ndjson')).body.toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as UsageRecord);
    assert.deepEqual(nd, records);
    const csv = await get(proxy, '/v1/usage/export?format=csv');
    assert.match(String(csv.headers['content-type']), /text\/csv/);
    const rows = parseCsv(csv.body.toString('utf8'));
    assert.deepEqual(rows[0], [...USAGE_FIELDS]);
    assert.equal(rows.length - 1, records.length);
    rows.slice(1).forEach((row, i) => {
      const rec = records[i]!;
      USAGE_FIELDS.forEach((f, j) => assert.equal(row[j], rec[f] === null ? '' : String(rec[f]), `${f} of record ${i}`));
    });
    const filtered = JSON.parse((await get(proxy, '/v1/usage/export?model=gpt-4o&since=1h')).body.toString('utf8')) as UsageRecord[];
    assert.equal(filtered.length, 3);
    assert.deepEqual(JSON.parse((await get(proxy, '/v1/usage/export?until=2000-01-01')).body.toString('utf8')), []);
  });

  it('/api/usage and /api/token_counts answer in NOMYO Router\'s shapes', async () => {
    const tc = await getJson<{ total_tokens: number; breakdown: Array<{ endpoint: string; model: string; input_tokens: number; output_tokens: number; total_tokens: number }> }>(proxy, '/api/token_counts');
    const stats = await getJson<Stats>(proxy, '/v1/usage/stats');
    assert.equal(tc.total_tokens, stats.totals.totalTokens);
    const row = tc.breakdown.find((b) => b.model === 'gpt-4o')!;
    assert.deepEqual(row, { endpoint: mock.url, model: 'gpt-4o', input_tokens: 3000, output_tokens: 1500, total_tokens: 4500 });
    assert.equal(tc.breakdown.reduce((a, b) => a + b.total_tokens, 0), tc.total_tokens);
    const u = await getJson<{ usage_counts: Record<string, Record<string, number>>; token_usage_counts: Record<string, Record<string, number>> }>(proxy, '/api/usage');
    assert.deepEqual(Object.keys(u).sort(), ['token_usage_counts', 'usage_counts']);
    assert.equal(u.usage_counts[mock.url]!['gpt-4o'], 0, 'nothing in flight');
    assert.equal(u.token_usage_counts[mock.url]!['gpt-4o'], 4500);
  });

  it('bad query parameters get 400 naming the parameter, and nothing is forwarded', async () => {
    const cases: Array<[string, string]> = [
      ['/v1/usage/stats?since=yesterday', 'since'],
      ['/v1/usage/stats?until=2025-13-01', 'until'],
      ['/v1/usage/stats?since=2025-02-01&until=2025-01-01', 'since'],
      ['/v1/usage/stats?model=', 'model'],
      ['/v1/usage/stats?modle=gpt-4o', 'modle'],
      ['/v1/usage/recent?limit=0', 'limit'],
      ['/v1/usage/recent?limit=lots', 'limit'],
      ['/v1/usage/recent?limit=1&limit=2', 'limit'],
      ['/v1/usage/export?format=xml', 'format'],
      ['/health?upstream=nowhere', 'upstream'],
      ['/api/token_counts?x=1', 'x'],
    ];
    for (const [path, parameter] of cases) {
      const r = await get(proxy, path);
      assert.equal(r.status, 400, path);
      const body = jsonOf(r) as { error: { code: string; message: string; parameter: string } };
      assert.equal(body.error.code, 'LLMTAP_BAD_PARAMETER', path);
      assert.equal(body.error.parameter, parameter, path);
      assert.ok(body.error.message.includes(`"${parameter}"`), `${path}: ${body.error.message}`);
    }
    assert.equal((await get(proxy, '/v1/usage/nope')).status, 404);
    const post = await postJson(`${proxy.url}/v1/usage/stats`, {});
    assert.equal(post.status, 405);
    assert.equal(mock.requests.length, 0, 'llmtap answered these itself');
  });

  it('admin endpoints with LLMTAP_ADMIN_TOKEN: missing or wrong token gets 401 and is not served; the token gets in; /health stays open', async () => {
    for (const path of ['/v1/usage/stats', '/v1/usage/recent', '/v1/usage/export?format=csv', '/api/usage', '/api/token_counts', '/api/usage-stream', '/v1/diagnostics', '/v1/diagnostics/activity']) {
      for (const headers of [{} as Record<string, string>, { authorization: 'Bearer wrong-token' }, { authorization: `Bearer ${TOKEN}x` }, { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` }]) {
        const r = await get(guarded, path, headers);
        assert.equal(r.status, 401, `${path} ${JSON.stringify(headers)}`);
        assert.equal(r.headers['www-authenticate'], 'Bearer realm="llmtap"');
        const body = jsonOf(r) as { error: { code: string; message: string } };
        assert.equal(body.error.code, 'LLMTAP_UNAUTHORIZED');
        assert.match(body.error.message, /Bearer|token/);
        assert.deepEqual(Object.keys(body), ['error'], 'nothing else is served');
      }
    }
    const ok = await get(guarded, '/v1/usage/stats', { authorization: `Bearer ${TOKEN}` });
    assert.equal(ok.status, 200);
    assert.equal((jsonOf(ok) as Stats).totals.requests, 0);
    assert.equal((await get(guarded, '/health')).status, 200);
    const page = await get(guarded, '/dashboard');
    assert.equal(page.status, 200, 'the page holds no data; it asks for the token');
  });

  it('/health: 200 when every upstream answers, 503 naming the one that does not', async () => {
    const r = await get(proxy, '/health');
    assert.equal(r.status, 200);
    const h = jsonOf(r) as { status: string; upstreams: Record<string, { status: string; url: string }>; llmtap: { status: string } };
    assert.equal(h.status, 'ok');
    assert.equal(h.llmtap.status, 'ok');
    assert.deepEqual(Object.keys(h.upstreams).sort(), ['anthropic', 'ollama', 'openai']);
    const deadPort = await freePort();
    const dead = `http://127.0.0.1:${deadPort}`;
    const broken = await startLlmtap(configWith({ port: 0, openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: dead, logLevel: 'silent', usageFile: join(dir, 'broken.json') }), { features: [feature] });
    try {
      const b = await get(broken, '/health');
      assert.equal(b.status, 503);
      const body = jsonOf(b) as { status: string; message: string; upstreams: Record<string, { status: string; error?: string }> };
      assert.equal(body.status, 'degraded');
      assert.match(body.message, new RegExp(`upstream ollama \\(${dead.replace(/[.]/g, '\\.')}\\) is unreachable: .*ECONNREFUSED`));
      assert.equal(body.upstreams.ollama!.status, 'down');
      assert.equal(body.upstreams.openai!.status, 'ok');
      assert.equal((await get(broken, '/health?upstream=openai')).status, 200, 'one upstream can be asked about alone');
    } finally {
      await broken.close();
    }
  });

  it('a long stream shows in /v1/diagnostics/activity with growing byte counts, and leaves it when done', async () => {
    mock.handle({ kind: 'chat', pieces: Array.from({ length: 25 }, (_, i) => ` piece-${i}`), gapMs: 80, usage: { input: 5, output: 25 } });
    const streaming = chat(proxy, 'gpt-4o-mini', true);
    type Activity = { count: number; active: Array<{ model: string; dialect: string; upstream: string; stream: boolean; ageMs: number; bytes: { fromUpstream: number; sentToClient: number; sentUpstream: number } }>; perUpstream: Array<{ upstream: string; active: number }> };
    const seen: Activity['active'] = [];
    const deadline = Date.now() + 4000;
    while (Date.now() < deadline) {
      const a = await getJson<Activity>(proxy, '/v1/diagnostics/activity');
      const mine = a.active.find((x) => x.model === 'gpt-4o-mini');
      if (mine) {
        seen.push(mine);
        assert.equal(a.perUpstream.find((u) => u.upstream === 'openai')?.active, 1);
      }
      if (seen.length >= 2 && seen[seen.length - 1]!.bytes.sentToClient > seen[0]!.bytes.sentToClient) break;
      await sleep(150);
    }
    assert.ok(seen.length >= 2, 'the stream was seen in flight');
    const first = seen[0]!;
    const last = seen[seen.length - 1]!;
    assert.equal(first.dialect, 'openai');
    assert.equal(first.upstream, 'openai');
    assert.equal(first.stream, true);
    assert.ok(first.bytes.sentUpstream > 0);
    assert.ok(last.bytes.sentToClient > first.bytes.sentToClient, `bytes grow: ${first.bytes.sentToClient} -> ${last.bytes.sentToClient}`);
    assert.ok(last.bytes.fromUpstream >= last.bytes.sentToClient - 1);
    assert.ok(last.ageMs > first.ageMs);
    const u = await getJson<{ usage_counts: Record<string, Record<string, number>> }>(proxy, '/api/usage');
    assert.equal(u.usage_counts[mock.url]!['gpt-4o-mini'], 1, 'NOMYO usage_counts shows it in flight');
    const diag = await getJson<{ active: { count: number } }>(proxy, '/v1/diagnostics');
    assert.equal(diag.active.count, 1);
    const done = await streaming;
    assert.equal(done.status, 200);
    let after: Activity | null = null;
    for (let i = 0; i < 50; i++) {
      after = await getJson<Activity>(proxy, '/v1/diagnostics/activity');
      if (after.count === 0) break;
      await sleep(20);
    }
    assert.equal(after!.count, 0, 'gone once finished');
  });

  it('the SSE stream sends a snapshot on connect, an update for a finished exchange, coalesced, with heartbeats; a client that leaves is dropped', async () => {
    const events: Array<Record<string, unknown>> = [];
    let raw = '';
    let abort: () => void = () => {};
    const req = http.get(`${proxy.url}/api/usage-stream`, (res) => {
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers['content-type']), /^text\/event-stream/);
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        raw += d;
        let at: number;
        while ((at = raw.indexOf('\n\n')) !== -1) {
          const block = raw.slice(0, at);
          raw = raw.slice(at + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (data) events.push(JSON.parse(data) as Record<string, unknown>);
          else if (block.startsWith(': ping')) events.push({ type: 'heartbeat' });
        }
      });
    });
    req.on('error', () => {});
    abort = () => req.destroy();
    try {
      const waitFor = async (pred: () => boolean, what: string): Promise<void> => {
        const deadline = Date.now() + 4000;
        while (!pred() && Date.now() < deadline) await sleep(20);
        assert.ok(pred(), what);
      };
      await waitFor(() => events.length > 0, 'a snapshot on connect');
      const snap = events[0]!;
      assert.equal(snap.type, 'snapshot');
      assert.ok(snap.usage_counts && snap.token_usage_counts, 'NOMYO Router keys');
      assert.ok(Array.isArray(snap.finished) && Array.isArray(snap.active) && Array.isArray(snap.models));
      const diag = await getJson<{ usage: { streamClients: number } }>(proxy, '/v1/diagnostics');
      assert.equal(diag.usage.streamClients, 1);

      mock.handle({ kind: 'chat', usage: { input: 3, output: 2 } });
      const t0 = Date.now();
      await Promise.all(Array.from({ length: 20 }, () => chat(proxy, 'sse-probe-model')));
      const finishedIds = (): string[] => events.filter((e) => e.type === 'update').flatMap((e) => (e.finished as UsageRecord[]).filter((r) => r.model === 'sse-probe-model').map((r) => r.id));
      await waitFor(() => finishedIds().length === 20, 'an update for each finished exchange');
      const updates = events.filter((e) => e.type === 'update');
      const elapsed = Date.now() - t0;
      assert.ok(updates.length <= Math.ceil(elapsed / 100) + 2, `coalesced: ${updates.length} updates in ${elapsed} ms for 40 starts and ends`);
      const lastUpdate = updates[updates.length - 1] as { totals: { requests: number }; models: Array<{ model: string; requests: number }> };
      assert.equal(lastUpdate.models.find((m) => m.model === 'sse-probe-model')?.requests, 20);
      await waitFor(() => events.some((e) => e.type === 'heartbeat'), 'a heartbeat');
    } finally {
      abort();
    }
    let clients = 1;
    for (let i = 0; i < 100 && clients !== 0; i++) {
      await sleep(20);
      clients = (await getJson<{ usage: { streamClients: number } }>(proxy, '/v1/diagnostics')).usage.streamClients;
    }
    assert.equal(clients, 0, 'the client that went away is dropped');
  });

  it('the store file holds what the API shows', async () => {
    const stats = await getJson<Stats>(proxy, '/v1/usage/stats');
    await sleep(300);
    const file = JSON.parse(readFileSync(join(dir, 'usage.json'), 'utf8')) as { records: UsageRecord[] };
    assert.equal(file.records.length, stats.totals.requests);
  });

  it('npm run top --once --json / text reads the API; a wrong token is refused', async () => {
    const run = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts', 'top.ts'), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.on('exit', (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
      });
    const j = await run(['--url', proxy.url, '--once', '--json']);
    assert.equal(j.code, 0, j.stderr);
    const frame = JSON.parse(j.stdout) as { models: Array<{ model: string; requests: number; p95TtftMs: number | null; requestsPerSec: number }>; totals: { requests: number }; active: unknown[] };
    const stats = await getJson<Stats>(proxy, '/v1/usage/stats');
    assert.equal(frame.totals.requests, stats.totals.requests);
    const g = frame.models.find((m) => m.model === 'gpt-4o')!;
    assert.equal(g.requests, 3);
    assert.ok(g.p95TtftMs !== null && g.p95TtftMs > 0);
    assert.ok(g.requestsPerSec > 0);
    const text = await run(['--url', proxy.url, '--once']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /MODEL\s+PROVIDER\s+REQS\s+REQ\/S\s+TOK\/S/);
    assert.match(text.stdout, /gpt-4o\s+openai\s+3 /);
    const denied = await run(['--url', guarded.url, '--once', '--token', 'wrong']);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /not the admin token/);
    const allowed = await run(['--url', guarded.url, '--once', '--json', '--token', TOKEN]);
    assert.equal(allowed.code, 0, allowed.stderr);
  });
});
