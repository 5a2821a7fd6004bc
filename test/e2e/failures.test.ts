// End to end: every way an exchange can fail (upstream gone, slow, stalled, cut; client gone; body too big; bad JSON; upstream errors) and that llmtap keeps serving.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { configWith } from '../../src/config.ts';
import { startLlmtap } from '../../src/start.ts';
import type { RunningLlmtap } from '../../src/start.ts';
import type { ExchangeRecord } from '../../src/exchange/record.ts';
import { startMockUpstream, fixtureBytes } from '../helpers/mock-upstream.ts';
import type { MockUpstream } from '../helpers/mock-upstream.ts';
import { collectRecords } from '../helpers/records.ts';
import type { RecordSink } from '../helpers/records.ts';
import { postJson, send, jsonOf } from '../helpers/http-client.ts';
import type { RawResponse } from '../helpers/http-client.ts';

const UPSTREAM_TIMEOUT_MS = 600;
const STREAM_IDLE_MS = 600;
const MAX_BODY_MB = 1;

let mock: MockUpstream;
let proxy: RunningLlmtap;
let records: RecordSink;

before(async () => {
  mock = await startMockUpstream();
  proxy = await startLlmtap(
    configWith({
      port: 0,
      openaiUrl: mock.url,
      anthropicUrl: mock.url,
      ollamaUrl: mock.url,
      logLevel: 'silent',
      upstreamTimeoutMs: UPSTREAM_TIMEOUT_MS,
      streamIdleMs: STREAM_IDLE_MS,
      maxBodyMb: MAX_BODY_MB,
      connectTimeoutMs: 2000,
    }),
  );
  records = collectRecords(proxy.bus);
});

after(async () => {
  await proxy?.close();
  await mock?.close();
});

beforeEach(() => {
  mock.reset();
  records.clear();
});

// ----- requests per dialect

type Dialect = 'openai' | 'anthropic' | 'ollama';
const PATHS: Record<Dialect, string> = { openai: '/v1/chat/completions', anthropic: '/v1/messages', ollama: '/api/chat' };
const BODIES: Record<Dialect, Record<string, unknown>> = {
  openai: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], stream: true },
  anthropic: { model: 'claude-sonnet-4-5', max_tokens: 32, messages: [{ role: 'user', content: 'Hi' }], stream: true },
  ollama: { model: 'llama3.2', messages: [{ role: 'user', content: 'Hi' }], stream: true },
};
const DIALECTS: Dialect[] = ['openai', 'anthropic', 'ollama'];
const END_MARKER: Record<Dialect, string> = { openai: 'data: [DONE]', anthropic: 'message_stop', ollama: '"done":true' };

// ----- llmtap's own errors, in each dialect's shape

/** Checks status, header, body shape and code; returns the message for the caller's checks on its content. */
function assertLlmtapError(res: RawResponse, dialect: Dialect, status: number, code: string, types?: string[]): string {
  const text = res.body.toString('utf8');
  assert.equal(res.status, status, `status (body: ${text.slice(0, 300)})`);
  assert.equal(res.headers['x-llmtap-error'], code);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = jsonOf(res) as Record<string, unknown>;
  if (dialect === 'openai') {
    const e = body.error as Record<string, unknown>;
    assert.ok(e && typeof e === 'object', `OpenAI shape {"error":{...}}: ${text}`);
    assert.equal(e.code, code);
    assert.equal(e.param, null);
    assert.equal(typeof e.message, 'string');
    assert.ok(types ? types.includes(String(e.type)) : typeof e.type === 'string', `OpenAI error type ${String(e.type)}`);
    return String(e.message);
  }
  if (dialect === 'anthropic') {
    assert.equal(body.type, 'error', `Anthropic shape {"type":"error",...}: ${text}`);
    const e = body.error as Record<string, unknown>;
    assert.ok(e && typeof e === 'object');
    assert.equal(e.code, code);
    assert.equal(typeof e.message, 'string');
    assert.ok(types ? types.includes(String(e.type)) : typeof e.type === 'string', `Anthropic error type ${String(e.type)}`);
    return String(e.message);
  }
  assert.equal(typeof body.error, 'string', `Ollama shape {"error":"..."}: ${text}`);
  assert.equal(body.code, code);
  return String(body.error);
}

const OPENAI_TYPES = { server: ['api_error'], client: ['invalid_request_error'] };
const ANTHROPIC_TYPES = { server: ['api_error'], timeout: ['api_error', 'timeout_error'], tooLarge: ['request_too_large'] };

// ----- helpers

function hostOf(url: string): string {
  return new URL(url).host;
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** After a failure, a normal stream must still work end to end, and nothing may stay counted as in flight. */
async function assertStillServes(via: RunningLlmtap = proxy, upstream: MockUpstream = mock): Promise<void> {
  upstream.once({ kind: 'chat', pieces: ['still', ' alive'] });
  const res = await postJson(`${via.url}/v1/chat/completions`, BODIES.openai);
  assert.equal(res.status, 200, `a normal request after the failure: ${res.body.toString('utf8').slice(0, 300)}`);
  assert.ok(res.complete && res.body.includes('still') && res.body.includes('data: [DONE]'), 'a normal stream after the failure');
  const deadline = performance.now() + 2000;
  for (let i = 0; i < 200 && via.inFlight() > 0 && performance.now() < deadline; i++) await sleep(10);
  assert.equal(via.inFlight(), 0, 'no exchange is left in flight');
}

function byPath(path: string): (r: ExchangeRecord) => boolean {
  return (r) => r.url === path;
}

// ----- the tests

describe('upstream unreachable', () => {
  let port: number;
  let deadProxy: RunningLlmtap;
  let deadRecords: RecordSink;

  before(async () => {
    // A port that just had a server on it and now has none: connections are refused.
    const gone = await startMockUpstream();
    port = gone.port;
    await gone.close();
    const url = `http://127.0.0.1:${port}`;
    deadProxy = await startLlmtap(configWith({ port: 0, openaiUrl: url, anthropicUrl: url, ollamaUrl: url, logLevel: 'silent', connectTimeoutMs: 2000 }));
    deadRecords = collectRecords(deadProxy.bus);
  });

  after(async () => {
    await deadProxy?.close();
  });

  for (const d of DIALECTS) {
    it(`${d}: 502 LLMTAP_UPSTREAM_UNREACHABLE naming the upstream and the cause`, async () => {
      deadRecords.clear();
      const res = await postJson(`${deadProxy.url}${PATHS[d]}`, BODIES[d]);
      const message = assertLlmtapError(res, d, 502, 'LLMTAP_UPSTREAM_UNREACHABLE', d === 'openai' ? OPENAI_TYPES.server : d === 'anthropic' ? ANTHROPIC_TYPES.server : undefined);
      assert.ok(message.includes(`127.0.0.1:${port}`), `message names the upstream: ${message}`);
      assert.match(message, /ECONNREFUSED|refused/i, `message names the cause: ${message}`);
      const r = await deadRecords.waitFor(byPath(PATHS[d]));
      assert.equal(r.outcome, 'upstream_unreachable');
      assert.equal(r.status, 502);
      assert.equal(r.errorType, 'LLMTAP_UPSTREAM_UNREACHABLE');
      assert.equal(r.dialect, d);
    });
  }

  it('serves again once the upstream is back', async () => {
    const back = await startMockUpstream({ port });
    try {
      await assertStillServes(deadProxy, back);
    } finally {
      await back.close();
    }
  });
});

describe('upstream answers nothing (no response head)', () => {
  for (const d of DIALECTS) {
    it(`${d}: 504 LLMTAP_UPSTREAM_TIMEOUT after upstreamTimeoutMs, and the upstream request is abandoned`, async () => {
      mock.handle({ kind: 'hang' });
      const t0 = performance.now();
      const res = await postJson(`${proxy.url}${PATHS[d]}`, BODIES[d], {}, { timeoutMs: UPSTREAM_TIMEOUT_MS + 5000 });
      const elapsed = performance.now() - t0;
      const message = assertLlmtapError(res, d, 504, 'LLMTAP_UPSTREAM_TIMEOUT', d === 'openai' ? OPENAI_TYPES.server : d === 'anthropic' ? ANTHROPIC_TYPES.timeout : undefined);
      assert.ok(elapsed >= UPSTREAM_TIMEOUT_MS - 20 && elapsed < UPSTREAM_TIMEOUT_MS + 1000, `answered after ${elapsed.toFixed(0)} ms, timeout is ${UPSTREAM_TIMEOUT_MS} ms`);
      assert.ok(message.includes(hostOf(mock.url)), `message names the upstream: ${message}`);
      assert.match(message, /time[ds]? ?out/i, `message names the cause: ${message}`);
      const r = await records.waitFor(byPath(PATHS[d]));
      assert.equal(r.outcome, 'upstream_timeout');
      assert.equal(r.status, 504);
      assert.equal(r.errorType, 'LLMTAP_UPSTREAM_TIMEOUT');
      // A hung upstream request left open would leak a socket per timeout.
      const req = await mock.waitForRequest();
      await within(req.socketClosed, 1000, 'the upstream connection is closed after the timeout');
      await assertStillServes();
    });
  }
});

describe('upstream closes the connection before answering', () => {
  it('gets the client a 502 in its dialect', async () => {
    mock.handle({ kind: 'drop', afterMs: 50 });
    const res = await postJson(`${proxy.url}${PATHS.anthropic}`, BODIES.anthropic);
    assert.equal(res.status, 502, res.body.toString('utf8'));
    const code = String(res.headers['x-llmtap-error']);
    assert.match(code, /^LLMTAP_UPSTREAM_/);
    const message = assertLlmtapError(res, 'anthropic', 502, code);
    assert.ok(message.includes(hostOf(mock.url)), `message names the upstream: ${message}`);
    const r = await records.waitFor(byPath(PATHS.anthropic));
    assert.equal(r.status, 502);
    assert.notEqual(r.outcome, 'ok');
    await assertStillServes();
  });
});

describe('upstream stalls mid-stream', () => {
  const frames: Record<Dialect, number> = { openai: 3, anthropic: 5, ollama: 2 }; // preamble + the first two pieces
  for (const d of DIALECTS) {
    it(`${d}: the client stream is cut after streamIdleMs of silence, recorded as upstream_idle`, async () => {
      mock.handle({ kind: 'chat', pieces: ['alpha', 'beta', 'gamma'], fault: { kind: 'stall', afterFrames: frames[d] } });
      const res = await postJson(`${proxy.url}${PATHS[d]}`, BODIES[d], {}, { timeoutMs: STREAM_IDLE_MS + 5000 });
      assert.equal(res.status, 200);
      const text = res.body.toString('utf8');
      assert.ok(text.includes('alpha') && text.includes('beta'), `the client got what was sent before the stall: ${text}`);
      assert.ok(!text.includes('gamma') && !text.includes(END_MARKER[d]), 'nothing after the stall');
      assert.equal(res.complete, false, 'the client sees a truncated stream, not a clean end');
      const lastChunkAt = res.chunks.at(-1)?.at ?? res.headAt;
      const silence = res.endedAt - lastChunkAt;
      assert.ok(silence >= STREAM_IDLE_MS - 20 && silence < STREAM_IDLE_MS + 1000, `stream ended after ${silence.toFixed(0)} ms of silence, idle limit ${STREAM_IDLE_MS} ms`);
      const r = await records.waitFor(byPath(PATHS[d]));
      assert.equal(r.outcome, 'upstream_idle');
      assert.equal(r.errorType, 'LLMTAP_UPSTREAM_IDLE');
      assert.ok(r.errorMessage?.includes(hostOf(mock.url)), `recorded message names the upstream: ${r.errorMessage}`);
      assert.equal(r.status, 200);
      assert.equal(r.streamComplete, false);
      const req = await mock.waitForRequest();
      await within(req.socketClosed, 1000, 'the stalled upstream connection is closed');
      await assertStillServes();
    });
  }

  it('a stream silent right after its head is cut the same way', async () => {
    mock.handle({ kind: 'chat', fault: { kind: 'stall', afterFrames: 0 } });
    const res = await postJson(`${proxy.url}${PATHS.ollama}`, BODIES.ollama, {}, { timeoutMs: STREAM_IDLE_MS + 5000 });
    assert.equal(res.status, 200);
    assert.equal(res.complete, false);
    const r = await records.waitFor(byPath(PATHS.ollama));
    assert.equal(r.outcome, 'upstream_idle');
    await assertStillServes();
  });
});

describe('upstream connection dies mid-stream', () => {
  const frames: Record<Dialect, number> = { openai: 3, anthropic: 5, ollama: 2 };
  for (const d of DIALECTS) {
    it(`${d}: the client gets what was sent, then a cut stream; recorded as upstream_aborted`, async () => {
      mock.handle({ kind: 'chat', pieces: ['alpha', 'beta', 'gamma'], fault: { kind: 'destroy', afterFrames: frames[d] } });
      const res = await postJson(`${proxy.url}${PATHS[d]}`, BODIES[d]);
      assert.equal(res.status, 200);
      const text = res.body.toString('utf8');
      assert.ok(text.includes('alpha') && text.includes('beta'), `the client got what was sent before the cut: ${text}`);
      assert.ok(!text.includes('gamma') && !text.includes(END_MARKER[d]));
      assert.equal(res.complete, false, 'the client sees a truncated stream, not a clean end');
      const r = await records.waitFor(byPath(PATHS[d]));
      assert.equal(r.outcome, 'upstream_aborted');
      assert.equal(r.streamComplete, false);
      assert.notEqual(r.errorType, null);
      assert.ok(r.errorMessage?.includes(hostOf(mock.url)), `recorded message names the upstream: ${r.errorMessage}`);
      await assertStillServes();
    });
  }

  it('a plain JSON body cut short is truncated for the client too', async () => {
    const full = Buffer.from(JSON.stringify({ id: 'chatcmpl-x', object: 'chat.completion', choices: [], pad: 'x'.repeat(400) }));
    mock.handle({ kind: 'raw', status: 200, headers: { 'content-type': 'application/json', 'content-length': String(full.length) }, body: [full.subarray(0, 100), full.subarray(100)], fault: { kind: 'destroy', afterFrames: 1 } });
    const res = await postJson(`${proxy.url}${PATHS.openai}`, { ...BODIES.openai, stream: false });
    assert.equal(res.status, 200);
    assert.equal(res.complete, false, 'a truncated body must not look complete');
    assert.ok(res.body.equals(full.subarray(0, 100)), `the bytes the upstream sent, no more: got ${res.body.length} bytes`);
    const r = await records.waitFor(byPath(PATHS.openai));
    assert.equal(r.outcome, 'upstream_aborted');
    await assertStillServes();
  });
});

describe('client disconnects', () => {
  for (const d of DIALECTS) {
    it(`${d}: mid-stream, the upstream connection closes within 1 s; recorded as client_aborted`, async () => {
      mock.handle({ kind: 'chat', pieces: Array.from({ length: 40 }, (_, i) => ` piece${i}`), gapMs: 100 });
      let abortedAt = 0;
      const res = await postJson(`${proxy.url}${PATHS[d]}`, BODIES[d], {}, {
        onChunk: (_c, abort, soFar) => {
          if (abortedAt === 0 && Buffer.concat(soFar).includes('piece0')) {
            abortedAt = performance.now();
            abort();
          }
        },
      });
      assert.ok(abortedAt > 0, 'the client saw the first piece and went away');
      assert.equal(res.complete, false);
      const req = await mock.waitForRequest();
      const closedAt = await within(req.socketClosed, 2000, 'the upstream connection is closed after the client left');
      assert.ok(closedAt - abortedAt < 1000, `upstream connection closed ${(closedAt - abortedAt).toFixed(0)} ms after the client left`);
      assert.equal(req.responseEnded, false, 'the upstream did not get to finish');
      const r = await records.waitFor(byPath(PATHS[d]));
      assert.equal(r.outcome, 'client_aborted');
      assert.equal(r.streamComplete, false);
      await assertStillServes();
    });
  }

  it('while waiting for the response head, the upstream request is aborted at once', async () => {
    mock.handle({ kind: 'hang' });
    const req = send(`${proxy.url}${PATHS.openai}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(BODIES.openai), timeoutMs: 300 });
    // The helper gives up (destroying the connection) after 300 ms, well before llmtap's own upstream timeout.
    await assert.rejects(req);
    const abortedAt = performance.now();
    const upstreamReq = await mock.waitForRequest();
    const closedAt = await within(upstreamReq.socketClosed, 2000, 'the upstream connection is closed after the client left');
    assert.ok(closedAt - abortedAt < 1000 && closedAt < abortedAt + UPSTREAM_TIMEOUT_MS, `closed ${(closedAt - abortedAt).toFixed(0)} ms after the client left`);
    const r = await records.waitFor(byPath(PATHS.openai));
    assert.equal(r.outcome, 'client_aborted');
    await assertStillServes();
  });
});

describe('request body over LLMTAP_MAX_BODY_MB', () => {
  const big = (): string => JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x'.repeat(Math.ceil(MAX_BODY_MB * 1024 * 1024 * 1.5)) }] });
  const cases: { d: Dialect; types?: string[] }[] = [
    { d: 'openai', types: OPENAI_TYPES.client },
    { d: 'anthropic', types: ANTHROPIC_TYPES.tooLarge },
    { d: 'ollama' },
  ];
  for (const { d, types } of cases) {
    it(`${d}: 413 LLMTAP_BODY_TOO_LARGE, never forwarded whole`, async () => {
      const body = big();
      const res = await send(`${proxy.url}${PATHS[d]}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const message = assertLlmtapError(res, d, 413, 'LLMTAP_BODY_TOO_LARGE', types);
      assert.match(message, /MB|LLMTAP_MAX_BODY_MB|max.?body/i, `message says what the limit is: ${message}`);
      assert.ok(!mock.requests.some((r) => r.bodyComplete && r.body.length === Buffer.byteLength(body)), 'the upstream did not receive the body');
      const r = await records.waitFor(byPath(PATHS[d]));
      assert.equal(r.outcome, 'body_too_large');
      assert.equal(r.status, 413);
      await assertStillServes();
    });
  }

  it('a chunked body (no content-length) is cut off at the limit too', async () => {
    const body = big();
    const res = await send(`${proxy.url}${PATHS.openai}`, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body });
    assertLlmtapError(res, 'openai', 413, 'LLMTAP_BODY_TOO_LARGE', OPENAI_TYPES.client);
    assert.ok(!mock.requests.some((r) => r.bodyComplete && r.body.length === Buffer.byteLength(body)), 'the upstream did not receive the whole body');
    const r = await records.waitFor(byPath(PATHS.openai));
    assert.equal(r.outcome, 'body_too_large');
    await assertStillServes();
  });
});

describe('malformed client JSON', () => {
  // What OpenAI answers to a body it cannot parse, in its own words and indentation.
  const OPENAI_PARSE_ERROR = `${JSON.stringify(
    { error: { message: "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)", type: 'invalid_request_error', param: null, code: null } },
    null,
    4,
  )}\n`;

  for (const raw of ['{"model": "gpt-4o", "messages": [{"role": "user", "content": "unterminated', '{"model":"gpt-4o","stream":true,"messages":[]', 'model=gpt-4o&stream=true']) {
    it(`is forwarded unchanged and recorded with model unknown: ${JSON.stringify(raw.slice(0, 30))}`, async () => {
      mock.handle({ kind: 'raw', status: 400, headers: { 'content-type': 'application/json' }, body: OPENAI_PARSE_ERROR });
      const res = await send(`${proxy.url}${PATHS.openai}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-x' }, body: raw });
      const got = await mock.waitForRequest();
      assert.equal(got.body.toString('utf8'), raw);
      assert.ok(got.body.equals(Buffer.from(raw)), 'the upstream got the identical bytes');
      assert.equal(res.status, 400);
      assert.equal(res.body.toString('utf8'), OPENAI_PARSE_ERROR, "the upstream's answer is relayed byte for byte");
      const r = await records.waitFor(byPath(PATHS.openai));
      assert.equal(r.model, 'unknown');
      assert.equal(r.status, 400);
      assert.equal(r.usageInjected, false);
      await assertStillServes();
    });
  }
});

describe('upstream error statuses are relayed byte for byte', () => {
  const cases: { name: string; dialect: Dialect; fixture: string; status: number; headers: Record<string, string>; stream: boolean }[] = [
    { name: 'OpenAI 429 rate limit (streaming request)', dialect: 'openai', fixture: 'openai/error_429_rate_limit_exceeded.json', status: 429, headers: { 'retry-after': '27', 'x-ratelimit-remaining-tokens': '0', 'x-request-id': 'req_429' }, stream: true },
    { name: 'OpenAI 404 unknown model', dialect: 'openai', fixture: 'openai/error_404_model_not_found.json', status: 404, headers: { 'content-type': 'application/json; charset=utf-8' }, stream: false },
    { name: 'OpenAI 401 invalid key', dialect: 'openai', fixture: 'openai/error_401_invalid_api_key.json', status: 401, headers: {}, stream: false },
    { name: 'Anthropic 529 overloaded (streaming request)', dialect: 'anthropic', fixture: 'anthropic/error_529_overloaded.json', status: 529, headers: { 'request-id': 'req_011overloaded', 'x-should-retry': 'true' }, stream: true },
    { name: 'Anthropic 400 prompt too long', dialect: 'anthropic', fixture: 'anthropic/error_400_prompt_too_long.json', status: 400, headers: {}, stream: false },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      mock.handle({ kind: 'fixture', file: c.fixture, status: c.status, headers: c.headers });
      const res = await postJson(`${proxy.url}${PATHS[c.dialect]}`, { ...BODIES[c.dialect], stream: c.stream });
      const expected = fixtureBytes(c.fixture);
      assert.equal(res.status, c.status);
      assert.equal(res.body.toString('utf8'), expected.toString('utf8'));
      assert.ok(res.body.equals(expected), 'byte for byte');
      for (const [k, v] of Object.entries(c.headers)) assert.equal(res.headers[k], v, `header ${k} relayed`);
      assert.equal(res.headers['x-llmtap-error'], undefined, "the upstream's own error is not llmtap's");
      const r = await records.waitFor(byPath(PATHS[c.dialect]));
      assert.equal(r.status, c.status);
      assert.equal(r.outcome, 'ok', 'the upstream answered and the client got all of it');
      assert.notEqual(r.errorType, null, 'an error status is recorded as an error');
      assert.equal(r.model, BODIES[c.dialect].model);
      await assertStillServes();
    });
  }

  it('Ollama 404 unknown model', async () => {
    const body = JSON.stringify({ error: 'model "nope" not found, try pulling it first' });
    mock.handle({ kind: 'raw', status: 404, headers: { 'content-type': 'application/json; charset=utf-8' }, body });
    const res = await postJson(`${proxy.url}${PATHS.ollama}`, { ...BODIES.ollama, model: 'nope' });
    assert.equal(res.status, 404);
    assert.equal(res.body.toString('utf8'), body);
    const r = await records.waitFor(byPath(PATHS.ollama));
    assert.equal(r.status, 404);
    assert.equal(r.model, 'nope');
    await assertStillServes();
  });

  it('an Anthropic error event inside a 200 stream is relayed as it came', async () => {
    mock.handle({ kind: 'fixture', file: 'anthropic/stream_error_overloaded.sse' });
    const res = await postJson(`${proxy.url}${PATHS.anthropic}`, BODIES.anthropic);
    assert.equal(res.status, 200);
    assert.ok(res.body.equals(fixtureBytes('anthropic/stream_error_overloaded.sse')));
    const r = await records.waitFor(byPath(PATHS.anthropic));
    assert.equal(r.streamComplete, false, 'an error event is not a completed stream');
    await assertStillServes();
  });
});
