// Rebuilds what an exchange carried from its chunks: the response body, its stream events with their times, the generated text.
import zlib from 'node:zlib';
import { createLineSplitter } from '../dialects/lines.ts';
import { createSseParser } from '../dialects/sse.ts';
import type { CapturedExchange } from './exchanges.ts';
import type { Headers } from './format.ts';

const MAX_EVENT_CHARS = 64 * 1024 * 1024;

function header(h: Headers | undefined, name: string): string {
  const v = h?.[name];
  return Array.isArray(v) ? v.join(', ') : (v ?? '');
}

/** The response body exactly as the client received it (still content-encoded), or null when bodies were not captured. */
export function responseBytes(ex: CapturedExchange): Buffer | null {
  const parts = ex.chunks.filter((c) => c.dir === 'response');
  if (parts.some((c) => c.data === null) || (parts.length === 0 && ex.bodiesOff)) return null;
  return Buffer.concat(parts.map((c) => c.data!));
}

/** The body with any content-encoding undone (what a client library reads). */
export function decodedBody(bytes: Buffer, headers: Headers | undefined): Buffer {
  const enc = header(headers, 'content-encoding').trim().toLowerCase();
  try {
    if (enc === 'gzip' || enc === 'x-gzip') return zlib.gunzipSync(bytes, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    if (enc === 'deflate') return zlib.inflateSync(bytes, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    if (enc === 'br') return zlib.brotliDecompressSync(bytes);
  } catch {
    /* a cut compressed stream: show the bytes as they are */
  }
  return bytes;
}

export interface StreamEvent {
  /** ms since the exchange started, of the chunk that completed this event */
  at: number;
  /** SSE event name; '' for NDJSON lines */
  event: string;
  data: string;
}

export type BodyKind = 'sse' | 'ndjson' | 'json' | 'other';

export function bodyKind(ex: CapturedExchange): BodyKind {
  const ct = header(ex.response?.headers, 'content-type').toLowerCase();
  if (ct.includes('text/event-stream')) return 'sse';
  if (ct.includes('ndjson') || ct.includes('jsonl')) return 'ndjson';
  if (ct.includes('json')) return 'json';
  return 'other';
}

/** The events of a streamed response (SSE events or NDJSON lines), each with the time its last byte arrived. */
export function streamEvents(ex: CapturedExchange): StreamEvent[] {
  const kind = bodyKind(ex);
  if (kind !== 'sse' && kind !== 'ndjson') return [];
  const encoded = header(ex.response?.headers, 'content-encoding').trim().toLowerCase();
  const out: StreamEvent[] = [];
  let at = 0;
  const parser =
    kind === 'sse'
      ? createSseParser((ev) => out.push({ at, event: ev.event, data: ev.data }), () => {}, MAX_EVENT_CHARS)
      : createLineSplitter((line) => void (line.trim() && out.push({ at, event: '', data: line })), () => {}, MAX_EVENT_CHARS);
  if (encoded && encoded !== 'identity') {
    // Compressed streams: the events come from the decoded whole, timed at the last chunk.
    const bytes = responseBytes(ex);
    if (!bytes) return [];
    at = ex.lastChunkAt ?? 0;
    parser.push(decodedBody(bytes, ex.response?.headers));
  } else {
    for (const c of ex.chunks) {
      if (c.dir !== 'response' || !c.data) continue;
      at = c.at;
      parser.push(c.data);
    }
  }
  parser.end();
  return out;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | null => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : null);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** Adds the generated text one stream event or one whole body carries to `into` (keyed by choice index). */
function collectText(dialect: string, value: unknown, event: string, into: Map<number, string>): void {
  const o = obj(value);
  if (!o) return;
  const add = (i: number, s: string): void => {
    if (s) into.set(i, (into.get(i) ?? '') + s);
  };
  if (dialect === 'openai') {
    for (const c of arr(o.choices)) {
      const ch = obj(c);
      if (!ch) continue;
      const i = typeof ch.index === 'number' ? ch.index : 0;
      add(i, str(obj(ch.delta)?.content) || str(obj(ch.message)?.content) || str(ch.text));
    }
    // The Responses API: streamed deltas, or the whole output.
    if (o.type === 'response.output_text.delta') add(0, str(o.delta));
    if (o.object === 'response') {
      for (const item of arr(o.output)) for (const part of arr(obj(item)?.content)) if (obj(part)?.type === 'output_text') add(0, str(obj(part)?.text));
    }
  } else if (dialect === 'anthropic') {
    if (o.type === 'content_block_delta' || event === 'content_block_delta') {
      const d = obj(o.delta);
      if (d?.type === 'text_delta') add(0, str(d.text));
    } else if (o.type === 'message') {
      for (const block of arr(o.content)) if (obj(block)?.type === 'text') add(0, str(obj(block)?.text));
    }
  } else if (dialect === 'ollama') {
    add(0, str(obj(o.message)?.content) || str(o.response));
  }
}

/**
 * The text the model generated, as the client would put it together; null when there is none to show
 * (no body captured, an error, embeddings). Several choices are joined with a marker line.
 */
export function generatedText(ex: CapturedExchange): string | null {
  const dialect = ex.end?.dialect ?? ex.request?.dialect ?? '';
  const parts = new Map<number, string>();
  const kind = bodyKind(ex);
  if (kind === 'sse' || kind === 'ndjson') {
    for (const ev of streamEvents(ex)) {
      if (ev.data === '[DONE]') continue;
      collectText(dialect, parse(ev.data), ev.event, parts);
    }
  } else {
    const bytes = responseBytes(ex);
    if (!bytes) return null;
    collectText(dialect, parse(decodedBody(bytes, ex.response?.headers).toString('utf8')), '', parts);
  }
  if (parts.size === 0) return null;
  if (parts.size === 1) return [...parts.values()][0]!;
  return [...parts.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([i, t]) => `--- choice ${i} ---\n${t}`)
    .join('\n');
}

/** The request body as text: pretty JSON when it parses, else the bytes as UTF-8; null when not captured. */
export function requestText(ex: CapturedExchange): string | null {
  const body = ex.request?.body;
  if (!body) return null;
  const text = Buffer.from(body).toString('utf8');
  const json = parse(text);
  return json === undefined ? text : JSON.stringify(json, null, 2);
}
