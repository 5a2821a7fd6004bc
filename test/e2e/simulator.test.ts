// The simulated LLM as the official OpenAI, Anthropic and Ollama clients see it, and `npm run demo` start to Ctrl-C.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { startSimulator, type RunningSimulator } from '../../src/simulator/index.ts';

const QUESTION = 'What does llmtap record?';

describe('simulator with the official clients', () => {
  let sim: RunningSimulator;
  let openai: OpenAI;
  let anthropic: Anthropic;
  let ollama: Ollama;

  before(async () => {
    // Fast pacing keeps the suite quick; the default pacing has its own test below.
    sim = await startSimulator({ firstTokenDelayMs: 5, tokenDelayMs: 1 });
    openai = new OpenAI({ baseURL: `${sim.url}/v1`, apiKey: 'sk-sim', maxRetries: 0 });
    anthropic = new Anthropic({ baseURL: sim.url, apiKey: 'sk-ant-sim', maxRetries: 0 });
    ollama = new Ollama({ host: sim.url });
  });
  after(async () => {
    await sim.close();
  });

  test('openai chat: non-streamed and streamed answers agree, usage counts the streamed pieces', async () => {
    const messages = [{ role: 'user' as const, content: QUESTION }];
    const whole = await openai.chat.completions.create({ model: 'sim-gpt', messages });
    assert.equal(whole.object, 'chat.completion');
    assert.equal(whole.model, 'sim-gpt');
    assert.equal(whole.choices[0]?.finish_reason, 'stop');
    const text = whole.choices[0]?.message.content ?? '';
    assert.match(text, /llmtap/);

    const stream = await openai.chat.completions.create({ model: 'sim-gpt', messages, stream: true, stream_options: { include_usage: true } });
    let pieces = 0;
    let streamed = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    let finish: string | null | undefined;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      assert.ok('usage' in chunk, 'with include_usage every chunk carries a usage key');
      const delta = chunk.choices[0]?.delta.content;
      if (delta) {
        pieces++;
        streamed += delta;
      }
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) {
        assert.equal(chunk.choices.length, 0, 'the usage chunk has no choices');
        usage = chunk.usage;
      }
    }
    assert.ok(chunks > pieces);
    assert.equal(streamed, text);
    assert.equal(finish, 'stop');
    assert.ok(usage);
    assert.equal(usage.completion_tokens, pieces);
    assert.equal(usage.completion_tokens, whole.usage?.completion_tokens);
    assert.equal(usage.prompt_tokens, whole.usage?.prompt_tokens);
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    assert.equal(usage.prompt_tokens_details?.cached_tokens, 0);
    assert.equal(usage.completion_tokens_details?.reasoning_tokens, 0);
  });

  test('openai chat stream without include_usage carries no usage at all', async () => {
    const res = await fetch(`${sim.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'x', messages: [{ role: 'user', content: 'hi' }], stream: true }),
    });
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const text = await res.text();
    assert.ok(!text.includes('"usage"'));
    assert.ok(text.endsWith('data: [DONE]\n\n'));
    const first = JSON.parse(text.split('\n\n')[0]!.slice('data: '.length)) as { choices: { delta: unknown }[] };
    assert.deepEqual(first.choices[0]?.delta, { role: 'assistant', content: '', refusal: null });
  });

  test('openai chat helper stream and max_tokens truncation', async () => {
    const runner = openai.chat.completions.stream({ model: 'sim-gpt', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 3 });
    const final = await runner.finalChatCompletion();
    assert.equal(final.choices[0]?.finish_reason, 'length');
    assert.ok((final.choices[0]?.message.content ?? '').length > 0);
  });

  test('openai legacy completions, streamed with usage', async () => {
    const stream = await openai.completions.create({ model: 'sim-gpt', prompt: QUESTION, stream: true, stream_options: { include_usage: true } });
    let pieces = 0;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.text) pieces++;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.ok(usage);
    assert.equal(usage.completion_tokens, pieces);
    const whole = await openai.completions.create({ model: 'sim-gpt', prompt: QUESTION });
    assert.equal(whole.usage?.completion_tokens, pieces);
  });

  test('openai responses API, streamed and not', async () => {
    const whole = await openai.responses.create({ model: 'sim-gpt', input: QUESTION });
    assert.equal(whole.status, 'completed');
    assert.match(whole.output_text, /llmtap/);
    const stream = await openai.responses.create({ model: 'sim-gpt', input: QUESTION, stream: true });
    let pieces = 0;
    let completed: OpenAI.Responses.Response | undefined;
    for await (const event of stream) {
      if (event.type === 'response.output_text.delta') pieces++;
      if (event.type === 'response.completed') completed = event.response;
    }
    assert.ok(completed);
    assert.equal(completed.usage?.output_tokens, pieces);
    assert.equal(completed.output_text ?? whole.output_text, whole.output_text);
  });

  test('openai embeddings (the SDK asks for base64) and models', async () => {
    const e = await openai.embeddings.create({ model: 'sim-embed', input: ['a', 'b'] });
    assert.equal(e.data.length, 2);
    assert.equal(e.data[0]?.embedding.length, 64);
    assert.ok(e.usage.prompt_tokens > 0);
    const asFloat = await openai.embeddings.create({ model: 'sim-embed', input: ['a', 'b'], encoding_format: 'float', dimensions: 64 });
    const a = e.data[0]!.embedding;
    const b = asFloat.data[0]!.embedding;
    assert.ok(a.every((v, i) => Math.abs(v - b[i]!) < 1e-6), 'base64 and float give the same vector');
    const models = await openai.models.list();
    assert.ok(models.data.some((m) => m.id === 'sim-gpt'));
  });

  test('anthropic messages: whole, streamed, and count_tokens agree', async () => {
    const params = { model: 'sim-claude', max_tokens: 200, messages: [{ role: 'user' as const, content: QUESTION }] };
    const whole = await anthropic.messages.create(params);
    assert.equal(whole.type, 'message');
    assert.equal(whole.model, 'sim-claude');
    assert.equal(whole.stop_reason, 'end_turn');
    const text = whole.content[0]?.type === 'text' ? whole.content[0].text : '';
    assert.match(text, /llmtap/);

    const stream = anthropic.messages.stream(params);
    let pieces = 0;
    stream.on('text', () => pieces++);
    const final = await stream.finalMessage();
    assert.equal(final.content[0]?.type === 'text' ? final.content[0].text : '', text);
    assert.equal(final.usage.output_tokens, pieces);
    assert.equal(final.usage.output_tokens, whole.usage.output_tokens);
    assert.equal(final.usage.input_tokens, whole.usage.input_tokens);

    const counted = await anthropic.messages.countTokens({ model: 'sim-claude', messages: params.messages });
    assert.equal(counted.input_tokens, whole.usage.input_tokens);

    const cut = await anthropic.messages.create({ ...params, max_tokens: 2 });
    assert.equal(cut.stop_reason, 'max_tokens');
    assert.equal(cut.usage.output_tokens, 2);
  });

  test('ollama chat and generate: streamed by default, eval_count counts the pieces', async () => {
    const messages = [{ role: 'user', content: QUESTION }];
    const whole = await ollama.chat({ model: 'sim-llama', messages, stream: false });
    assert.equal(whole.done, true);
    assert.match(whole.message.content, /llmtap/);

    let pieces = 0;
    let streamed = '';
    let last: Awaited<ReturnType<typeof ollama.chat>> | undefined;
    for await (const part of await ollama.chat({ model: 'sim-llama', messages, stream: true })) {
      if (!part.done) {
        pieces++;
        streamed += part.message.content;
      }
      last = part;
    }
    assert.ok(last?.done);
    assert.equal(last.done_reason, 'stop');
    assert.equal(streamed, whole.message.content);
    assert.equal(last.eval_count, pieces);
    assert.equal(last.eval_count, whole.eval_count);
    assert.equal(last.prompt_eval_count, whole.prompt_eval_count);
    for (const k of ['total_duration', 'load_duration', 'prompt_eval_duration', 'eval_duration'] as const) {
      assert.ok(Number.isInteger(last[k]) && last[k] >= 0, `${k} is a count of nanoseconds`);
    }

    let genPieces = 0;
    let genLast: Awaited<ReturnType<typeof ollama.generate>> | undefined;
    for await (const part of await ollama.generate({ model: 'sim-llama', prompt: QUESTION, stream: true })) {
      if (!part.done) genPieces++;
      genLast = part;
    }
    assert.equal(genLast?.eval_count, genPieces);
    assert.ok(Array.isArray(genLast?.context));

    // Without `stream` the raw API streams: NDJSON, as Ollama does.
    const raw = await fetch(`${sim.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'm', prompt: 'hi' }) });
    assert.equal(raw.headers.get('content-type'), 'application/x-ndjson');
    const lines = (await raw.text()).trim().split('\n').map((l) => JSON.parse(l) as { done: boolean; eval_count?: number });
    assert.equal(lines.at(-1)?.done, true);
    assert.equal(lines.at(-1)?.eval_count, lines.length - 1);
  });

  test('ollama embed, tags, version', async () => {
    const e = await ollama.embed({ model: 'sim-embed', input: ['a', 'b'] });
    assert.equal(e.embeddings.length, 2);
    assert.ok(e.embeddings[0]!.length > 0);
    const tags = await ollama.list();
    assert.ok(tags.models.some((m) => m.name === 'sim-llama:latest'));
    const v = await ollama.version();
    assert.match(v.version, /^\d+\.\d+\.\d+$/);
  });

  test('errors come in each dialect\'s shape', async () => {
    const post = (path: string, body: string) => fetch(`${sim.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    let res = await post('/v1/nope', '{}');
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { error: { message: 'Invalid URL (POST /v1/nope)', type: 'invalid_request_error', param: null, code: null } });
    res = await post('/v1/chat/completions', '{not json');
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
    res = await post('/v1/messages', '{not json');
    assert.equal(res.status, 400);
    const anth = (await res.json()) as { type: string; error: { type: string } };
    assert.equal(anth.type, 'error');
    assert.equal(anth.error.type, 'invalid_request_error');
    res = await post('/v1/messages/nope', '{}');
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { error: { type: string } }).error.type, 'not_found_error');
    res = await post('/api/chat', '{not json');
    assert.equal(res.status, 400);
    assert.equal(typeof ((await res.json()) as { error: unknown }).error, 'string');
    res = await post('/api/nope', '{}');
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { error: '404 page not found' });
    // The SDKs surface these as their own error classes.
    await assert.rejects(anthropic.messages.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] } as never), (err: unknown) => err instanceof Anthropic.BadRequestError);
  });

  test('unknown model names are accepted and echoed', async () => {
    const r = await openai.chat.completions.create({ model: 'my-own-model-7b', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.model, 'my-own-model-7b');
  });
});

describe('simulator lifecycle and pacing', () => {
  test('default pacing: first token after a think pause, whole answer within a couple of seconds', async () => {
    const sim = await startSimulator();
    try {
      const t0 = performance.now();
      const res = await fetch(`${sim.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'sim-gpt', messages: [{ role: 'user', content: QUESTION }], stream: true }),
      });
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let ttft: number | null = null;
      let text = '';
      for (let i = 0; i < 10_000; i++) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
        if (ttft === null && text.includes('"delta":{"content"')) ttft = performance.now() - t0;
      }
      const total = performance.now() - t0;
      assert.ok(ttft !== null && ttft >= 140 && ttft < 700, `ttft ${ttft}`);
      assert.ok(total > ttft + 100 && total < 2600, `total ${total}`);
    } finally {
      await sim.close();
    }
  });

  test('a client that disconnects stops its stream; close() ends open streams and resolves', async () => {
    const sim = await startSimulator({ firstTokenDelayMs: 10, tokenDelayMs: 50 });
    const controller = new AbortController();
    const res = await fetch(`${sim.url}/api/chat`, {
      method: 'POST',
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: QUESTION }] }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();

    // A second stream still open when the simulator closes: its client sees the connection end early.
    const open = await fetch(`${sim.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', max_tokens: 100, stream: true, messages: [{ role: 'user', content: QUESTION }] }),
    });
    const t0 = performance.now();
    await sim.close();
    assert.ok(performance.now() - t0 < 500, 'close() does not wait for answers to finish');
    await assert.rejects(open.text());
  });
});

describe('npm run demo', () => {
  test('starts, prints where to look, and exits 0 on SIGINT', async (t) => {
    const start = (await import('../../src/start.ts')) as { startLlmtap?: unknown };
    if (typeof start.startLlmtap !== 'function') {
      t.skip('src/start.ts does not implement startLlmtap yet');
      return;
    }
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts'], {
      cwd: new URL('../..', import.meta.url),
      env: { ...process.env, LLMTAP_PORT: '0', NO_COLOR: '1', LLMTAP_CAPTURE_DIR: `${process.env.TMPDIR ?? '/tmp'}/llmtap-demo-test-captures`, LLMTAP_USAGE_FILE: `${process.env.TMPDIR ?? '/tmp'}/llmtap-demo-test-usage.json` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const killer = setTimeout(() => child.kill('SIGKILL'), 45_000);
    try {
      for (let i = 0; i < 400 && !out.includes('serving until Ctrl-C'); i++) {
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(out, /where to look/, `demo output:\n${out}\n${err}`);
      assert.match(out, /curl -N http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions/);
      assert.match(out, /baseURL: 'http:\/\/127\.0\.0\.1:\d+\/v1'/);
      // Five demo exchanges, each a row of the table.
      assert.equal(out.match(/^ {2}(openai|anthropic|ollama) +(chat|text_completion|embeddings|-) /gm)?.length, 5, out);
      child.kill('SIGINT');
      assert.equal(await exited, 0, `demo output:\n${out}\n${err}`);
    } finally {
      clearTimeout(killer);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
