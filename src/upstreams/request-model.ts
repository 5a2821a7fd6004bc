// The model a request names, and whether its path needs one to be routed (several upstreams route by model).
import type { DialectName } from '../exchange/record.ts';

/** POST paths whose body must name a model: llmtap cannot pick an upstream for them otherwise. */
const MODEL_PATHS: Readonly<Record<DialectName, ReadonlySet<string>>> = {
  openai: new Set(['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses']),
  anthropic: new Set(['/v1/messages', '/v1/messages/count_tokens']),
  ollama: new Set(['/api/chat', '/api/generate', '/api/embed', '/api/embeddings', '/api/show']),
};

export function needsModel(dialect: DialectName, method: string, path: string): boolean {
  return method === 'POST' && MODEL_PATHS[dialect].has(path);
}

/** body.model (Ollama's older /api/show takes name); null when there is none. */
export function modelOf(dialect: DialectName, body: unknown): string | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return null;
  const b = body as Record<string, unknown>;
  const m = b.model ?? (dialect === 'ollama' ? b.name : undefined);
  return typeof m === 'string' && m !== '' ? m : null;
}

/** Why a body gave no model, for the 400: JSON.parse's own words when it does not parse. */
export function jsonError(raw: Buffer | null): string {
  if (!raw || raw.length === 0) return 'the request has no body';
  try {
    JSON.parse(raw.toString('utf8'));
    return 'the body is JSON but not an object';
  } catch (err) {
    return (err as Error).message;
  }
}
