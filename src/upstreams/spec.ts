// The `upstreams:` list of a config file: each entry validated, with errors naming the entry and the field.
import { z } from 'zod';
import type { DialectName } from '../exchange/record.ts';

export interface UpstreamSpec {
  /** unique; what records, spans, metrics and /health call it */
  name: string;
  dialect: DialectName;
  /** http(s) URL without a trailing slash */
  url: string;
  /** models it serves as configured (exact names or globs with *); null: discovered from the upstream */
  models: readonly string[] | null;
  /** the environment variable the key came from, for messages */
  apiKeyEnv: string | null;
  /** added to requests whose client sent no key of its own */
  apiKey: string | null;
  /** most requests in flight at once; null: no limit */
  maxConcurrent: number | null;
  /** most requests waiting for a slot; null: LLMTAP_QUEUE_MAX */
  maxQueue: number | null;
  /** share of traffic under the weighted strategy */
  weight: number;
}

const DIALECTS = ['openai', 'anthropic', 'ollama'] as const;

/** An http(s) URL, without a trailing slash: the LLMTAP_*_URL settings and the entries' url. */
export const httpUrl = z.string().transform((u, ctx) => {
  let parsed: URL;
  try {
    parsed = new URL(u);
  } catch {
    ctx.addIssue({ code: 'custom', message: `"${u}" is not a URL` });
    return z.NEVER;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    ctx.addIssue({ code: 'custom', message: `"${u}" is not http or https` });
    return z.NEVER;
  }
  return u.replace(/\/+$/, '');
});

const entrySchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'letters, digits, _ . : - (1 to 64 characters)'),
    dialect: z.enum(DIALECTS),
    url: httpUrl,
    models: z.array(z.string().min(1)).min(1).optional(),
    api_key_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name').optional(),
    max_concurrent: z.number().int().min(1).max(100_000).optional(),
    max_queue: z.number().int().min(0).max(100_000).optional(),
    weight: z.number().positive().max(1_000_000).optional(),
  })
  .strict();

/** A problem in the list: the config reader turns it into its one-line ConfigError. */
export class UpstreamSpecError extends Error {}

function where(list: readonly unknown[], i: number): string {
  const name = (list[i] as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? `upstreams[${i}] ("${name}")` : `upstreams[${i}]`;
}

/** Validates the `upstreams:` value of a config file; env supplies the api_key_env values. */
export function parseUpstreamSpecs(value: unknown, env: Readonly<Record<string, string | undefined>>): UpstreamSpec[] {
  if (!Array.isArray(value) || value.length === 0) throw new UpstreamSpecError('upstreams must be a non-empty list of entries (name, dialect, url, ...)');
  const seen = new Set<string>();
  return value.map((entry, i) => {
    const parsed = entrySchema.safeParse(entry);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const field = issue.path.length > 0 ? issue.path.join('.') : null;
      const message = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')} (allowed: ${Object.keys(entrySchema.shape).join(', ')})` : issue.message;
      throw new UpstreamSpecError(`${where(value, i)}${field ? `.${field}` : ''}: ${message}`);
    }
    const e = parsed.data;
    if (seen.has(e.name)) throw new UpstreamSpecError(`${where(value, i)}.name: "${e.name}" is used by an earlier entry; names must be unique`);
    seen.add(e.name);
    let apiKey: string | null = null;
    if (e.api_key_env !== undefined) {
      apiKey = env[e.api_key_env] ?? null;
      if (!apiKey) throw new UpstreamSpecError(`${where(value, i)}.api_key_env: the environment variable ${e.api_key_env} is not set`);
    }
    return {
      name: e.name,
      dialect: e.dialect,
      url: e.url,
      models: e.models ?? null,
      apiKeyEnv: e.api_key_env ?? null,
      apiKey,
      maxConcurrent: e.max_concurrent ?? null,
      maxQueue: e.max_queue ?? null,
      weight: e.weight ?? 1,
    };
  });
}
