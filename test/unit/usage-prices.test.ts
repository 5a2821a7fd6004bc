// Unit: the price table, model-name matching, the cost of an exchange, and the user's override file.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/config.ts';
import { BUILT_IN_PRICES, costOf, costOfExchange, loadPrices, priceOf, toNanos } from '../../src/usage/prices.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'llmtap-prices-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const usage = (input: number | null, output: number | null, cacheRead: number | null = null, cacheWrite: number | null = null) => ({
  input,
  output,
  total: input !== null && output !== null ? input + output : null,
  cacheRead,
  cacheWrite,
  reasoning: null,
  source: 'reported' as const,
});

describe('priceOf', () => {
  it('matches exact names, dated snapshots and -latest aliases, case and provider prefix aside', async () => {
    const t = await loadPrices('');
    assert.equal(priceOf(t, 'gpt-4o'), BUILT_IN_PRICES['gpt-4o']);
    assert.equal(priceOf(t, 'gpt-4o-2024-08-06'), BUILT_IN_PRICES['gpt-4o']);
    assert.equal(priceOf(t, 'gpt-4o-mini-2024-07-18'), BUILT_IN_PRICES['gpt-4o-mini']);
    assert.equal(priceOf(t, 'claude-sonnet-4-20250514'), BUILT_IN_PRICES['claude-sonnet-4']);
    assert.equal(priceOf(t, 'claude-3-5-haiku-latest'), BUILT_IN_PRICES['claude-3-5-haiku']);
    assert.equal(priceOf(t, 'OpenAI/GPT-4o'), BUILT_IN_PRICES['gpt-4o']);
  });

  it('gives no price to models it does not know, rather than a neighbour\'s', async () => {
    const t = await loadPrices('');
    for (const m of ['o1-pro', 'gpt-4o-audio-preview', 'llama3:latest', 'sim-gpt', 'unknown', '']) assert.equal(priceOf(t, m), null, m);
    assert.equal(priceOf(t, null), null);
  });
});

describe('costOf', () => {
  it('is tokens x price per million for a known model', async () => {
    const t = await loadPrices('');
    // gpt-4o: $2.50 in, $10 out per million tokens
    assert.equal(costOfExchange(t, { model: 'gpt-4o', responseModel: 'gpt-4o-2024-08-06', usage: usage(1200, 300) }), (1200 * 2.5 + 300 * 10) / 1e6);
    assert.equal(costOfExchange(t, { model: 'claude-3-haiku-20240307', responseModel: null, usage: usage(1_000_000, 1_000_000) }), 0.25 + 1.25);
  });

  it('prices cached input at the cached rate and cache writes at the write rate', async () => {
    const t = await loadPrices('');
    // claude-sonnet-4: 3 in, 15 out, 0.30 cache read, 3.75 cache write; input includes the cached and written tokens
    const c = costOfExchange(t, { model: 'claude-sonnet-4-5', responseModel: null, usage: usage(1000, 100, 600, 300) });
    assert.equal(toNanos(c), toNanos((100 * 3 + 600 * 0.3 + 300 * 3.75 + 100 * 15) / 1e6));
  });

  it('is null without a price or without tokens, and rounds to the nano-dollar', () => {
    assert.equal(costOf(null, usage(10, 10)), null);
    assert.equal(costOf({ input: 1, output: 1 }, usage(null, null)), null);
    // 7 tokens at $0.075/M = 525 nano-dollars exactly, whatever float noise the product carries
    assert.equal(toNanos(costOf({ input: 0.075, output: 0 }, usage(7, 0))), 525);
  });
});

describe('loadPrices with LLMTAP_PRICES', () => {
  it('adds and overrides entries from a JSON or YAML file', async () => {
    const json = join(dir, 'prices.json');
    writeFileSync(json, JSON.stringify({ 'my-model': { input: 1, output: 2 }, 'gpt-4o': { input: 5, output: 20 } }));
    const t = await loadPrices(json);
    assert.deepEqual(priceOf(t, 'my-model'), { input: 1, output: 2 });
    assert.deepEqual(priceOf(t, 'gpt-4o-2024-08-06'), { input: 5, output: 20 });
    assert.equal(priceOf(t, 'gpt-4o-mini'), BUILT_IN_PRICES['gpt-4o-mini']);
    const yaml = join(dir, 'prices.yaml');
    writeFileSync(yaml, 'models:\n  local-llama:\n    input: 0\n    output: 0.5\n');
    assert.deepEqual(priceOf(await loadPrices(yaml), 'local-llama'), { input: 0, output: 0.5 });
  });

  it('refuses a file that is missing, does not parse, or is not a price table, naming it', async () => {
    await assert.rejects(loadPrices(join(dir, 'nope.json')), (e: Error) => e instanceof ConfigError && /nope\.json/.test(e.message) && /ENOENT/.test(e.message));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ not json');
    await assert.rejects(loadPrices(bad), (e: Error) => e instanceof ConfigError && /bad\.json does not parse/.test(e.message));
    const wrong = join(dir, 'wrong.yaml');
    writeFileSync(wrong, 'gpt-4o:\n  input: cheap\n  output: 1\n');
    await assert.rejects(loadPrices(wrong), (e: Error) => e instanceof ConfigError && /wrong\.yaml is not a price table at gpt-4o/.test(e.message));
  });
});
