// Answers the client with llmtap's own error, in the shape the client's SDK already knows how to read.
import type { ServerResponse } from 'node:http';
import type { Dialect } from '../dialects/index.ts';
import type { LlmtapError } from '../errors.ts';
import { TRACE_HEADER } from '../exchange/tracing.ts';

export function sendError(res: ServerResponse, dialect: Dialect, err: LlmtapError, opts: { closeConnection?: boolean; traceId?: string | null } = {}): void {
  const message = err.expose ? err.message : 'llmtap failed to handle this request; see its log';
  const body = JSON.stringify(dialect.errorBody({ status: err.status, code: err.code, message }));
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-llmtap-error': err.code,
  };
  if (err.retryAfterS !== null) headers['retry-after'] = String(err.retryAfterS);
  if (opts.traceId) headers[TRACE_HEADER] = opts.traceId;
  // An unread request body would otherwise be parsed as the next request on this connection.
  if (opts.closeConnection) headers.connection = 'close';
  res.writeHead(err.status, headers);
  res.end(body);
}
