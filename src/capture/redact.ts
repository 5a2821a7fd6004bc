// Writes header maps with credential values replaced by a marker as they are encoded, so secrets never reach the disk.
import { head, text, type Out } from './cbor-write.ts';
import { REDACTED } from './format.ts';

/** CONTRACT §4: never written, whatever the settings say. */
export const CREDENTIAL_HEADERS: readonly string[] = ['authorization', 'x-api-key', 'api-key', 'cookie', 'set-cookie', 'proxy-authorization'];

/** Header names as they reach the taps, values as Node and undici give them. */
export type RawHeaders = Readonly<Record<string, string | string[] | number | undefined>>;

/** Lower-case header names whose values are written as REDACTED. */
export type RedactSet = ReadonlySet<string>;

/** The names replaced: the built-in list plus `extra` (e.g. from LLMTAP_CAPTURE_REDACT), lower-case, for the file header. */
export function redactedNames(extra: readonly string[] = []): string[] {
  return [...new Set([...CREDENTIAL_HEADERS, ...extra.map((n) => n.toLowerCase())])];
}

/**
 * The headers as one CBOR map: lower-case names, and REDACTED for the value of every name in `redacted`.
 * Redacting while writing makes no copy of the headers, and the secret is never in what is encoded.
 */
export function writeHeaders(o: Out, h: RawHeaders, redacted: RedactSet): void {
  let count = 0;
  for (const name in h) {
    if (h[name] === undefined) continue;
    // Names that are not lower-case could collide once lowered (Foo and foo): merged first, as one map must be.
    if (name.toLowerCase() !== name) return writeHeaders(o, lowered(h), redacted);
    count++;
  }
  head(o, 5, count);
  for (const name in h) {
    const v = h[name];
    if (v === undefined) continue;
    text(o, name);
    if (redacted.has(name)) text(o, REDACTED);
    else if (typeof v === 'string') text(o, v);
    else if (Array.isArray(v)) {
      head(o, 4, v.length);
      for (const item of v) text(o, String(item));
    } else text(o, String(v));
  }
}

function lowered(h: RawHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in h) {
    const v = h[name];
    if (v !== undefined) out[name.toLowerCase()] = Array.isArray(v) ? v.map(String) : String(v);
  }
  return out;
}
