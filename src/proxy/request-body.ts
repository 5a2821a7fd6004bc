// Reads a client's request body once, up to the configured limit (413 past it).
import type { IncomingMessage } from 'node:http';
import { LlmtapError } from '../errors.ts';

export async function readRequestBody(req: IncomingMessage, limitBytes: number, limitMb: number): Promise<Buffer> {
  const tooLarge = () =>
    new LlmtapError('LLMTAP_BODY_TOO_LARGE', `request body is larger than ${limitMb} MB (LLMTAP_MAX_BODY_MB); llmtap did not forward it`);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) throw tooLarge();
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}
