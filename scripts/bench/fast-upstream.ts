// A deliberately fast mock OpenAI upstream for the benchmark: canned answers, no delays, so the proxy is what gets measured.
import { createServer, type Server, type ServerResponse } from 'node:http';
import { isMain, serveAsChild } from './serve.ts';

export const CHAT_PATH = '/v1/chat/completions';
export const STREAM_CHUNKS = 20;

const ID = 'chatcmpl-bench';
const CREATED = 1_700_000_000;
const MODEL = 'bench-model';
const USAGE = { prompt_tokens: 12, completion_tokens: STREAM_CHUNKS - 2, total_tokens: 12 + STREAM_CHUNKS - 2 };
const MAX_REQUEST_BYTES = 1024 * 1024;

// Answers are serialised once: the upstream must cost as little CPU as possible, since it shares a core with the proxy.
const COMPLETION = Buffer.from(
  JSON.stringify({
    id: ID,
    object: 'chat.completion',
    created: CREATED,
    model: MODEL,
    choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from the bench upstream.' }, finish_reason: 'stop' }],
    usage: USAGE,
  }),
);

function sse(data: unknown): Buffer {
  return Buffer.from(`data: ${JSON.stringify(data)}\n\n`);
}

function chunkEvent(i: number): Buffer {
  // OpenAI's shape: a role-only first chunk, content chunks, then an empty delta carrying the finish reason.
  const delta = i === 0 ? { role: 'assistant', content: '' } : i === STREAM_CHUNKS - 1 ? {} : { content: `tok${i} ` };
  const finish = i === STREAM_CHUNKS - 1 ? 'stop' : null;
  return sse({ id: ID, object: 'chat.completion.chunk', created: CREATED, model: MODEL, choices: [{ index: 0, delta, finish_reason: finish }] });
}

const CHUNKS: readonly Buffer[] = Array.from({ length: STREAM_CHUNKS }, (_, i) => chunkEvent(i));
const USAGE_CHUNK = sse({ id: ID, object: 'chat.completion.chunk', created: CREATED, model: MODEL, choices: [], usage: USAGE });
const DONE = Buffer.from('data: [DONE]\n\n');

/** The exact bytes a streamed answer carries, for checking that a proxy relays them unchanged. */
export function expectedStreamBody(includeUsage: boolean): Buffer {
  return Buffer.concat([...CHUNKS, ...(includeUsage ? [USAGE_CHUNK] : []), DONE]);
}

/** The exact bytes of the non-streamed answer. */
export function expectedCompletionBody(): Buffer {
  return COMPLETION;
}

function sendError(res: ServerResponse, status: number, message: string): void {
  const body = JSON.stringify({ error: { message, type: 'invalid_request_error', code: null } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function answer(res: ServerResponse, raw: Buffer): void {
  let body: { stream?: unknown; stream_options?: { include_usage?: unknown } };
  try {
    body = JSON.parse(raw.toString('utf8')) as typeof body;
  } catch {
    sendError(res, 400, 'body is not JSON');
    return;
  }
  if (body.stream !== true) {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': COMPLETION.length });
    res.end(COMPLETION);
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  // One write per event, back to back, so a proxy sees as many chunks as the network delivers.
  for (const chunk of CHUNKS) res.write(chunk);
  if (body.stream_options?.include_usage === true) res.write(USAGE_CHUNK);
  res.end(DONE);
}

export function createFastUpstream(): Server {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
      return;
    }
    if (req.method !== 'POST' || req.url !== CHAT_PATH) {
      req.resume();
      sendError(res, 404, `the bench upstream answers POST ${CHAT_PATH} only`);
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_REQUEST_BYTES) parts.push(chunk);
    });
    req.on('end', () => {
      if (size > MAX_REQUEST_BYTES) sendError(res, 413, 'request body too large');
      else answer(res, parts.length === 1 ? parts[0]! : Buffer.concat(parts));
    });
  });
  // Long keep-alive so pooled proxy connections are never closed under them mid-run.
  server.keepAliveTimeout = 60_000;
  return server;
}

if (isMain(import.meta.url)) {
  serveAsChild(createFastUpstream(), 'bench upstream').catch((err: unknown) => {
    process.stderr.write(`bench upstream: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
