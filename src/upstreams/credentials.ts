// The key an upstream entry carries (api_key_env), added to requests whose client sent none, in the dialect's header.
import type { DialectName } from '../exchange/record.ts';

const CLIENT_KEY_HEADERS = new Set(['authorization', 'x-api-key', 'api-key']);

/** The header pairs that carry a key to this dialect's servers. */
export function keyHeaders(dialect: DialectName, key: string): Array<[string, string]> {
  if (dialect === 'anthropic') return [['x-api-key', key], ['anthropic-version', '2023-06-01']];
  return [['authorization', `Bearer ${key}`]];
}

/** Adds the upstream's key to flat [name, value, ...] header pairs unless the client sent a key of its own. */
export function addUpstreamKey(pairs: string[], dialect: DialectName, key: string | null): void {
  if (!key) return;
  const present = new Set<string>();
  for (let i = 0; i < pairs.length; i += 2) present.add(pairs[i]!.toLowerCase());
  for (const name of present) if (CLIENT_KEY_HEADERS.has(name)) return;
  for (const [name, value] of keyHeaders(dialect, key)) if (!present.has(name)) pairs.push(name, value);
}
