// What the simulated model says and how it counts: canned answers, token pieces, prompt counts, embeddings.
import { countTokens, decode, encode } from 'gpt-tokenizer';

/** An answer ready to stream: the pieces joined give `text`; one piece is one output token. */
export interface Answer {
  text: string;
  pieces: readonly string[];
  /** true when max tokens cut the answer short */
  truncated: boolean;
}

const GREETING =
  "Hello! I'm the simulated model behind llmtap's demo. Every word you see was streamed through the proxy, which timed it and counted the tokens.";

// Kept short (under ~50 tokens) so a full answer streams in a couple of seconds, and ASCII-only so every
// token decodes to whole characters on its own.
const ANSWERS: readonly string[] = [
  'Happy to help! This answer comes from llmtap\'s built-in simulator, so no model or API key was needed. The proxy in front of me recorded when the first token arrived and how many followed.',
  'Here is a thought: observability for LLM calls starts with the wire. llmtap sits between your client and the model, relays every byte unchanged, and notes the timing and token usage of each exchange.',
  'Good question. In this demo I answer with canned text, paced like a real model: a short pause before the first token, then a steady trickle. Look at the ttft and duration columns that llmtap printed.',
  'Sure thing. Point any OpenAI, Anthropic or Ollama client at llmtap instead of the real server and change nothing else; it forwards the request, streams the answer back, and records the exchange.',
  'Thanks for asking! I am a simulated LLM, deterministic and offline. The same prompt always gets the same reply, which makes llmtap\'s demo and tests repeatable.',
];

/** FNV-1a over UTF-16 code units: cheap, stable across runs and platforms. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const piecesCache = new Map<string, readonly string[]>();

function piecesOf(text: string): readonly string[] {
  let pieces = piecesCache.get(text);
  if (!pieces) {
    pieces = encode(text).map((token) => decode([token]));
    piecesCache.set(text, pieces);
  }
  return pieces;
}

/**
 * The reply to a prompt, chosen from the canned set by a hash of the prompt so the same question always
 * gets the same answer. `maxTokens` (when set) cuts it short, as a real model stops at its limit.
 */
export function answerFor(prompt: string, maxTokens?: number | null): Answer {
  const trimmed = prompt.trim();
  const text = /^(hi|hello|hey|hallo|yo)\b[\s!.?]*$/i.test(trimmed) || trimmed === '' ? GREETING : ANSWERS[hash32(trimmed) % ANSWERS.length]!;
  const all = piecesOf(text);
  if (maxTokens != null && maxTokens < all.length) {
    const pieces = all.slice(0, Math.max(0, maxTokens));
    return { text: pieces.join(''), pieces, truncated: true };
  }
  return { text, pieces: all, truncated: false };
}

// Exact counting of a huge prompt would cost seconds of CPU per request; past this many characters the
// rest is extrapolated from the counted part, which stays deterministic.
const EXACT_COUNT_CHARS = 200_000;

/** Tokens in a piece of text (o200k_base, as recent OpenAI models use). */
export function tokenCount(text: string): number {
  if (text.length <= EXACT_COUNT_CHARS) return countTokens(text);
  const head = countTokens(text.slice(0, EXACT_COUNT_CHARS));
  return Math.ceil((head * text.length) / EXACT_COUNT_CHARS);
}

/**
 * Prompt tokens of a chat: each message's text plus the few tokens a chat template spends on roles and
 * separators (3 per message and 3 to prime the reply, as OpenAI documents for its chat models).
 */
export function chatPromptTokens(messages: readonly string[]): number {
  let total = 3;
  for (const m of messages) total += 3 + tokenCount(m);
  return total;
}

/** Token ids of a text, bounded, for Ollama's `context` field. */
export function contextTokens(text: string, limit = 2048): number[] {
  const ids = encode(text.length > EXACT_COUNT_CHARS ? text.slice(-EXACT_COUNT_CHARS) : text);
  return ids.length > limit ? ids.slice(-limit) : ids;
}

export const DEFAULT_EMBEDDING_DIMENSIONS = 64;
export const MAX_EMBEDDING_DIMENSIONS = 3072;
/** Inputs × dimensions per request: keeps one response to a few tens of MB of JSON at worst. */
export const MAX_EMBEDDING_VALUES = 2_000_000;

/** A deterministic unit vector for a text: same text, same vector; different texts, unrelated vectors. */
export function embeddingFor(text: string, dimensions = DEFAULT_EMBEDDING_DIMENSIONS): number[] {
  // mulberry32 seeded by the text's hash: a tiny PRNG with good enough spread for fake vectors.
  let state = hash32(text) || 1;
  const next = (): number => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const v = new Array<number>(dimensions);
  let norm = 0;
  for (let i = 0; i < dimensions; i++) {
    const x = next() * 2 - 1;
    v[i] = x;
    norm += x * x;
  }
  norm = Math.sqrt(norm) || 1;
  // Rounded to float32-ish precision so the JSON looks like a real embedding response.
  return v.map((x) => Math.round((x / norm) * 1e8) / 1e8);
}

/** The vector as OpenAI's `encoding_format: "base64"` sends it: little-endian float32 bytes. */
export function embeddingBase64(vector: readonly number[]): string {
  const f32 = Float32Array.from(vector);
  return Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength).toString('base64');
}
