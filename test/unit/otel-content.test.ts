// Message content: recorded only when OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT asks, in the semconv shape, bounded.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONTENT_LIMITS, createContentCollector, inputMessages, outputMessages } from '../../otel/index.ts';

const bytes = (v: unknown) => Buffer.from(JSON.stringify(v));

describe('message content', () => {
  it('is off by default (NO_CONTENT): no collector, so no per-exchange work', () => {
    assert.equal(createContentCollector('NO_CONTENT'), null);
  });

  it('input: chat messages with a top-level system, text blocks kept, other blocks named by type', () => {
    const json = inputMessages(bytes({ system: 'be brief', messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }, { type: 'image', source: {} }] }, { role: 'assistant', content: 'hello' }] }));
    assert.deepEqual(JSON.parse(json!), [
      { role: 'system', parts: [{ type: 'text', content: 'be brief' }] },
      { role: 'user', parts: [{ type: 'text', content: 'hi' }, { type: 'image' }] },
      { role: 'assistant', parts: [{ type: 'text', content: 'hello' }] },
    ]);
    assert.deepEqual(JSON.parse(inputMessages(bytes({ model: 'm', prompt: 'Once upon' }))!), [{ role: 'user', parts: [{ type: 'text', content: 'Once upon' }] }]);
    assert.equal(inputMessages(Buffer.from('not json')), null);
  });

  it('output: OpenAI choices, Anthropic content, Ollama message/response, with finish reasons', () => {
    assert.deepEqual(JSON.parse(outputMessages(bytes({ choices: [{ message: { role: 'assistant', content: 'A' }, finish_reason: 'stop' }] }))!), [{ role: 'assistant', parts: [{ type: 'text', content: 'A' }], finish_reason: 'stop' }]);
    assert.deepEqual(JSON.parse(outputMessages(bytes({ role: 'assistant', content: [{ type: 'text', text: 'B' }], stop_reason: 'end_turn' }))!), [{ role: 'assistant', parts: [{ type: 'text', content: 'B' }], finish_reason: 'end_turn' }]);
    assert.deepEqual(JSON.parse(outputMessages(bytes({ message: { role: 'assistant', content: 'C' }, done_reason: 'stop' }))!), [{ role: 'assistant', parts: [{ type: 'text', content: 'C' }], finish_reason: 'stop' }]);
    assert.deepEqual(JSON.parse(outputMessages(bytes({ response: 'D' }))!), [{ role: 'assistant', parts: [{ type: 'text', content: 'D' }] }]);
  });

  it('is bounded: long parts are cut, only the last messages kept, big responses and streams give no output', () => {
    const long = 'x'.repeat(CONTENT_LIMITS.partChars + 100);
    const many = Array.from({ length: CONTENT_LIMITS.messages + 10 }, (_, i) => ({ role: 'user', content: i === CONTENT_LIMITS.messages + 9 ? long : `m${i}` }));
    const parsed = JSON.parse(inputMessages(bytes({ messages: many }))!) as Array<{ parts: Array<{ content: string }> }>;
    assert.equal(parsed.length, CONTENT_LIMITS.messages);
    assert.equal(parsed[0]!.parts[0]!.content, 'm10');
    assert.equal(parsed.at(-1)!.parts[0]!.content.length, CONTENT_LIMITS.partChars + 1);

    const c = createContentCollector('SPAN_ONLY')!;
    c.onStart({ id: 'a', requestBody: bytes({ messages: [{ role: 'user', content: 'q' }] }) });
    c.onChunk('a', 'response', bytes({ choices: [{ message: { role: 'assistant', content: 'ans' } }] }));
    assert.deepEqual(c.take('a', false), { input: '[{"role":"user","parts":[{"type":"text","content":"q"}]}]', output: '[{"role":"assistant","parts":[{"type":"text","content":"ans"}]}]' });
    assert.equal(c.take('a', false), null, 'taken once');
    c.onStart({ id: 'b', requestBody: null });
    c.onChunk('b', 'response', Buffer.alloc(CONTENT_LIMITS.responseBytes + 1));
    assert.deepEqual(c.take('b', false), { input: null, output: null });
    for (let i = 0; i < CONTENT_LIMITS.pending + 5; i++) c.onStart({ id: `p${i}`, requestBody: null });
    assert.equal(c.take('p0', false), null, 'the oldest pending exchanges are forgotten past the bound');
  });
});
