// What every simulated endpoint shares: the per-request context, errors, and writes that stop when the client leaves.
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { pause, type PacingOptions, type Plan } from './pacing.ts';

export type ErrorKind = 'invalid_request' | 'not_found' | 'too_large' | 'server_error';

/** An error a handler throws to answer with `status` in its dialect's error shape. */
export interface SimError extends Error {
  status: number;
  kind: ErrorKind;
  /** the request field at fault, when there is one (OpenAI's `param`) */
  param: string | null;
}

export function simError(status: number, kind: ErrorKind, message: string, param: string | null = null): SimError {
  return Object.assign(new Error(message), { status, kind, param });
}

export function isSimError(err: unknown): err is SimError {
  return err instanceof Error && typeof (err as Partial<SimError>).status === 'number' && typeof (err as Partial<SimError>).kind === 'string';
}

export type Json = Record<string, unknown>;

export interface SimExchange {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** the parsed JSON body; {} for requests without one */
  body: Json;
  res: ServerResponse;
  /** aborts when the client goes away or the simulator closes */
  signal: AbortSignal;
  pacing: PacingOptions;
  /** process.hrtime.bigint() when the request arrived */
  receivedAt: bigint;
}

export type Handler = (x: SimExchange) => Promise<void>;

export interface Dialect {
  name: 'openai' | 'anthropic' | 'ollama';
  /** the handler for a method and path, or null (answered with a 404 in this dialect's shape) */
  route(method: string, path: string): Handler | null;
  /** the error body this dialect's real server sends */
  errorBody(err: SimError): { contentType: string; body: string };
  /** the messages this dialect's real server gives for an unknown path and for a body that is not JSON */
  notFoundMessage(method: string, path: string): string;
  badJsonMessage(detail: string): string;
}

export function randomId(prefix: string, length: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(length);
  let out = prefix;
  for (let i = 0; i < length; i++) out += alphabet[bytes[i]! % alphabet.length];
  return out;
}

export const unixSeconds = (): number => Math.floor(Date.now() / 1000);

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}, contentType = 'application/json'): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Sends the head of a streamed answer at once, as real servers do before the first token. */
export function openStream(res: ServerResponse, contentType: string, headers: Record<string, string> = {}): void {
  res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-cache', ...headers });
  res.flushHeaders();
}

/** Writes a frame; false when the client is gone. Waits for 'drain' so a slow reader bounds our memory. */
export async function write(x: SimExchange, text: string): Promise<boolean> {
  const { res, signal } = x;
  if (signal.aborted || res.destroyed || res.writableEnded) return false;
  if (res.write(text)) return true;
  return new Promise<boolean>((resolve) => {
    const done = (ok: boolean) => (): void => {
      res.off('drain', onDrain);
      signal.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onDrain = done(true);
    const onAbort = done(false);
    res.once('drain', onDrain);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Streams the pieces on the plan's rhythm (the first one at once); false if the client left midway. */
export async function streamPieces(x: SimExchange, pieces: readonly string[], plan: Plan, frame: (piece: string, index: number) => string): Promise<boolean> {
  for (let i = 0; i < pieces.length; i++) {
    if (!(await pause(plan.gaps[i] ?? 0, x.signal))) return false;
    if (!(await write(x, frame(pieces[i]!, i)))) return false;
  }
  return true;
}

export const sseData = (payload: unknown): string => `data: ${JSON.stringify(payload)}\n\n`;
export const sseEvent = (event: string, payload: unknown): string => `event: ${event}\ndata: ${JSON.stringify(payload)}\n\n`;

// Small readers for untrusted JSON: each returns undefined unless the value has the expected type.
export const asRecord = (v: unknown): Json | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined);
export const asString = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
export const asNumber = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
export const asArray = (v: unknown): unknown[] | undefined => (Array.isArray(v) ? v : undefined);

/** The model a request names; a missing one is a 400 like the real APIs give. */
export function requireModel(body: Json): string {
  const model = asString(body.model);
  if (!model) throw simError(400, 'invalid_request', 'you must provide a model parameter', 'model');
  return model;
}

/** A positive token limit from the first field present, or null; a bad value is a 400 naming the field. */
export function tokenLimit(body: Json, fields: readonly string[]): number | null {
  for (const f of fields) {
    const v = body[f];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw simError(400, 'invalid_request', `${f}: expected an integer of at least 1, got ${JSON.stringify(v)}`, f);
    return v;
  }
  return null;
}

/**
 * The text of a message `content` in any of the dialects' forms: a string, or an array of parts whose
 * text sits in `text` (OpenAI, Anthropic, Responses). Other parts (images, tool calls) add nothing.
 */
export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  const parts = asArray(content);
  if (!parts) return '';
  const texts: string[] = [];
  for (const p of parts) {
    const text = asString(asRecord(p)?.text);
    if (text !== undefined) texts.push(text);
  }
  return texts.join('\n');
}

/** The texts of a chat's messages (for counting) and the last user message (which picks the answer). */
export function readMessages(messages: readonly unknown[]): { texts: string[]; lastUser: string } {
  const texts: string[] = [];
  let lastUser = '';
  for (const m of messages) {
    const msg = asRecord(m);
    const text = contentText(msg?.content);
    texts.push(text);
    if (msg?.role === 'user') lastUser = text;
  }
  return { texts, lastUser: lastUser || (texts[texts.length - 1] ?? '') };
}
