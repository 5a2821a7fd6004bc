// Token estimates: prompt text of each dialect's request shape, the o200k count, and the bounded streaming tally.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import { createTextTally, estimateTokens, promptText } from '../../src/tokens/estimate.ts';
import { seededRandom } from '../helpers/fixtures.ts';

const IMAGE_B64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

/** Asserts the pieces occur in text in this order. */
function inOrder(text: string, pieces: string[]): void {
  let from = 0;
  for (const p of pieces) {
    const at = text.indexOf(p, from);
    assert.ok(at !== -1, `"${p}" missing (or out of order) in ${JSON.stringify(text)}`);
    from = at + p.length;
  }
}

const openaiChat = {
  model: 'gpt-4o',
  temperature: 0.2,
  messages: [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: [{ type: 'text', text: 'Describe this image.' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${IMAGE_B64}`, detail: 'low' } }] },
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
    { role: 'tool', tool_call_id: 'call_1', content: '18C and sunny' },
  ],
};

const anthropicMessages = {
  model: 'claude-sonnet-4-5',
  max_tokens: 100,
  system: [{ type: 'text', text: 'Be brief.' }],
  messages: [
    { role: 'user', content: 'Hi there' },
    { role: 'assistant', content: [{ type: 'text', text: 'Hello!' }, { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Lyon' } }] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'Rainy, 12C' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: IMAGE_B64 } }] },
  ],
};

describe('promptText', () => {
  it('OpenAI chat: system, text parts, tool-call arguments and tool results, in order; not the model or roles', () => {
    const { text, tokenIds } = promptText(openaiChat);
    inOrder(text, ['You are terse.', 'Describe this image.', '{"city":"Paris"}', '18C and sunny']);
    assert.equal(tokenIds, 0);
    assert.ok(!text.includes('gpt-4o'));
    const parts = text.split('\n');
    for (const role of ['system', 'user', 'assistant', 'tool']) assert.ok(!parts.includes(role), `role ${role} is not prompt text`);
  });

  it('OpenAI completions and embeddings: prompt / input strings, and token-id arrays counted by length', () => {
    inOrder(promptText({ model: 'babbage-002', prompt: 'def fib(n):' }).text, ['def fib(n):']);
    inOrder(promptText({ model: 'babbage-002', prompt: ['first prompt', 'second prompt'] }).text, ['first prompt', 'second prompt']);
    assert.deepEqual(promptText({ model: 'babbage-002', prompt: [101, 102, 103] }), { text: '', tokenIds: 3 });
    inOrder(promptText({ model: 'text-embedding-3-small', input: ['alpha beta', 'gamma'] }).text, ['alpha beta', 'gamma']);
    assert.equal(promptText({ model: 'text-embedding-3-small', input: [[1, 2], [3, 4, 5]] }).tokenIds, 5);
  });

  it('OpenAI responses: instructions and input text', () => {
    const { text } = promptText({ model: 'gpt-4.1', instructions: 'Answer in French.', input: [{ role: 'user', content: [{ type: 'input_text', text: 'What is a PDF?' }] }] });
    inOrder(text, ['Answer in French.', 'What is a PDF?']);
    inOrder(promptText({ model: 'gpt-4.1', input: 'Just a string' }).text, ['Just a string']);
  });

  it('Anthropic: system blocks, string and block content, tool_use input, tool_result content', () => {
    const { text } = promptText(anthropicMessages);
    inOrder(text, ['Be brief.', 'Hi there', 'Hello!', 'Lyon', 'Rainy, 12C']);
    assert.ok(!text.includes('claude-sonnet-4-5'));
  });

  it('Ollama: chat messages and generate prompt/system; images are not text', () => {
    const chat = promptText({ model: 'llama3', messages: [{ role: 'user', content: 'Why is the sky blue?', images: [IMAGE_B64] }], options: { temperature: 0 } });
    inOrder(chat.text, ['Why is the sky blue?']);
    assert.ok(!chat.text.includes(IMAGE_B64));
    const gen = promptText({ model: 'dolphin3:8b', system: 'You are a poet.', prompt: 'Write a haiku about rabbits.' });
    inOrder(gen.text, ['You are a poet.', 'Write a haiku about rabbits.']);
  });

  it('image data (base64) is not counted as prompt text (OpenAI image_url, Anthropic image source)', () => {
    assert.ok(!promptText(openaiChat).text.includes(IMAGE_B64), 'OpenAI data: URL counted as text');
    assert.ok(!promptText(anthropicMessages).text.includes(IMAGE_B64), 'Anthropic base64 image counted as text');
  });

  it('nothing for bodies without text', () => {
    assert.deepEqual(promptText(undefined), { text: '', tokenIds: 0 });
    assert.deepEqual(promptText({ model: 'x', stream: true }), { text: '', tokenIds: 0 });
  });
});

describe('estimateTokens', () => {
  it("'hello world' is gpt-tokenizer's o200k count (2 tokens: hello, ' world')", async () => {
    assert.equal(countTokens('hello world'), 2);
    assert.equal(await estimateTokens('hello world'), countTokens('hello world'));
    assert.equal(await estimateTokens(''), 0);
    const s = 'Galaxy Day fosters a sense of unity, exploration, and awe — 宇宙 🚀.';
    assert.equal(await estimateTokens(s), countTokens(s));
  });
});

describe('createTextTally', () => {
  function corpus(chars: number): string {
    const words = ['the', 'rabbit', 'is', 'a', 'small', 'mammal', 'known', 'for', 'its', 'long', 'ears', 'and', 'fluffy', 'fur', 'température', 'naïve', '東京', '42', '3.14159', 'function', 'return', '{', '}', '\n', 'Galaxy', 'Day', 'fosters', 'awe', '—'];
    const rnd = seededRandom(17);
    let out = '';
    while (out.length < chars) out += words[Math.floor(rnd() * words.length)]! + (rnd() < 0.1 ? '. ' : ' ');
    return out;
  }

  it('over >64 KB of streamed text, the count is within 1% of counting the whole text at once', async () => {
    const text = corpus(300_000);
    const exact = countTokens(text);
    const tally = createTextTally();
    assert.equal(tally.hasText(), false);
    const rnd = seededRandom(5);
    for (let i = 0; i < text.length; ) {
      const n = 1 + Math.floor(rnd() * 40);
      tally.add(text.slice(i, i + n));
      i += n;
    }
    assert.equal(tally.hasText(), true);
    const total = await tally.total();
    assert.ok(Math.abs(total - exact) / exact < 0.01, `tally ${total} vs whole ${exact}`);
    assert.equal(await tally.total(), total, 'total() twice gives the same count');
  });

  it('below the hold threshold the count is exact', async () => {
    const text = corpus(10_000);
    const tally = createTextTally();
    for (let i = 0; i < text.length; i += 7) tally.add(text.slice(i, i + 7));
    tally.add('');
    assert.equal(await tally.total(), countTokens(text));
  });

  it('empty strings are not text', async () => {
    const tally = createTextTally();
    tally.add('');
    assert.equal(tally.hasText(), false);
    assert.equal(await tally.total(), 0);
  });
});
