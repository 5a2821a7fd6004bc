// End to end: a 50 MB streamed response relays through llmtap (in its own process) with bounded memory, every byte delivered.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMockUpstream, hugeOpenaiLength, hugeSpec } from '../helpers/mock-upstream.ts';
import type { MockUpstream, HugeScript } from '../helpers/mock-upstream.ts';
import { startHarness } from '../helpers/llmtap-process.ts';
import type { Harness } from '../helpers/llmtap-process.ts';
import { send } from '../helpers/http-client.ts';

const MB = 1024 * 1024;
const TOTAL = 50 * MB;
const MAX_GROWTH = 20 * MB;

let mock: MockUpstream;
let harness: Harness;

before(async () => {
  mock = await startMockUpstream();
  harness = await startHarness({ openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: mock.url });
  // Warm-up: one-time state that loads lazily on the first big stream (llmtap's tokenizer tables alone are ~22 MB of
  // heap, JIT code, connection pools) belongs in the baseline; the test is about what relaying 50 MB adds on top.
  mock.handle({ kind: 'huge', totalBytes: 2 * MB });
  for (const streamOptions of [undefined, { include_usage: true }]) {
    const res = await send(`${harness.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'warm up' }], stream: true, stream_options: streamOptions }),
      discardBody: true,
      timeoutMs: 20_000,
    });
    assert.ok(res.status === 200 && res.complete, 'warm-up stream relayed');
  }
});

after(async () => {
  await harness?.close();
  await mock?.close();
});

const mb = (n: number): string => `${(n / MB).toFixed(1)} MB`;

describe('memory stays bounded whatever the body size', () => {
  for (const variant of [
    { name: 'client did not ask for usage (llmtap rewrites the stream)', includeUsage: false },
    { name: 'client asked for usage (plain relay)', includeUsage: true },
  ]) {
    it(`relays 50 MB of SSE to a slow client with under 20 MB heap growth: ${variant.name}`, async (t) => {
      const script: HugeScript = { kind: 'huge', totalBytes: TOTAL, pieceChars: 4096 };
      mock.reset();
      mock.handle(script);
      // What the client must receive: the stream OpenAI sends for its request, generated once to count it.
      const expected = hugeOpenaiLength(hugeSpec(script), variant.includeUsage);
      assert.ok(expected >= TOTAL);

      const baseline = await harness.heap();
      // Samples force a GC first, so they show what llmtap retains rather than garbage not yet collected.
      harness.watch(100);
      let received = 0;
      const body: Record<string, unknown> = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Write a lot' }], stream: true };
      if (variant.includeUsage) body.stream_options = { include_usage: true };
      // The client reads slower than the mock writes: a proxy that ignores backpressure would pile the body up in memory.
      const res = await send(`${harness.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        timeoutMs: 45_000,
        throttle: { everyBytes: MB / 2, pauseMs: 100 },
        // Count bytes, keep none: the test process must not hold 50 MB either.
        discardBody: true,
        onChunk: (c) => {
          received += c.bytes.length;
        },
      });
      const { peak, samples } = await harness.unwatch();

      assert.equal(res.status, 200);
      assert.ok(res.complete, 'the stream ended normally');
      assert.equal(received, expected, `client received ${received} bytes, upstream stream is ${expected}`);
      const growth = peak.heapUsed + peak.external - (baseline.heapUsed + baseline.external);
      t.diagnostic(`heap+external growth ${mb(growth)} over ${samples} samples; heap ${mb(baseline.heapUsed)} → ${mb(peak.heapUsed)}, external ${mb(baseline.external)} → ${mb(peak.external)}`);
      assert.ok(samples >= 5, `took ${samples} heap samples during the transfer`);
      assert.ok(
        growth < MAX_GROWTH,
        `llmtap's heap + external memory grew by ${mb(growth)} (heap ${mb(baseline.heapUsed)} → ${mb(peak.heapUsed)}, external ${mb(baseline.external)} → ${mb(peak.external)}) while relaying ${mb(received)}`,
      );
    });
  }
});
