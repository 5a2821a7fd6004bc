// End to end: llmtap with captures on — what the capture holds is what the client got, secrets never reach the disk, a bad directory never costs a request.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { configWith, type Config } from '../../src/config.ts';
import { startLlmtap, type RunningLlmtap } from '../../src/start.ts';
import { captureFeature, captureStats, type CaptureFeature } from '../../src/capture/feature.ts';
import { createAssembler, type CapturedExchange } from '../../src/capture/exchanges.ts';
import { BATCH_BYTES, BATCH_MS, type ChunkRecord, type ChunksRecord } from '../../src/capture/format.ts';
import { readAllRecords } from '../../src/capture/reader.ts';
import { generatedText, responseBytes } from '../../src/capture/reassemble.ts';
import type { FeatureFactory } from '../../src/features.ts';
import { DEFAULT_PIECES, defaultScript, startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.ts';
import { postJson, type RawResponse } from '../helpers/http-client.ts';
import { REPO_ROOT } from '../helpers/llmtap-process.ts';

const run = promisify(execFile);
const INSPECT = join(REPO_ROOT, 'scripts', 'llmtap-inspect.mjs');
const API_KEY = 'sk-test-4f9a1c7e2b8d6f0a3c5e7b9d1f2a4c6e';
const ANTHROPIC_KEY = 'sk-ant-test-9c8b7a6f5e4d3c2b1a0f';
const CUSTOM_SECRET = 'custom-secret-value-0d1e2f3a';
const COOKIE = 'session=cookie-secret-7a7a7a7a';

let mock: MockUpstream;
let root: string;

before(async () => {
  mock = await startMockUpstream();
  root = mkdtempSync(join(tmpdir(), 'llmtap-capture-e2e-'));
});
after(async () => {
  await mock?.close();
  rmSync(root, { recursive: true, force: true });
});

interface Started {
  proxy: RunningLlmtap;
  feature: () => CaptureFeature;
  warnings: string[];
}

async function start(settings: Partial<Config>): Promise<Started> {
  let feature: CaptureFeature | null = null;
  const factory: FeatureFactory = async (ctx) => (feature = (await captureFeature(ctx)) as CaptureFeature | null);
  const warnings: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
  const proxy = await startLlmtap(
    configWith({ port: 0, openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: mock.url, capture: true, ...settings }),
    { features: [factory], logger },
  );
  assert.ok(feature, 'capture feature started');
  return { proxy, feature: () => feature!, warnings };
}

const CASES = [
  { dialect: 'openai', path: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] } },
  { dialect: 'openai', path: '/v1/completions', body: { model: 'gpt-3.5-turbo-instruct', prompt: 'Hi' } },
  { dialect: 'anthropic', path: '/v1/messages', body: { model: 'claude-sonnet-4-5', max_tokens: 32, messages: [{ role: 'user', content: 'Hi' }] } },
  { dialect: 'ollama', path: '/api/chat', body: { model: 'llama3.2', messages: [{ role: 'user', content: 'Hi' }] } },
  { dialect: 'ollama', path: '/api/generate', body: { model: 'llama3.2', prompt: 'Hi' } },
] as const;

function headersFor(dialect: string): Record<string, string> {
  const h: Record<string, string> = { 'x-custom-secret': CUSTOM_SECRET, cookie: COOKIE };
  if (dialect === 'anthropic') return { ...h, 'x-api-key': ANTHROPIC_KEY, 'anthropic-version': '2023-06-01' };
  return { ...h, authorization: `Bearer ${API_KEY}` };
}

async function exchangesIn(dir: string): Promise<Map<string, CapturedExchange>> {
  const asm = createAssembler({ keepChunks: () => true });
  const { records, cuts } = await readAllRecords(dir);
  assert.deepEqual(cuts, [], 'no cut records after a clean shutdown');
  for (const r of records) asm.add(r, dir);
  return new Map(asm.exchanges().map((ex) => [ex.id, ex]));
}

describe('round trip per dialect, streaming and not', () => {
  const dir = () => join(root, 'roundtrip');
  const sent: { name: string; res: RawResponse; stream: boolean }[] = [];
  let byUrlOrder: CapturedExchange[] = [];

  before(async () => {
    const s = await start({ captureDir: dir(), captureRedact: ['x-custom-secret'] });
    // A chunk record holds one read: frames a few ms apart arrive in separate reads, as a model's tokens do.
    mock.handle((req) => {
      const script = defaultScript(req);
      return script.kind === 'chat' ? { ...script, gapMs: 3 } : script;
    });
    for (const c of CASES) {
      for (const stream of [false, true]) {
        const body = { ...c.body, stream };
        const res = await postJson(`${s.proxy.url}${c.path}`, body, headersFor(c.dialect));
        assert.equal(res.status, 200, `${c.path} stream=${stream}: ${res.body.toString().slice(0, 200)}`);
        sent.push({ name: `${c.dialect} ${c.path} stream=${stream}`, res, stream });
      }
    }
    mock.handle(defaultScript);
    await s.proxy.close();
    assert.equal(s.feature().stats().written > 0, true);
    byUrlOrder = [...(await exchangesIn(dir())).values()];
  });

  it('captures every exchange with request, response head, chunks and end record', () => {
    assert.equal(byUrlOrder.length, sent.length);
    for (const ex of byUrlOrder) {
      assert.ok(ex.request && ex.response && ex.end, ex.id);
      assert.equal(ex.end.outcome, 'ok');
      assert.ok(ex.end.usage.input !== null && ex.end.usage.source === 'reported', `${ex.request.url}: usage and its source`);
      assert.ok(ex.end.timings.duration > 0 && ex.end.timings.ttfb !== null);
      assert.ok(ex.request.body && ex.request.body.length > 0, 'request body bytes');
    }
  });

  it('the response bytes in the capture are what the client received, byte for byte, and chunk times are in order', () => {
    byUrlOrder.forEach((ex, i) => {
      const { name, res, stream } = sent[i]!;
      const bytes = responseBytes(ex);
      assert.ok(bytes, name);
      assert.ok(bytes.equals(res.body), `${name}: captured ${bytes.length} bytes, client got ${res.body.length}`);
      const chunks = ex.chunks.filter((c) => c.dir === 'response');
      if (stream) assert.ok(chunks.length > 1, `${name}: streamed in several reads, a chunk record each (${chunks.length})`);
      for (let k = 1; k < chunks.length; k++) {
        assert.ok(chunks[k]!.at >= chunks[k - 1]!.at, `${name}: chunk ${k} at ${chunks[k]!.at} after ${chunks[k - 1]!.at}`);
        assert.ok(chunks[k]!.wall >= chunks[k - 1]!.wall);
      }
      assert.ok(chunks[0]!.at >= ex.response!.at - 1, `${name}: first chunk after the head`);
      assert.equal(ex.end!.bytes.responseOut, bytes.length);
    });
  });

  it('the text the inspector reassembles is the generated text the client received', () => {
    byUrlOrder.forEach((ex, i) => {
      assert.equal(generatedText(ex), DEFAULT_PIECES.join(''), sent[i]!.name);
    });
  });

  it('--show prints the request JSON, the timed stream events and the reassembled text', async () => {
    const streamed = byUrlOrder.find((ex) => ex.request!.url === '/v1/messages' && ex.end!.stream)!;
    const { stdout } = await run(process.execPath, [INSPECT, dir(), '--show', streamed.id, '--no-color'], { timeout: 20_000 });
    assert.match(stdout, new RegExp(`exchange ${streamed.id}`));
    assert.match(stdout, /"max_tokens": 32,/, 'request JSON pretty-printed');
    assert.match(stdout, /\+\s+\d+\.\d ms {2}content_block_delta {2}\{"type":"content_block_delta"/);
    assert.match(stdout, /\+\s+\d+\.\d ms {2}message_stop/);
    assert.ok(stdout.includes(`generated text\n${DEFAULT_PIECES.join('')}`), stdout.slice(-400));
    assert.match(stdout, /x-api-key: \[redacted\]/);
  });

  it('no credential the client sent appears anywhere in the capture files', () => {
    const files = readdirSync(dir());
    assert.ok(files.length > 0);
    for (const f of files) {
      const raw = readFileSync(join(dir(), f));
      for (const secret of [API_KEY, ANTHROPIC_KEY, CUSTOM_SECRET, COOKIE, 'cookie-secret']) {
        assert.equal(raw.indexOf(secret), -1, `${secret} found in ${f}`);
        assert.equal(raw.indexOf(Buffer.from(secret, 'utf16le')), -1);
      }
      assert.ok(raw.includes('[redacted]'));
    }
    // The upstream did get them: redaction is for the disk only.
    assert.ok(mock.requests.some((r) => r.headers.authorization === `Bearer ${API_KEY}`));
  });
});

describe('chunk batches', () => {
  const responseBatches = (records: { type: string }[], id: string): ChunksRecord[] =>
    records.filter((r): r is ChunksRecord => r.type === 'chunks' && (r as ChunksRecord).id === id && (r as ChunksRecord).dir === 'response');

  it('a slow stream reaches the disk while it is still streaming, one batch per BATCH_MS at most', async () => {
    const dir = join(root, 'slow-stream');
    const s = await start({ captureDir: dir });
    const pieces = Array.from({ length: 12 }, (_, i) => ` p${i}`);
    mock.once({ kind: 'chat', pieces, gapMs: 100 });
    const pending = postJson(`${s.proxy.url}/v1/chat/completions`, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], stream: true }, headersFor('openai'));
    // Mid-stream: what is on disk already holds the first chunks, and no end record yet.
    const t0 = Date.now();
    let midway: ChunksRecord[] = [];
    while (Date.now() - t0 < 5000) {
      await new Promise((r) => setTimeout(r, 100));
      await s.feature().flush();
      const { records } = await readAllRecords(dir).catch(() => ({ records: [] as { type: string; id?: string }[] }));
      midway = records.filter((r): r is ChunksRecord => r.type === 'chunks' && (r as ChunksRecord).dir === 'response');
      if (midway.length > 0) {
        assert.ok(!records.some((r) => r.type === 'end'), 'the first batch is on disk before the stream ends');
        break;
      }
    }
    assert.ok(midway.length > 0 && midway[0]!.at.length > 0, 'a batch written mid-stream');
    const res = await pending;
    assert.equal(res.status, 200);
    await s.proxy.close();
    const [ex] = (await exchangesIn(dir)).values();
    assert.ok(responseBytes(ex!)!.equals(res.body), 'batches put together are the bytes the client got');
    const { records } = await readAllRecords(dir);
    const batches = responseBatches(records, ex!.id);
    assert.ok(batches.length >= 3, `a 1.2 s stream in several batches (${batches.length})`);
    for (const b of batches.slice(0, -1)) {
      // A batch is closed by the first chunk past BATCH_MS after its first one (or by the sweep): never much older.
      const span = b.at.at(-1)! - b.at[0]!;
      assert.ok(span < BATCH_MS + 400, `batch spans ${span} ms`);
    }
  });

  it('a large stream is written in batches of about BATCH_BYTES, byte for byte', async () => {
    const dir = join(root, 'large-stream');
    const s = await start({ captureDir: dir });
    mock.once({ kind: 'huge', totalBytes: 1024 * 1024, pieceChars: 2000 });
    const res = await postJson(`${s.proxy.url}/v1/chat/completions`, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], stream: true }, headersFor('openai'));
    assert.equal(res.status, 200);
    await s.proxy.close();
    const [ex] = (await exchangesIn(dir)).values();
    assert.ok(responseBytes(ex!)!.equals(res.body));
    const { records } = await readAllRecords(dir);
    const batches = responseBatches(records, ex!.id);
    const biggestChunk = Math.max(...batches.flatMap((b) => b.size));
    assert.ok(batches.length >= Math.floor(res.body.length / (BATCH_BYTES + biggestChunk)), `${batches.length} batches for ${res.body.length} bytes`);
    for (const b of batches) {
      const bytes = b.size.reduce((n, x) => n + x, 0);
      assert.ok(bytes < BATCH_BYTES + biggestChunk, `batch of ${bytes} bytes`);
    }
  });
});

describe('LLMTAP_CAPTURE_BODIES=off', () => {
  it('keeps heads and timings, and no body bytes', async () => {
    const dir = join(root, 'nobodies');
    const s = await start({ captureDir: dir, captureBodies: false });
    const prompt = 'a-prompt-that-must-not-be-written';
    mock.once({ kind: 'chat', gapMs: 3 });
    const res = await postJson(`${s.proxy.url}/v1/chat/completions`, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }], stream: true }, headersFor('openai'));
    assert.equal(res.status, 200);
    await s.proxy.close();
    const raw = Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
    assert.equal(raw.indexOf(prompt), -1);
    assert.equal(raw.indexOf(DEFAULT_PIECES[1]!.trim() + '"'), -1, 'no generated text');
    const [ex] = (await exchangesIn(dir)).values();
    assert.ok(ex && ex.request && ex.response && ex.end);
    assert.equal(ex.request.body, null);
    assert.ok(ex.request.bodySize > 0);
    const chunks = ex.chunks.filter((c): c is ChunkRecord => c.dir === 'response');
    assert.ok(chunks.length > 1 && chunks.every((c) => c.data === null && c.size > 0));
    assert.equal(chunks.reduce((n, c) => n + c.size, 0), res.body.length);
    assert.ok(ex.end.timings.ttft !== null);
  });
});

describe('capture directory that cannot be written', () => {
  it('requests succeed, one warning is logged, the failure counter rises', async () => {
    // Root ignores permission bits: a path under a regular file fails for everyone (ENOTDIR).
    const blocker = join(root, 'blocker');
    writeFileSync(blocker, 'not a folder');
    const s = await start({ captureDir: join(blocker, 'captures') });
    const before = captureStats().failures;
    for (let i = 0; i < 6; i++) {
      const res = await postJson(`${s.proxy.url}/v1/chat/completions`, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], stream: i % 2 === 0 }, headersFor('openai'));
      assert.equal(res.status, 200);
      assert.ok(res.body.includes('Hello'));
      await s.feature().flush();
    }
    const stats = s.feature().stats();
    assert.ok(stats.failures >= 1, `failures ${stats.failures}`);
    assert.ok(captureStats().failures > before, 'the process-wide counter rises too');
    assert.ok(stats.lost > 0);
    assert.equal(stats.written, 0);
    await s.proxy.close();
    const captureWarnings = s.warnings.filter((l) => l.includes('captures: cannot'));
    assert.equal(captureWarnings.length, 1, captureWarnings.join('\n'));
    assert.match(captureWarnings[0]!, /ENOTDIR|EEXIST/);
    assert.match(captureWarnings[0]!, /requests go on/);
  });
});
