// Prices in USD per million tokens for common OpenAI and Anthropic models, a user's override file, and the cost of an exchange.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../config.ts';
import type { ExchangeRecord } from '../exchange/record.ts';

export interface Price {
  /** USD per million input tokens read fresh */
  input: number;
  /** USD per million output tokens (reasoning included) */
  output: number;
  /** USD per million input tokens served from the provider's cache; defaults to input */
  cachedInput?: number;
  /** USD per million input tokens written to the cache (Anthropic); defaults to input */
  cacheWrite?: number;
}

export type PriceTable = ReadonlyMap<string, Price>;

const p = (input: number, output: number, cachedInput?: number, cacheWrite?: number): Price => ({ input, output, cachedInput, cacheWrite });

/** List prices as published by OpenAI and Anthropic (standard tier, 2025); LLMTAP_PRICES overrides or adds. */
export const BUILT_IN_PRICES: Readonly<Record<string, Price>> = Object.freeze({
  // OpenAI
  'gpt-5': p(1.25, 10, 0.125),
  'gpt-5-mini': p(0.25, 2, 0.025),
  'gpt-5-nano': p(0.05, 0.4, 0.005),
  'gpt-4.1': p(2, 8, 0.5),
  'gpt-4.1-mini': p(0.4, 1.6, 0.1),
  'gpt-4.1-nano': p(0.1, 0.4, 0.025),
  'gpt-4o': p(2.5, 10, 1.25),
  'gpt-4o-mini': p(0.15, 0.6, 0.075),
  'gpt-4-turbo': p(10, 30),
  'gpt-4': p(30, 60),
  'gpt-3.5-turbo': p(0.5, 1.5),
  o1: p(15, 60, 7.5),
  'o1-mini': p(1.1, 4.4, 0.55),
  o3: p(2, 8, 0.5),
  'o3-mini': p(1.1, 4.4, 0.55),
  'o4-mini': p(1.1, 4.4, 0.275),
  'text-embedding-3-small': p(0.02, 0),
  'text-embedding-3-large': p(0.13, 0),
  'text-embedding-ada-002': p(0.1, 0),
  // Anthropic: cache reads cost 0.1x input, 5-minute cache writes 1.25x
  'claude-opus-4-5': p(5, 25, 0.5, 6.25),
  'claude-opus-4-1': p(15, 75, 1.5, 18.75),
  'claude-opus-4': p(15, 75, 1.5, 18.75),
  'claude-sonnet-4-5': p(3, 15, 0.3, 3.75),
  'claude-sonnet-4': p(3, 15, 0.3, 3.75),
  'claude-3-7-sonnet': p(3, 15, 0.3, 3.75),
  'claude-3-5-sonnet': p(3, 15, 0.3, 3.75),
  'claude-haiku-4-5': p(1, 5, 0.1, 1.25),
  'claude-3-5-haiku': p(0.8, 4, 0.08, 1),
  'claude-3-opus': p(15, 75, 1.5, 18.75),
  'claude-3-haiku': p(0.25, 1.25, 0.03, 0.3),
});

const usd = z.number().finite().min(0);
const priceSchema = z.object({ input: usd, output: usd, cachedInput: usd.optional(), cacheWrite: usd.optional() }).strict();
const tableSchema = z.record(z.string(), priceSchema);

/** The built-in table, with the entries of `file` (JSON or YAML: { model: { input, output, cachedInput?, cacheWrite? } }) on top. */
export async function loadPrices(file: string): Promise<PriceTable> {
  const table = new Map<string, Price>(Object.entries(BUILT_IN_PRICES));
  if (!file) return table;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`llmtap: cannot read the price file LLMTAP_PRICES=${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let data: unknown;
  try {
    data = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`llmtap: the price file LLMTAP_PRICES=${file} does not parse: ${(err as Error).message.split('\n')[0]}`);
  }
  // Either the table itself or { models: table }.
  const wrapped = data !== null && typeof data === 'object' && !Array.isArray(data) && Object.keys(data).length === 1 && 'models' in data;
  const parsed = tableSchema.safeParse(wrapped ? (data as { models: unknown }).models : (data ?? {}));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
    throw new ConfigError(
      `llmtap: the price file LLMTAP_PRICES=${file} is not a price table${where}: expected { "<model>": { "input": <USD per 1M>, "output": <USD per 1M>, "cachedInput"?: ..., "cacheWrite"?: ... } }`,
    );
  }
  for (const [model, price] of Object.entries(parsed.data)) table.set(model.toLowerCase(), price);
  return table;
}

// Dated snapshots and aliases price as their family: gpt-4o-2024-08-06, claude-sonnet-4-20250514, claude-3-5-haiku-latest.
const SUFFIX = /-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$/;

/** The price of a model name as providers spell it, or null. Only exact names, dated snapshots and -latest aliases match. */
export function priceOf(table: PriceTable, model: string | null | undefined): Price | null {
  if (!model) return null;
  let name = model.trim().toLowerCase();
  const slash = name.lastIndexOf('/');
  if (slash !== -1) name = name.slice(slash + 1);
  return table.get(name) ?? table.get(name.replace(SUFFIX, '')) ?? null;
}

export interface TokenCounts {
  input: number | null;
  output: number | null;
  /** input tokens read from the cache (included in input) */
  cacheRead: number | null;
  /** input tokens written to the cache (included in input) */
  cacheWrite: number | null;
}

/** USD, rounded to the nano-dollar so sums of costs stay exact; null when there is no price or nothing was counted. */
export function costOf(price: Price | null, t: TokenCounts): number | null {
  if (!price || (t.input === null && t.output === null)) return null;
  const cached = t.cacheRead ?? 0;
  const written = t.cacheWrite ?? 0;
  const fresh = Math.max(0, (t.input ?? 0) - cached - written);
  // price is per million tokens: price x tokens x 1000 is nano-dollars.
  const nanos = fresh * price.input + cached * (price.cachedInput ?? price.input) + written * (price.cacheWrite ?? price.input) + (t.output ?? 0) * price.output;
  return Math.round(nanos * 1000) / 1e9;
}

/** The cost of an exchange: priced by the model that answered, else the one asked for. */
export function costOfExchange(table: PriceTable, r: Pick<ExchangeRecord, 'model' | 'responseModel' | 'usage'>): number | null {
  const price = priceOf(table, r.responseModel) ?? priceOf(table, r.model);
  return costOf(price, r.usage);
}

/** A cost calculator for a config (the OTel helper's llmtap.cost counter can use this without the usage store). */
export async function costCalculator(config: { prices: string }): Promise<(r: Pick<ExchangeRecord, 'model' | 'responseModel' | 'usage'>) => number | null> {
  const table = await loadPrices(config.prices);
  return (r) => costOfExchange(table, r);
}

/** Nano-dollars as an integer, for exact sums. */
export const toNanos = (usd: number | null): number => (usd === null ? 0 : Math.round(usd * 1e9));
