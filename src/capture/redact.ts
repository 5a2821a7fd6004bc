// Replaces credential header values with a marker before anything is encoded, so secrets never reach the disk.
import { REDACTED, type Headers } from './format.ts';

/** CONTRACT §4: never written, whatever the settings say. */
export const CREDENTIAL_HEADERS: readonly string[] = ['authorization', 'x-api-key', 'api-key', 'cookie', 'set-cookie', 'proxy-authorization'];

export type Redactor = (headers: Readonly<Record<string, string | string[] | number | undefined>>) => Headers;

/** A redactor for the built-in list plus `extra` (lower-case names, e.g. from LLMTAP_CAPTURE_REDACT). */
export function createRedactor(extra: readonly string[] = []): Redactor {
  const names = new Set([...CREDENTIAL_HEADERS, ...extra.map((n) => n.toLowerCase())]);
  return (headers) => {
    const out: Headers = {};
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined) continue;
      const lower = name.toLowerCase();
      out[lower] = names.has(lower) ? REDACTED : Array.isArray(value) ? value.map(String) : String(value);
    }
    return out;
  };
}

/** The names a redactor replaces, for the file header. */
export function redactedNames(extra: readonly string[] = []): string[] {
  return [...new Set([...CREDENTIAL_HEADERS, ...extra.map((n) => n.toLowerCase())])];
}
