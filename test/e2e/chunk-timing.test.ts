// End to end: llmtap relays each streamed chunk as it arrives (SSE and NDJSON), never holding one back for the next.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { configWith } from '../../src/config.ts';
import { startLlmtap } from '../../src/start.ts';
import type { RunningLlmtap } from '../../src/start.ts';
import { startMockUpstream } from '../helpers/mock-upstream.ts';
import type { MockUpstream } from '../helpers/mock-upstream.ts';
import { collectRecords } from '../helpers/records.ts';
import type { RecordSink } from '../helpers/records.ts';
import { postJson } from '../helpers/http-client.ts';

const GAP_MS = 500;
const FIRST = 'first-piece';
const SECOND = 'second-piece';

let mock: MockUpstream;
let proxy: RunningLlmtap;
let records: RecordSink;

before(async () => {
  mock = await startMockUpstream();
  proxy = await startLlmtap(configWith({ port: 0, openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: mock.url, logLevel: 'silent' }));
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

const cases: { name: string; path: string; body: unknown; contentType: RegExp }[] = [
  {
    name: 'OpenAI SSE (with llmtap rewriting the stream to hide usage)',
    path: '/v1/chat/completions',
    body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], stream: true },
    contentType: /^text\/event-stream/,
  },
  {
    name: 'OpenAI SSE (client asked for usage, no rewriting)',
    path: '/v1/chat/completions',
    body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], stream: true, stream_options: { include_usage: true } },
    contentType: /^text\/event-stream/,
  },
  {
    name: 'Anthropic SSE',
    path: '/v1/messages',
    body: { model: 'claude-sonnet-4-5', max_tokens: 32, messages: [{ role: 'user', content: 'Hi' }], stream: true },
    contentType: /^text\/event-stream/,
  },
  {
    name: 'Ollama NDJSON',
    path: '/api/chat',
    body: { model: 'llama3.2', messages: [{ role: 'user', content: 'Hi' }], stream: true },
    contentType: /^application\/x-ndjson/,
  },
];

describe('chunks reach the client as the upstream sends them', () => {
  for (const c of cases) {
    it(c.name, async () => {
      mock.handle({ kind: 'chat', pieces: [FIRST, SECOND], gapMs: GAP_MS });
      let firstSeenAt: number | null = null;
      const res = await postJson(`${proxy.url}${c.path}`, c.body, {}, {
        onChunk: (chunk, _abort, soFar) => {
          if (firstSeenAt === null && Buffer.concat(soFar).includes(FIRST)) firstSeenAt = chunk.at;
        },
      });
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), c.contentType);
      assert.ok(res.complete, 'the stream ended normally');
      assert.ok(res.body.includes(SECOND), 'the second piece arrived too');

      const sent = await mock.waitForRequest();
      const [firstSentAt, secondSentAt] = sent.contentSentAt;
      assert.ok(firstSentAt !== undefined && secondSentAt !== undefined, 'the mock sent both pieces');
      assert.ok(secondSentAt - firstSentAt >= GAP_MS - 10, `the mock paused ${secondSentAt - firstSentAt} ms between the pieces`);
      assert.ok(firstSeenAt !== null, 'the client saw the first piece');
      assert.ok(
        firstSeenAt < secondSentAt,
        `the client had the first piece ${(firstSeenAt - firstSentAt).toFixed(1)} ms after it was sent, ${(firstSeenAt - secondSentAt).toFixed(1)} ms after the second was sent: llmtap held it back`,
      );

      const r = await records.waitFor((x) => x.url === c.path);
      assert.equal(r.outcome, 'ok');
      assert.equal(r.streamComplete, true);
    });
  }
});
