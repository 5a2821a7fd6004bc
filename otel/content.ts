// Message content for gen_ai.input.messages / gen_ai.output.messages: only when asked for, and bounded.
import type { ContentCapture } from './settings.ts';
import type { TelemetryStart } from './exchange.ts';
import type { CapturedContent } from './spans.ts';

export const CONTENT_LIMITS = {
  /** characters kept of one text part */
  partChars: 4096,
  /** messages kept (the last ones: the newest turn matters most) */
  messages: 32,
  /** response bytes collected for output messages; past this, output is left out */
  responseBytes: 256 * 1024,
  /** exchanges held between start and end (a leak guard: every exchange ends) */
  pending: 1024,
} as const;

interface Part {
  type: string;
  content?: string;
}
interface Message {
  role: string;
  parts: Part[];
  finish_reason?: string;
}

function cut(s: string): string {
  return s.length > CONTENT_LIMITS.partChars ? `${s.slice(0, CONTENT_LIMITS.partChars)}…` : s;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A message's content as semconv parts: strings and text blocks kept, other blocks named by type only. */
function partsOf(content: unknown): Part[] {
  if (typeof content === 'string') return [{ type: 'text', content: cut(content) }];
  if (!Array.isArray(content)) return [];
  const parts: Part[] = [];
  for (const block of content) {
    if (typeof block === 'string') parts.push({ type: 'text', content: cut(block) });
    else if (isRecord(block) && typeof block.text === 'string') parts.push({ type: 'text', content: cut(block.text) });
    else if (isRecord(block) && typeof block.type === 'string') parts.push({ type: block.type });
  }
  return parts;
}

function encode(messages: Message[]): string | null {
  if (messages.length === 0) return null;
  return JSON.stringify(messages.slice(-CONTENT_LIMITS.messages));
}

function parse(bytes: Uint8Array | null): unknown {
  if (!bytes || bytes.length === 0) return undefined;
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    return undefined;
  }
}

/** gen_ai.input.messages from a request body: chat `messages` (and a top-level `system`), or a completion `prompt`. */
export function inputMessages(body: Uint8Array | null): string | null {
  const json = parse(body);
  if (!isRecord(json)) return null;
  const out: Message[] = [];
  if (json.system !== undefined) {
    const parts = partsOf(json.system);
    if (parts.length) out.push({ role: 'system', parts });
  }
  if (Array.isArray(json.messages)) {
    for (const m of json.messages) if (isRecord(m)) out.push({ role: typeof m.role === 'string' ? m.role : 'user', parts: partsOf(m.content) });
  } else if (json.prompt !== undefined) {
    out.push({ role: 'user', parts: partsOf(Array.isArray(json.prompt) ? json.prompt : String(json.prompt)) });
  } else if (json.input !== undefined) {
    out.push({ role: 'user', parts: partsOf(Array.isArray(json.input) ? json.input : String(json.input)) });
  }
  return encode(out);
}

/** gen_ai.output.messages from a whole (non-streamed) JSON response body; null for anything else. */
export function outputMessages(body: Uint8Array | null): string | null {
  const json = parse(body);
  if (!isRecord(json)) return null;
  const out: Message[] = [];
  if (Array.isArray(json.choices)) {
    for (const c of json.choices) {
      if (!isRecord(c)) continue;
      const finish = typeof c.finish_reason === 'string' ? c.finish_reason : undefined;
      if (isRecord(c.message)) out.push({ role: String(c.message.role ?? 'assistant'), parts: partsOf(c.message.content), ...(finish ? { finish_reason: finish } : {}) });
      else if (typeof c.text === 'string') out.push({ role: 'assistant', parts: partsOf(c.text), ...(finish ? { finish_reason: finish } : {}) });
    }
  } else if (Array.isArray(json.content) && typeof json.role === 'string') {
    out.push({ role: json.role, parts: partsOf(json.content), ...(typeof json.stop_reason === 'string' ? { finish_reason: json.stop_reason } : {}) });
  } else if (isRecord(json.message)) {
    out.push({ role: String(json.message.role ?? 'assistant'), parts: partsOf(json.message.content), ...(typeof json.done_reason === 'string' ? { finish_reason: json.done_reason } : {}) });
  } else if (typeof json.response === 'string') {
    out.push({ role: 'assistant', parts: partsOf(json.response), ...(typeof json.done_reason === 'string' ? { finish_reason: json.done_reason } : {}) });
  }
  return encode(out);
}

export interface ContentCollector {
  onStart(start: TelemetryStart): void;
  onChunk(id: string, direction: 'request' | 'response', chunk: Uint8Array): void;
  /** the content of an exchange, once; forgets it */
  take(id: string, stream: boolean): CapturedContent | null;
}

/** Holds each exchange's request body (and a bounded copy of its response) from start to end; null when capture is off. */
export function createContentCollector(mode: ContentCapture): ContentCollector | null {
  if (mode === 'NO_CONTENT') return null;
  const pending = new Map<string, { body: Uint8Array | null; out: Uint8Array[]; outBytes: number }>();
  return {
    onStart(start) {
      if (pending.size >= CONTENT_LIMITS.pending) {
        const oldest = pending.keys().next().value;
        if (oldest !== undefined) pending.delete(oldest);
      }
      pending.set(start.id, { body: start.requestBody, out: [], outBytes: 0 });
    },
    onChunk(id, direction, chunk) {
      if (direction !== 'response') return;
      const p = pending.get(id);
      if (!p || p.outBytes > CONTENT_LIMITS.responseBytes) return;
      p.outBytes += chunk.length;
      if (p.outBytes <= CONTENT_LIMITS.responseBytes) p.out.push(chunk);
      else p.out = [];
    },
    take(id, stream) {
      const p = pending.get(id);
      if (!p) return null;
      pending.delete(id);
      const output = !stream && p.out.length > 0 && p.outBytes <= CONTENT_LIMITS.responseBytes ? outputMessages(Buffer.concat(p.out)) : null;
      return { input: inputMessages(p.body), output };
    },
  };
}
