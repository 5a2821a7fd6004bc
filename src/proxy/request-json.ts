// Reads the JSON of a request body for its model, stream flag and parameters, without stalling on huge bodies.
import { valueAfterKey } from '../dialects/json-body.ts';

/** Bodies up to this size are parsed whole; larger ones (base64 images, long documents) are scanned for top-level keys. */
const PARSE_WHOLE = 4 * 1024 * 1024;
const EDGE = 256 * 1024;
const SCANNED_KEYS = ['model', 'stream', 'stream_options', 'max_tokens', 'max_completion_tokens', 'max_output_tokens', 'temperature', 'top_p', 'top_k', 'n', 'seed', 'stop', 'stop_sequences', 'frequency_penalty', 'presence_penalty', 'options'];

export interface RequestJson {
  /** the parsed body (or, for a large one, an object of the top-level keys found); undefined if it is not JSON */
  value: unknown;
  /** true when value holds only scanned keys, so the prompt must be parsed from raw for an estimate */
  partial: boolean;
}

function startsLikeJson(raw: Buffer): boolean {
  for (let i = 0; i < raw.length && i < 64; i++) {
    const c = raw[i]!;
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0xef || c === 0xbb || c === 0xbf) continue;
    return c === 0x7b /* { */ || c === 0x5b /* [ */;
  }
  return false;
}

export function readRequestJson(raw: Buffer | null, contentType: string | undefined): RequestJson {
  if (!raw || raw.length === 0) return { value: undefined, partial: false };
  // Clients like curl label JSON as form data, and Ollama accepts that: trust the first byte, not the label.
  if (/multipart\//i.test(contentType ?? '') || !startsLikeJson(raw)) return { value: undefined, partial: false };
  if (raw.length <= PARSE_WHOLE) {
    try {
      return { value: JSON.parse(raw.toString('utf8')), partial: false };
    } catch {
      return { value: undefined, partial: false };
    }
  }
  const head = raw.subarray(0, EDGE).toString('utf8');
  const tail = raw.subarray(raw.length - EDGE).toString('utf8');
  if (!head.trimStart().startsWith('{')) return { value: undefined, partial: false };
  const found: Record<string, unknown> = {};
  for (const key of SCANNED_KEYS) {
    const v = valueAfterKey(head, key, 'first') ?? valueAfterKey(tail, key, 'last');
    if (v !== undefined) found[key] = v;
  }
  return { value: found, partial: true };
}
