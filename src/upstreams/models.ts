// Which models an upstream serves: the names in a model list answer, and whether a requested model matches them.
import type { DialectName } from '../exchange/record.ts';

/** Where each dialect lists its models; also what the health probe asks for. */
export const MODELS_PATH: Readonly<Record<DialectName, string>> = {
  openai: '/v1/models',
  anthropic: '/v1/models',
  ollama: '/api/tags',
};

/** Model names from a /v1/models (OpenAI, Anthropic: data[].id) or /api/tags (Ollama: models[].name) answer; null if it has none. */
export function modelNamesIn(dialect: DialectName, body: unknown): string[] | null {
  if (typeof body !== 'object' || body === null) return null;
  const b = body as Record<string, unknown>;
  const list = dialect === 'ollama' ? b.models : b.data;
  if (!Array.isArray(list)) return null;
  const names: string[] = [];
  for (const item of list) {
    if (typeof item !== 'object' || item === null) continue;
    const it = item as Record<string, unknown>;
    const name = dialect === 'ollama' ? (it.name ?? it.model) : it.id;
    if (typeof name === 'string' && name !== '') names.push(name);
  }
  return names;
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

/** A compiled list of model names and globs ("gpt-4o*"); Ollama's implicit ":latest" tag matches both ways. */
export interface ModelMatcher {
  names: readonly string[];
  matches(model: string): boolean;
}

export function modelMatcher(names: readonly string[], dialect: DialectName): ModelMatcher {
  const exact = new Set<string>();
  const globs: RegExp[] = [];
  for (const n of names) {
    if (n.includes('*')) globs.push(globToRegExp(n));
    else {
      exact.add(n);
      // Ollama serves "llama3" as "llama3:latest" and lists it that way.
      if (dialect === 'ollama') exact.add(n.endsWith(':latest') ? n.slice(0, -':latest'.length) : `${n}:latest`);
    }
  }
  return {
    names,
    matches: (model) => exact.has(model) || globs.some((g) => g.test(model)),
  };
}
