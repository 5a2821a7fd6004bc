// Reads a client's request body once, up to the configured limit (413 past it).
import type { IncomingMessage } from 'node:http';
import { LlmtapError } from '../errors.ts';

export function readRequestBody(req: IncomingMessage, limitBytes: number, limitMb: number): Promise<Buffer> {
  const tooLarge = () =>
    new LlmtapError('LLMTAP_BODY_TOO_LARGE', `request body is larger than ${limitMb} MB (LLMTAP_MAX_BODY_MB); llmtap did not forward it`);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) return Promise.reject(tooLarge());
  // Plain events rather than for-await: the async iterator costs several microseconds per request.
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limitBytes) {
        cleanup();
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onAbort = (err?: Error): void => {
      cleanup();
      reject(err ?? new Error('the client closed the connection mid-body'));
    };
    const onClose = (): void => {
      if (!req.complete) onAbort();
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onAbort);
      req.off('close', onClose);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onAbort);
    req.on('close', onClose);
  });
}
