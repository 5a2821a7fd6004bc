// Settles an exchange's token usage: the upstream's own numbers, else an estimate with a real tokenizer.
import type { Observation, RequestInfo } from '../dialects/index.ts';
import type { Outcome, TokenUsage } from '../exchange/record.ts';
import { estimateTokens, promptText } from '../tokens/estimate.ts';

export interface UsageInputs {
  info: RequestInfo;
  observation: Observation | null;
  status: number | null;
  outcome: Outcome;
  /** the request body's JSON, read lazily: only an estimate needs the prompt */
  requestJson: () => unknown;
}

/** Usage of an exchange that reported and processed nothing; a fresh object each time, since records are handed out. */
export const noUsage = (): TokenUsage => ({ input: null, output: null, total: null, cacheRead: null, cacheWrite: null, reasoning: null, source: 'none' });

/**
 * The exchange's usage: the upstream's own numbers at once, or a promise of an estimate when the upstream did
 * not report them. Not an async function: nearly every exchange has reported usage, and a promise per request
 * would cost the relay's hot path for nothing.
 */
export function settleUsage({ info, observation, status, outcome, requestJson }: UsageInputs): TokenUsage | Promise<TokenUsage> {
  const reported = observation?.usage ?? null;
  const embeddings = info.operation === 'embeddings';
  const base: TokenUsage = {
    total: null,
    source: 'none',
    input: reported?.input ?? null,
    output: embeddings ? null : reported?.output ?? null,
    cacheRead: reported?.cacheRead ?? null,
    cacheWrite: reported?.cacheWrite ?? null,
    reasoning: reported?.reasoning ?? null,
  };
  const complete = base.input !== null && (embeddings || base.output !== null);
  if (complete) {
    base.total = reported?.total ?? base.input! + (base.output ?? 0);
    base.source = 'reported';
    return base;
  }
  // Estimate only what a model really processed: a generation call that got a successful response.
  const generated = info.operation !== null && status !== null && status >= 200 && status < 300 && outcome !== 'upstream_unreachable';
  if (!generated) {
    if (!reported) return noUsage();
    base.total = reported.total ?? null;
    base.source = 'reported';
    return base;
  }
  return estimate(base, embeddings, observation, requestJson);
}

async function estimate(base: TokenUsage, embeddings: boolean, observation: Observation | null, requestJson: () => unknown): Promise<TokenUsage> {
  if (base.input === null) {
    const { text, tokenIds } = promptText(requestJson());
    base.input = (await estimateTokens(text)) + tokenIds;
  }
  if (base.output === null && !embeddings && observation) base.output = await observation.estimateOutputTokens();
  base.total = base.input + (base.output ?? 0);
  base.source = 'estimated';
  return base;
}
