// A programmable mock LLM server speaking the OpenAI, Anthropic and Ollama wire formats and recording what it received.
import http from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AddressInfo, Socket } from 'node:net';

// ---------------------------------------------------------------------------------------------
// Scripts: what a test asks the mock to do with a request.

export interface MockUsage {
  input: number;
  output: number;
  /** OpenAI prompt_tokens_details.cached_tokens / Anthropic cache_read_input_tokens */
  cached?: number;
  /** OpenAI completion_tokens_details.reasoning_tokens */
  reasoning?: number;
}

/** Delays, all in ms. Content frames are the ones carrying generated text; preamble frames (OpenAI role chunk,
 * Anthropic message_start/content_block_start/ping) go out with the head, so ttft can be told apart from ttfb. */
export interface Timing {
  /** after the request body arrived, before the response head is sent */
  headDelayMs?: number;
  /** after the head, before the first content frame */
  firstChunkDelayMs?: number;
  /** between consecutive content frames */
  gapMs?: number;
}

/** A failure after `afterFrames` frames (all kinds counted, preamble included) have been written. */
export type Fault =
  /** stop writing and keep the socket open, as a stuck upstream does */
  | { kind: 'stall'; afterFrames: number }
  /** destroy the socket, as a crashing upstream or a cut network does */
  | { kind: 'destroy'; afterFrames: number };

type HeaderMap = Record<string, string | string[]>;

/** A generation in the dialect the request path implies (/v1/chat/completions, /v1/completions, /v1/messages,
 * /api/chat, /api/generate); streamed when the request asked for it (Ollama: unless it said stream:false). */
export interface ChatScript extends Timing {
  kind: 'chat';
  pieces?: string[];
  /** response model; defaults to the requested model */
  model?: string;
  id?: string;
  created?: number;
  finishReason?: string;
  usage?: MockUsage;
  /** overrides what the request asked for */
  stream?: boolean;
  /** OpenAI's per-chunk `obfuscation` padding field (on by default, as the API sends it today) */
  obfuscation?: boolean;
  fault?: Fault;
  headers?: HeaderMap;
}

/** OpenAI /v1/embeddings (floats or base64, as the request's encoding_format asks) or Ollama /api/embed. */
export interface EmbeddingsScript extends Timing {
  kind: 'embeddings';
  /** one vector per input; defaults to DEFAULT_VECTOR for each */
  vectors?: number[][];
  model?: string;
  inputTokens?: number;
  headers?: HeaderMap;
}

/** A file of /work/shared/fixtures replayed verbatim: SSE split at blank lines, NDJSON at newlines. */
export interface FixtureScript extends Timing {
  kind: 'fixture';
  /** path relative to the fixtures directory, e.g. 'openai/error_429_rate_limit_exceeded.json' */
  file: string;
  status?: number;
  headers?: HeaderMap;
  fault?: Fault;
}

/** Exactly these bytes; several parts are written as separate frames (chunked), one part with content-length. */
export interface RawScript extends Timing {
  kind: 'raw';
  status: number;
  headers?: HeaderMap;
  body: string | Uint8Array | (string | Uint8Array)[];
  fault?: Fault;
}

/** An OpenAI chat stream of at least `totalBytes`, generated frame by frame with backpressure, never held whole. */
export interface HugeScript extends Timing {
  kind: 'huge';
  totalBytes: number;
  /** characters of content per frame (default 4096) */
  pieceChars?: number;
  usage?: MockUsage;
  model?: string;
}

/** Reads the request and never answers. */
export interface HangScript {
  kind: 'hang';
}

/** Reads the request and closes the connection without a response head (after afterMs). */
export interface DropScript {
  kind: 'drop';
  afterMs?: number;
}

export type Script = ChatScript | EmbeddingsScript | FixtureScript | RawScript | HugeScript | HangScript | DropScript;
export type Handler = (req: ReceivedRequest) => Script;

// ---------------------------------------------------------------------------------------------
// What the mock saw.

export interface ReceivedRequest {
  /** 1-based order of arrival at this mock */
  seq: number;
  method: string;
  /** path and query exactly as received */
  url: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** header names and values as sent, in order (names in their original case) */
  rawHeaders: string[];
  /** the body bytes; complete once bodyComplete is true */
  body: Buffer;
  bodyComplete: boolean;
  /** the parsed body, undefined when it is empty or not JSON */
  json: unknown;
  /** performance.now() when the head arrived / when the body was complete */
  headAt: number;
  receivedAt: number | null;
  /** performance.now() just before each frame was written */
  sentAt: number[];
  /** the same, for content frames only (the n-th generated piece went out at contentSentAt[n]) */
  contentSentAt: number[];
  bytesSent: number;
  /** all frames written and the response ended */
  responseEnded: boolean;
  /** performance.now() when the connection carrying this request closed, null while open */
  socketClosedAt: number | null;
  /** resolves with socketClosedAt */
  socketClosed: Promise<number>;
}

export interface MockUpstream {
  /** http://127.0.0.1:port */
  url: string;
  port: number;
  name: string;
  requests: ReceivedRequest[];
  /** the script for every following request (a function may choose per request) */
  handle(h: Handler | Script): void;
  /** a script for the next request only; queued scripts are used first, in order */
  once(s: Script): void;
  /** forgets recorded requests and scripts */
  reset(): void;
  /** the first recorded request matching pred, waiting up to timeoutMs for it */
  waitForRequest(pred?: (r: ReceivedRequest) => boolean, timeoutMs?: number): Promise<ReceivedRequest>;
  /** the number of connections open right now */
  openConnections(): number;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Fixtures

const HERE = dirname(fileURLToPath(import.meta.url));

/** test/fixtures when the repository carries a copy, else the shared originals. */
export const FIXTURES_DIR: string = (() => {
  const local = join(HERE, '..', 'fixtures');
  if (existsSync(join(local, 'openai', 'chat_stream_no_usage.sse'))) return local;
  return '/work/shared/fixtures';
})();

export function fixtureBytes(file: string): Buffer {
  return readFileSync(join(FIXTURES_DIR, file));
}

/** A fixture cut into the units a real server writes: SSE events (through their blank line), NDJSON lines. */
export function fixtureFrames(file: string): Buffer[] {
  const bytes = fixtureBytes(file);
  const ext = extname(file);
  const sep = ext === '.sse' ? Buffer.from('\n\n') : ext === '.ndjson' ? Buffer.from('\n') : null;
  if (!sep) return [bytes];
  const frames: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < 100_000; i++) {
    const at = bytes.indexOf(sep, start);
    if (at === -1) break;
    frames.push(bytes.subarray(start, at + sep.length));
    start = at + sep.length;
  }
  if (start < bytes.length) frames.push(bytes.subarray(start));
  return frames;
}

function contentTypeOf(file: string): string {
  switch (extname(file)) {
    case '.sse':
      return 'text/event-stream; charset=utf-8';
    case '.ndjson':
      return 'application/x-ndjson';
    default:
      return 'application/json';
  }
}

// ---------------------------------------------------------------------------------------------
// Wire builders: pure functions from a resolved spec to the bytes each dialect's server writes.

export interface Frame {
  bytes: Buffer;
  /** carries generated content (delays firstChunkDelayMs / gapMs apply before it) */
  content: boolean;
}

export interface ChatSpec {
  pieces: string[];
  model: string;
  id: string;
  created: number;
  finishReason: string;
  usage: MockUsage;
  obfuscation: boolean;
}

export const DEFAULT_PIECES = ['Hello', ' from', ' the', ' mock', ' upstream', '.'];
export const DEFAULT_USAGE: MockUsage = { input: 12, output: 6 };
export const DEFAULT_VECTOR = [0.5, -0.25, 0.125, 1, -1, 0.0625];
const DEFAULT_CREATED = 1_700_000_000;

const sse = (payload: unknown): Buffer => Buffer.from(`data: ${JSON.stringify(payload)}\n\n`);
const sseEvent = (event: string, data: string): Buffer => Buffer.from(`event: ${event}\ndata: ${data}\n\n`);
const line = (payload: unknown): Buffer => Buffer.from(`${JSON.stringify(payload)}\n`);

/** OpenAI pads chunks with a random-length `obfuscation` string; ours is deterministic so outputs can be compared. */
function obfuscationFor(i: number): string {
  const alphabet = 'AbCdEfGhIjKlMnOpQrStUvWxYz0123456789';
  return alphabet.slice(i % 7, (i % 7) + 2 + ((i * 5) % 13));
}

function openaiUsage(u: MockUsage): Record<string, unknown> {
  return {
    prompt_tokens: u.input,
    completion_tokens: u.output,
    total_tokens: u.input + u.output,
    prompt_tokens_details: { cached_tokens: u.cached ?? 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: u.reasoning ?? 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

/** A chat.completion.chunk in OpenAI's key order: usage (when asked for) comes before the trailing obfuscation. */
function openaiChunk(s: ChatSpec, i: number, choices: unknown[], includeUsage: boolean, usage: unknown = null): Record<string, unknown> {
  const chunk: Record<string, unknown> = {
    id: s.id,
    object: 'chat.completion.chunk',
    created: s.created,
    model: s.model,
    service_tier: 'default',
    system_fingerprint: null,
    choices,
  };
  if (includeUsage) chunk.usage = usage;
  if (s.obfuscation) chunk.obfuscation = obfuscationFor(i);
  return chunk;
}

export function openaiChatStreamFrames(s: ChatSpec, includeUsage: boolean): Frame[] {
  const frames: Frame[] = [];
  let i = 0;
  frames.push({ bytes: sse(openaiChunk(s, i++, [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, finish_reason: null }], includeUsage)), content: false });
  for (const piece of s.pieces) {
    frames.push({ bytes: sse(openaiChunk(s, i++, [{ index: 0, delta: { content: piece }, finish_reason: null }], includeUsage)), content: true });
  }
  frames.push({ bytes: sse(openaiChunk(s, i++, [{ index: 0, delta: {}, finish_reason: s.finishReason }], includeUsage)), content: false });
  // Only a client that asked gets the usage chunk: `choices: []` and the full usage object.
  if (includeUsage) frames.push({ bytes: sse(openaiChunk(s, i++, [], true, openaiUsage(s.usage))), content: false });
  frames.push({ bytes: Buffer.from('data: [DONE]\n\n'), content: false });
  return frames;
}

export function openaiChatBody(s: ChatSpec): Buffer {
  return Buffer.from(
    JSON.stringify({
      id: s.id,
      object: 'chat.completion',
      created: s.created,
      model: s.model,
      choices: [{ index: 0, message: { role: 'assistant', content: s.pieces.join(''), refusal: null, annotations: [] }, logprobs: null, finish_reason: s.finishReason }],
      usage: openaiUsage(s.usage),
      service_tier: 'default',
      system_fingerprint: null,
    }),
  );
}

/** Legacy /v1/completions: text_completion chunks; the usage chunk carries `choices: []` after usage. */
export function openaiCompletionStreamFrames(s: ChatSpec, includeUsage: boolean): Frame[] {
  const chunk = (text: string, finish: string | null): Record<string, unknown> => {
    const c: Record<string, unknown> = { id: s.id, object: 'text_completion', created: s.created, choices: [{ text, index: 0, logprobs: null, finish_reason: finish }], model: s.model };
    if (includeUsage) c.usage = null;
    return c;
  };
  const frames: Frame[] = s.pieces.map((p, i) => ({ bytes: sse(chunk(p, i === s.pieces.length - 1 ? s.finishReason : null)), content: true }));
  if (includeUsage) {
    const u = { prompt_tokens: s.usage.input, completion_tokens: s.usage.output, total_tokens: s.usage.input + s.usage.output };
    frames.push({ bytes: sse({ id: s.id, object: 'text_completion', created: s.created, model: s.model, usage: u, choices: [] }), content: false });
  }
  frames.push({ bytes: Buffer.from('data: [DONE]\n\n'), content: false });
  return frames;
}

export function openaiCompletionBody(s: ChatSpec): Buffer {
  return Buffer.from(
    JSON.stringify({
      id: s.id,
      object: 'text_completion',
      created: s.created,
      model: s.model,
      choices: [{ text: s.pieces.join(''), index: 0, logprobs: null, finish_reason: s.finishReason }],
      usage: { prompt_tokens: s.usage.input, completion_tokens: s.usage.output, total_tokens: s.usage.input + s.usage.output },
    }),
  );
}

function anthropicUsage(u: MockUsage, output: number): Record<string, unknown> {
  return { input_tokens: u.input, cache_creation_input_tokens: 0, cache_read_input_tokens: u.cached ?? 0, output_tokens: output };
}

export function anthropicStreamFrames(s: ChatSpec): Frame[] {
  const frames: Frame[] = [];
  const message = { id: s.id, type: 'message', role: 'assistant', model: s.model, content: [], stop_reason: null, stop_sequence: null, usage: anthropicUsage(s.usage, 1) };
  frames.push({ bytes: sseEvent('message_start', JSON.stringify({ type: 'message_start', message })), content: false });
  frames.push({ bytes: sseEvent('content_block_start', JSON.stringify({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } })), content: false });
  // The API writes its ping payload with a space after the colon (see the fixtures); kept as it goes on the wire.
  frames.push({ bytes: sseEvent('ping', '{"type": "ping"}'), content: false });
  for (const piece of s.pieces) {
    frames.push({ bytes: sseEvent('content_block_delta', JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: piece } })), content: true });
  }
  frames.push({ bytes: sseEvent('content_block_stop', JSON.stringify({ type: 'content_block_stop', index: 0 })), content: false });
  frames.push({ bytes: sseEvent('message_delta', JSON.stringify({ type: 'message_delta', delta: { stop_reason: s.finishReason, stop_sequence: null }, usage: { output_tokens: s.usage.output } })), content: false });
  frames.push({ bytes: sseEvent('message_stop', JSON.stringify({ type: 'message_stop' })), content: false });
  return frames;
}

export function anthropicBody(s: ChatSpec): Buffer {
  return Buffer.from(
    JSON.stringify({
      id: s.id,
      type: 'message',
      role: 'assistant',
      model: s.model,
      content: [{ type: 'text', text: s.pieces.join('') }],
      stop_reason: s.finishReason,
      stop_sequence: null,
      usage: anthropicUsage(s.usage, s.usage.output),
    }),
  );
}

function ollamaCreatedAt(s: ChatSpec, i: number): string {
  return new Date(s.created * 1000 + i * 37).toISOString().replace('Z', '123456Z');
}

function ollamaStats(s: ChatSpec): Record<string, number> {
  return { total_duration: 1_234_567_890, load_duration: 12_345_678, prompt_eval_count: s.usage.input, prompt_eval_duration: 123_456_789, eval_count: s.usage.output, eval_duration: 987_654_321 };
}

export function ollamaChatStreamFrames(s: ChatSpec): Frame[] {
  const frames: Frame[] = s.pieces.map((p, i) => ({ bytes: line({ model: s.model, created_at: ollamaCreatedAt(s, i), message: { role: 'assistant', content: p }, done: false }), content: true }));
  frames.push({ bytes: line({ model: s.model, created_at: ollamaCreatedAt(s, s.pieces.length), message: { role: 'assistant', content: '' }, done_reason: s.finishReason, done: true, ...ollamaStats(s) }), content: false });
  return frames;
}

export function ollamaChatBody(s: ChatSpec): Buffer {
  return Buffer.from(JSON.stringify({ model: s.model, created_at: ollamaCreatedAt(s, 0), message: { role: 'assistant', content: s.pieces.join('') }, done_reason: s.finishReason, done: true, ...ollamaStats(s) }));
}

export function ollamaGenerateStreamFrames(s: ChatSpec): Frame[] {
  const frames: Frame[] = s.pieces.map((p, i) => ({ bytes: line({ model: s.model, created_at: ollamaCreatedAt(s, i), response: p, done: false }), content: true }));
  frames.push({ bytes: line({ model: s.model, created_at: ollamaCreatedAt(s, s.pieces.length), response: '', done: true, done_reason: s.finishReason, context: [1, 2, 3], ...ollamaStats(s) }), content: false });
  return frames;
}

export function ollamaGenerateBody(s: ChatSpec): Buffer {
  return Buffer.from(JSON.stringify({ model: s.model, created_at: ollamaCreatedAt(s, 0), response: s.pieces.join(''), done: true, done_reason: s.finishReason, context: [1, 2, 3], ...ollamaStats(s) }));
}

/** OpenAI's base64 embedding: little-endian float32. */
export function float32Base64(v: number[]): string {
  return Buffer.from(new Float32Array(v).buffer).toString('base64');
}

export interface HugeSpec {
  totalBytes: number;
  pieceChars: number;
  model: string;
  usage: MockUsage;
}

const LOREM = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore. ';

/** Frames of an OpenAI chat stream, generated lazily: as many content frames as take the stream as OpenAI sends it
 * without usage to at least totalBytes (the same count with usage, so both forms carry the same content). */
export function* hugeOpenaiFrames(h: HugeSpec, includeUsage: boolean): Generator<Frame> {
  const s: ChatSpec = { pieces: [], model: h.model, id: 'chatcmpl-huge', created: DEFAULT_CREATED, finishReason: 'length', usage: h.usage, obfuscation: false };
  const piece = LOREM.repeat(Math.ceil(h.pieceChars / LOREM.length)).slice(0, h.pieceChars);
  const roleChoices = [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, finish_reason: null }];
  const contentChoices = [{ index: 0, delta: { content: piece }, finish_reason: null }];
  // Without obfuscation every content frame has the same size, so the count is known up front.
  const plainFirst = sse(openaiChunk(s, 0, roleChoices, false)).length;
  const plainContent = sse(openaiChunk(s, 1, contentChoices, false)).length;
  const contentFrames = Math.max(1, Math.ceil((h.totalBytes - plainFirst) / plainContent));
  let i = 0;
  yield { bytes: sse(openaiChunk(s, i++, roleChoices, includeUsage)), content: false };
  const content = sse(openaiChunk(s, i++, contentChoices, includeUsage));
  for (let n = 0; n < contentFrames; n++) yield { bytes: content, content: true };
  yield { bytes: sse(openaiChunk(s, i++, [{ index: 0, delta: {}, finish_reason: s.finishReason }], includeUsage)), content: false };
  if (includeUsage) yield { bytes: sse(openaiChunk(s, i++, [], true, openaiUsage(s.usage))), content: false };
  yield { bytes: Buffer.from('data: [DONE]\n\n'), content: false };
}

/** The byte count a client receives for a huge stream (computed by generating it once, without keeping it). */
export function hugeOpenaiLength(h: HugeSpec, includeUsage: boolean): number {
  let n = 0;
  for (const f of hugeOpenaiFrames(h, includeUsage)) n += f.bytes.length;
  return n;
}

export function hugeSpec(script: HugeScript): HugeSpec {
  return { totalBytes: script.totalBytes, pieceChars: script.pieceChars ?? 4096, model: script.model ?? 'gpt-4o-mini-2024-07-18', usage: script.usage ?? { input: 20, output: 12_800 } };
}

// ---------------------------------------------------------------------------------------------
// Rendering a script for one request.

type Route = 'openai-chat' | 'openai-completion' | 'openai-embeddings' | 'anthropic' | 'ollama-chat' | 'ollama-generate' | 'ollama-embed' | 'other';

function routeOf(path: string): Route {
  if (path === '/v1/chat/completions') return 'openai-chat';
  if (path === '/v1/completions') return 'openai-completion';
  if (path === '/v1/embeddings') return 'openai-embeddings';
  if (path === '/v1/messages') return 'anthropic';
  if (path === '/api/chat') return 'ollama-chat';
  if (path === '/api/generate') return 'ollama-generate';
  if (path === '/api/embed') return 'ollama-embed';
  return 'other';
}

function asObject(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** Whether the request asked OpenAI for stream usage (stream_options.include_usage: true). */
export function asksForUsage(json: unknown): boolean {
  return asObject(asObject(json).stream_options).include_usage === true;
}

interface Rendered {
  status: number;
  headers: HeaderMap;
  frames: Iterable<Frame>;
  /** set content-length (a plain, non-streamed body) */
  length: number | null;
}

function chatSpec(script: ChatScript, req: ReceivedRequest, route: Route): ChatSpec {
  const body = asObject(req.json);
  const requested = typeof body.model === 'string' ? body.model : 'mock-model';
  const defaultFinish = route === 'anthropic' ? 'end_turn' : 'stop';
  const defaultId = route === 'anthropic' ? 'msg_mock0001' : route === 'openai-completion' ? 'cmpl-mock0001' : 'chatcmpl-mock0001';
  return {
    pieces: script.pieces ?? DEFAULT_PIECES,
    model: script.model ?? requested,
    id: script.id ?? defaultId,
    created: script.created ?? DEFAULT_CREATED,
    finishReason: script.finishReason ?? defaultFinish,
    usage: script.usage ?? DEFAULT_USAGE,
    obfuscation: script.obfuscation ?? true,
  };
}

function plain(status: number, contentType: string, body: Buffer, extra: HeaderMap = {}): Rendered {
  return { status, headers: { 'content-type': contentType, ...extra }, frames: [{ bytes: body, content: true }], length: body.length };
}

function streamed(contentType: string, frames: Iterable<Frame>, extra: HeaderMap = {}): Rendered {
  return { status: 200, headers: { 'content-type': contentType, 'cache-control': 'no-cache', ...extra }, frames, length: null };
}

function render(script: Exclude<Script, HangScript | DropScript>, req: ReceivedRequest): Rendered {
  const route = routeOf(req.path);
  const body = asObject(req.json);
  switch (script.kind) {
    case 'raw': {
      const parts = (Array.isArray(script.body) ? script.body : [script.body]).map((p) => Buffer.from(p));
      const headers = { ...(script.headers ?? {}) };
      const single = parts.length === 1 && !Object.keys(headers).some((h) => h.toLowerCase() === 'transfer-encoding');
      return { status: script.status, headers, frames: parts.map((bytes) => ({ bytes, content: true })), length: single ? parts[0]!.length : null };
    }
    case 'fixture': {
      const frames = fixtureFrames(script.file).map((bytes) => ({ bytes, content: true }));
      const headers: HeaderMap = { 'content-type': contentTypeOf(script.file), ...(script.headers ?? {}) };
      const streamedFile = frames.length > 1;
      return { status: script.status ?? 200, headers, frames, length: streamedFile ? null : frames[0]!.bytes.length };
    }
    case 'huge': {
      const frames = hugeOpenaiFrames(hugeSpec(script), asksForUsage(req.json));
      return streamed('text/event-stream; charset=utf-8', frames);
    }
    case 'embeddings': {
      const input = body.input;
      const count = Array.isArray(input) ? input.length : 1;
      const vectors = script.vectors ?? Array.from({ length: count }, () => DEFAULT_VECTOR);
      const model = script.model ?? (typeof body.model === 'string' ? body.model : 'mock-embedder');
      const tokens = script.inputTokens ?? 8;
      if (route === 'ollama-embed') {
        const b = Buffer.from(JSON.stringify({ model, embeddings: vectors, total_duration: 14_143_917, load_duration: 1_019_500, prompt_eval_count: tokens }));
        return plain(200, 'application/json; charset=utf-8', b, script.headers);
      }
      const base64 = body.encoding_format === 'base64';
      const data = vectors.map((v, index) => ({ object: 'embedding', index, embedding: base64 ? float32Base64(v) : v }));
      const b = Buffer.from(JSON.stringify({ object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } }));
      return plain(200, 'application/json', b, { 'x-request-id': `req_mock_${req.seq}`, ...(script.headers ?? {}) });
    }
    case 'chat': {
      const s = chatSpec(script, req, route);
      const extra = script.headers ?? {};
      switch (route) {
        case 'openai-chat':
        case 'openai-completion': {
          const stream = script.stream ?? body.stream === true;
          const headers = { 'x-request-id': `req_mock_${req.seq}`, 'openai-processing-ms': '42', ...extra };
          const chat = route === 'openai-chat';
          if (!stream) return plain(200, 'application/json', chat ? openaiChatBody(s) : openaiCompletionBody(s), headers);
          const includeUsage = asksForUsage(req.json);
          return streamed('text/event-stream; charset=utf-8', chat ? openaiChatStreamFrames(s, includeUsage) : openaiCompletionStreamFrames(s, includeUsage), headers);
        }
        case 'anthropic': {
          const stream = script.stream ?? body.stream === true;
          const headers = { 'request-id': `req_mock_${req.seq}`, 'anthropic-organization-id': 'org-mock', ...extra };
          if (!stream) return plain(200, 'application/json', anthropicBody(s), headers);
          return streamed('text/event-stream; charset=utf-8', anthropicStreamFrames(s), headers);
        }
        case 'ollama-chat':
        case 'ollama-generate': {
          // Ollama streams unless told stream:false.
          const stream = script.stream ?? body.stream !== false;
          const chat = route === 'ollama-chat';
          if (!stream) return plain(200, 'application/json; charset=utf-8', chat ? ollamaChatBody(s) : ollamaGenerateBody(s), extra);
          return streamed('application/x-ndjson', chat ? ollamaChatStreamFrames(s) : ollamaGenerateStreamFrames(s), extra);
        }
        default:
          return plain(404, 'application/json', Buffer.from(JSON.stringify({ error: `mock: no chat dialect at ${req.path}` })));
      }
    }
  }
}

/** What the mock does when the test scripted nothing: a sensible answer per path. */
export function defaultScript(req: ReceivedRequest): Script {
  const route = routeOf(req.path);
  if (route === 'openai-embeddings' || route === 'ollama-embed') return { kind: 'embeddings' };
  if (route !== 'other') return { kind: 'chat' };
  if (req.path === '/api/tags') return { kind: 'fixture', file: 'ollama/tags.json' };
  if (req.path === '/v1/models') {
    const data = ['gpt-4o-mini', 'text-embedding-3-small'].map((id) => ({ id, object: 'model', created: DEFAULT_CREATED, owned_by: 'system' }));
    return { kind: 'raw', status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ object: 'list', data }) };
  }
  if (req.path === '/v1/messages/count_tokens') return { kind: 'raw', status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input_tokens: 14 }) };
  if (req.path === '/api/version') return { kind: 'raw', status: 200, headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify({ version: '0.6.4' }) };
  return { kind: 'raw', status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mock: true, method: req.method, url: req.url }) };
}

// ---------------------------------------------------------------------------------------------
// The server

/** Starts a mock on 127.0.0.1; `port` to take a given port (e.g. to bring a vanished upstream back), else a free one. */
export async function startMockUpstream(options: { name?: string; port?: number } = {}): Promise<MockUpstream> {
  const name = options.name ?? 'mock';
  const requests: ReceivedRequest[] = [];
  const queue: Script[] = [];
  let handler: Handler = defaultScript;
  let seq = 0;
  let closing = false;
  const sockets = new Set<Socket>();
  // Requests per connection, so one 'close' listener per socket can stamp every request it carried.
  const bySocket = new WeakMap<Socket, Array<{ rec: ReceivedRequest; resolve: (t: number) => void }>>();
  const closeAll = new AbortController();

  const server = http.createServer();
  server.keepAliveTimeout = 30_000;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    bySocket.set(socket, []);
    socket.once('close', () => {
      sockets.delete(socket);
      const at = performance.now();
      for (const { rec, resolve } of bySocket.get(socket) ?? []) {
        if (rec.socketClosedAt === null) rec.socketClosedAt = at;
        resolve(rec.socketClosedAt);
      }
    });
  });

  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = req.url ?? '/';
    let resolveClosed!: (t: number) => void;
    const rec: ReceivedRequest = {
      seq: ++seq,
      method: req.method ?? 'GET',
      url,
      path: url.split('?')[0] ?? url,
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      body: Buffer.alloc(0),
      bodyComplete: false,
      json: undefined,
      headAt: performance.now(),
      receivedAt: null,
      sentAt: [],
      contentSentAt: [],
      bytesSent: 0,
      responseEnded: false,
      socketClosedAt: null,
      socketClosed: new Promise<number>((r) => (resolveClosed = r)),
    };
    requests.push(rec);
    bySocket.get(req.socket)?.push({ rec, resolve: resolveClosed });
    // A write may fail once the peer is gone; the socket's close is what the tests look at.
    res.on('error', () => {});
    req.on('error', () => {});

    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      rec.body = Buffer.concat(parts);
      rec.bodyComplete = true;
      rec.receivedAt = performance.now();
      try {
        rec.json = rec.body.length > 0 ? JSON.parse(rec.body.toString('utf8')) : undefined;
      } catch {
        rec.json = undefined;
      }
      const script = queue.shift() ?? handler(rec);
      play(script, rec, res).catch(() => {
        // aborted by the peer or by close(): nothing left to answer
      });
    });
  });

  // Cancels this response's waits when its connection goes away or the mock closes.
  function signalFor(res: http.ServerResponse): AbortSignal {
    const ac = new AbortController();
    res.once('close', () => ac.abort());
    return AbortSignal.any([ac.signal, closeAll.signal]);
  }

  async function play(script: Script, rec: ReceivedRequest, res: http.ServerResponse): Promise<void> {
    if (script.kind === 'hang') return; // the socket stays open until the peer or close() ends it
    const signal = signalFor(res);
    if (script.kind === 'drop') {
      if (script.afterMs) await sleep(script.afterMs, undefined, { signal });
      res.socket?.destroy();
      return;
    }
    const r = render(script, rec);
    const timing: Timing = script;
    const fault = 'fault' in script ? script.fault : undefined;
    if (timing.headDelayMs) await sleep(timing.headDelayMs, undefined, { signal });
    const headers: HeaderMap = { ...r.headers };
    if (r.length !== null && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length')) headers['content-length'] = String(r.length);
    res.writeHead(r.status, headers);
    // Sends the head now, so a delayed first frame shows as time to first token, not time to first byte.
    res.flushHeaders();
    let written = 0;
    let contentSeen = false;
    let flushed: Promise<void> = Promise.resolve();
    for (const frame of r.frames) {
      if (fault && written === fault.afterFrames) return applyFault(fault, res, flushed);
      if (frame.content && !contentSeen) {
        contentSeen = true;
        if (timing.firstChunkDelayMs) await sleep(timing.firstChunkDelayMs, undefined, { signal });
      } else if (frame.content && timing.gapMs) {
        await sleep(timing.gapMs, undefined, { signal });
      }
      if (signal.aborted || res.destroyed) return;
      const now = performance.now();
      rec.sentAt.push(now);
      if (frame.content) rec.contentSentAt.push(now);
      rec.bytesSent += frame.bytes.length;
      written++;
      flushed = new Promise<void>((resolve) => res.write(frame.bytes, () => resolve()));
      // Backpressure: a huge body is produced only as fast as the peer reads it.
      if (res.writableNeedDrain) await once(res, 'drain', { signal });
    }
    if (fault && written <= fault.afterFrames) return applyFault(fault, res, flushed);
    res.end();
    rec.responseEnded = true;
  }

  async function applyFault(fault: Fault, res: http.ServerResponse, flushed: Promise<void>): Promise<void> {
    // stall: write nothing more and keep the connection open
    if (fault.kind !== 'destroy') return;
    // Node corks response writes until the next tick: let the frames already written reach the wire first, so the
    // peer sees them and then the cut, as with an upstream that dies mid-stream.
    await Promise.race([flushed, sleep(1000)]);
    await sleep(30);
    res.socket?.destroy();
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    name,
    requests,
    handle(h) {
      handler = typeof h === 'function' ? h : () => h;
    },
    once(s) {
      queue.push(s);
    },
    reset() {
      requests.length = 0;
      queue.length = 0;
      handler = defaultScript;
    },
    async waitForRequest(pred = () => true, timeoutMs = 3000) {
      const deadline = performance.now() + timeoutMs;
      for (let i = 0; i < 10_000; i++) {
        const found = requests.find(pred);
        if (found) return found;
        if (performance.now() > deadline) break;
        await sleep(10);
      }
      throw new Error(`${name}: no matching request within ${timeoutMs} ms (saw ${requests.map((r) => `${r.method} ${r.url}`).join(', ') || 'none'})`);
    },
    openConnections() {
      return sockets.size;
    },
    async close() {
      if (closing) return;
      closing = true;
      closeAll.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
