// Sample usage records for the usage unit tests: varied models, days, outcomes and costs, deterministic.
import type { UsageRecord } from '../../src/usage/record.ts';

const MODELS = [
  { model: 'gpt-4o', provider: 'openai', upstream: 'openai', upstreamUrl: 'https://api.openai.com', price: [2.5, 10] },
  { model: 'claude-sonnet-4-5', provider: 'anthropic', upstream: 'anthropic', upstreamUrl: 'https://api.anthropic.com', price: [3, 15] },
  { model: 'llama3:latest', provider: 'ollama', upstream: 'ollama', upstreamUrl: 'http://127.0.0.1:11434', price: null },
] as const;

export function sampleRecord(i: number): UsageRecord {
  const m = MODELS[i % MODELS.length]!;
  const input = 100 + ((i * 37) % 900);
  const output = 10 + ((i * 13) % 300);
  const error = i % 17 === 0;
  return {
    id: `rec-${i}`,
    time: new Date(Date.UTC(2025, 0, 1 + Math.floor(i / 120), 8, 0, 0, (i * 977) % 3_600_000)).toISOString(),
    method: 'POST',
    path: m.provider === 'anthropic' ? '/v1/messages' : m.provider === 'ollama' ? '/api/chat' : '/v1/chat/completions',
    upstream: m.upstream,
    upstreamUrl: m.upstreamUrl,
    provider: m.provider,
    model: m.model,
    responseModel: m.model,
    operation: 'chat',
    stream: i % 2 === 0,
    status: error ? 500 : 200,
    outcome: error ? 'upstream_aborted' : 'ok',
    errorType: error ? 'LLMTAP_UPSTREAM_ABORTED' : null,
    ttfb: 50 + (i % 40),
    ttft: i % 2 === 0 ? 80 + ((i * 7) % 400) : null,
    duration: 300 + ((i * 31) % 5000),
    inputTokens: input,
    outputTokens: output,
    totalTokens: input + output,
    cachedTokens: i % 5 === 0 ? 50 : 0,
    reasoningTokens: null,
    tokensSource: i % 11 === 0 ? 'estimated' : 'reported',
    requestBytes: 400 + i,
    responseBytes: 2000 + i * 3,
    cost: m.price ? Math.round((input * m.price[0] + output * m.price[1]) * 1000) / 1e9 : null,
    traceId: null,
    failoverFrom: null,
    queuedMs: null,
  };
}
