// End to end: SIGTERM to a running `node scripts/llmtap.mjs` lets in-flight streams finish, refuses new connections, and exits 0.
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { startMockUpstream } from '../helpers/mock-upstream.ts';
import type { MockUpstream } from '../helpers/mock-upstream.ts';
import { spawnLlmtap } from '../helpers/llmtap-process.ts';
import type { LlmtapProcess, Exit } from '../helpers/llmtap-process.ts';
import { canConnect } from '../helpers/free-port.ts';
import { postJson } from '../helpers/http-client.ts';

const BODY = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Count slowly' }], stream: true };
const PIECES = Array.from({ length: 10 }, (_, i) => ` tok${i}`);
const GAP_MS = 200;

let mock: MockUpstream;
let running: LlmtapProcess | null = null;

before(async () => {
  mock = await startMockUpstream();
});

after(async () => {
  await mock?.close();
});

afterEach(() => {
  running?.kill();
  running = null;
  mock.reset();
});

function start(graceMs: number): Promise<LlmtapProcess> {
  return spawnLlmtap({ env: { LLMTAP_OPENAI_URL: mock.url, LLMTAP_ANTHROPIC_URL: mock.url, LLMTAP_OLLAMA_URL: mock.url, LLMTAP_SHUTDOWN_GRACE_MS: String(graceMs) } });
}

/** Resolves with the exit, or null when the process is still running after ms. */
function exitWithin(p: LlmtapProcess, ms: number): Promise<(Exit & { at: number }) | null> {
  // ref: false, so a timer that lost the race does not keep the test process alive.
  return Promise.race([p.exited.then((e) => ({ ...e, at: performance.now() })), sleep(ms, null, { ref: false })]);
}

/** Polls until the port refuses connections; the time it did, or null after ms. */
async function refusedWithin(port: number, ms: number): Promise<number | null> {
  const deadline = performance.now() + ms;
  for (let i = 0; i < 200 && performance.now() < deadline; i++) {
    if (!(await canConnect(port, 200))) return performance.now();
    await sleep(25);
  }
  return null;
}

describe('graceful shutdown on SIGTERM', () => {
  it('finishes the in-flight stream, refuses new connections meanwhile, exits 0', async () => {
    const GRACE_MS = 8000;
    const p = (running = await start(GRACE_MS));
    mock.handle({ kind: 'chat', pieces: PIECES, gapMs: GAP_MS });
    let signalledAt = 0;
    let refusedAt: Promise<number | null> = Promise.resolve(null);
    const stream = postJson(`${p.url}/v1/chat/completions`, BODY, {}, {
      timeoutMs: GRACE_MS + 5000,
      onChunk: (_c, _abort, soFar) => {
        if (signalledAt === 0 && Buffer.concat(soFar).includes('tok0')) {
          signalledAt = performance.now();
          p.child.kill('SIGTERM');
          refusedAt = refusedWithin(p.port, 1500);
        }
      },
    });
    const res = await stream;
    const streamEndedAt = performance.now();
    assert.ok(signalledAt > 0, 'SIGTERM was sent mid-stream');

    const refused = await refusedAt;
    assert.ok(refused !== null, 'new connections are refused after SIGTERM');
    assert.ok(refused < streamEndedAt, 'refused while the in-flight stream was still running');

    assert.equal(res.status, 200);
    assert.ok(res.complete, 'the in-flight stream completed');
    const text = res.body.toString('utf8');
    for (const piece of PIECES) assert.ok(text.includes(JSON.stringify(piece)), `piece ${piece} arrived`);
    assert.ok(text.endsWith('data: [DONE]\n\n'));
    assert.ok(streamEndedAt - signalledAt >= (PIECES.length - 2) * GAP_MS, 'the stream really was still running at SIGTERM');

    const exit = await exitWithin(p, GRACE_MS + 3000);
    assert.ok(exit, 'the process exited');
    assert.equal(exit.code, 0, `exit code 0, got ${exit.code} / ${exit.signal}; stderr: ${p.stderr().slice(0, 1000)}`);
    assert.ok(exit.at - signalledAt < GRACE_MS, 'exited within the grace period');
  });

  it('exits promptly when only idle keep-alive connections are open', async () => {
    const GRACE_MS = 8000;
    const p = (running = await start(GRACE_MS));
    // One finished request on a keep-alive connection that then stays open and idle.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      await new Promise<void>((resolve, reject) => {
        const req = http.request(`${p.url}/v1/models`, { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve());
        });
        req.on('error', reject);
        req.end();
      });
      const t0 = performance.now();
      p.child.kill('SIGTERM');
      const exit = await exitWithin(p, GRACE_MS + 3000);
      assert.ok(exit, 'the process exited');
      assert.equal(exit.code, 0);
      assert.ok(exit.at - t0 < 3000, `exited ${(exit.at - t0).toFixed(0)} ms after SIGTERM with nothing in flight (grace ${GRACE_MS} ms)`);
    } finally {
      agent.destroy();
    }
  });

  it('cuts a stream still running when the grace period ends, and exits', async () => {
    const GRACE_MS = 1000;
    const p = (running = await start(GRACE_MS));
    mock.handle({ kind: 'chat', pieces: Array.from({ length: 40 }, (_, i) => ` m${i}`), gapMs: GAP_MS });
    let signalledAt = 0;
    const res = await postJson(`${p.url}/v1/chat/completions`, BODY, {}, {
      timeoutMs: 15_000,
      onChunk: (_c, _abort, soFar) => {
        if (signalledAt === 0 && Buffer.concat(soFar).includes('m0')) {
          signalledAt = performance.now();
          p.child.kill('SIGTERM');
        }
      },
    });
    assert.ok(signalledAt > 0);
    assert.equal(res.complete, false, 'the 8 s stream could not finish in a 1 s grace period');
    const exit = await exitWithin(p, GRACE_MS + 4000);
    assert.ok(exit, 'the process exited');
    assert.ok(exit.at - signalledAt < GRACE_MS + 3000, `exited ${(exit.at - signalledAt).toFixed(0)} ms after SIGTERM, grace ${GRACE_MS} ms`);
    assert.ok(res.endedAt - signalledAt >= GRACE_MS - 100, 'the stream was given the grace period');
  });
});
