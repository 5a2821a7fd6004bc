// The simulated Anthropic Messages API: messages (streamed as event/data SSE, or whole) and count_tokens.
import { pause, planPacing } from './pacing.ts';
import { answerFor, chatPromptTokens } from './text.ts';
import {
  asArray,
  contentText,
  openStream,
  randomId,
  readMessages,
  requireModel,
  sendJson,
  simError,
  sseEvent,
  streamPieces,
  tokenLimit,
  write,
  type Dialect,
  type Handler,
  type Json,
  type SimError,
} from './wire.ts';

const requestHeaders = (): Record<string, string> => ({ 'request-id': randomId('req_01', 22) });

/** The prompt of a Messages request: system (a string or text blocks) and the messages. */
function readPrompt(body: Json): { inputTokens: number; lastUser: string } {
  const messages = asArray(body.messages);
  if (!messages || messages.length === 0) throw simError(400, 'invalid_request', 'messages: at least one message is required', 'messages');
  const { texts, lastUser } = readMessages(messages);
  const system = contentText(body.system);
  return { inputTokens: chatPromptTokens(system ? [system, ...texts] : texts), lastUser };
}

const messagesHandler: Handler = async (x) => {
  const model = requireModel(x.body);
  const maxTokens = tokenLimit(x.body, ['max_tokens']);
  if (maxTokens === null) throw simError(400, 'invalid_request', 'max_tokens: Field required', 'max_tokens');
  const { inputTokens, lastUser } = readPrompt(x.body);
  const answer = answerFor(lastUser, maxTokens);
  const outputTokens = answer.pieces.length;
  const stopReason = answer.truncated ? 'max_tokens' : 'end_turn';
  const plan = planPacing(outputTokens, x.pacing);
  const id = randomId('msg_01', 22);
  const usage = { input_tokens: inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };

  if (x.body.stream !== true) {
    if (!(await pause(plan.total, x.signal))) return;
    sendJson(x.res, 200, {
      id, type: 'message', role: 'assistant', model,
      content: [{ type: 'text', text: answer.text }],
      stop_reason: stopReason, stop_sequence: null,
      usage: { ...usage, output_tokens: outputTokens, service_tier: 'standard' },
    }, requestHeaders());
    return;
  }

  openStream(x.res, 'text/event-stream; charset=utf-8', requestHeaders());
  // message_start reports output_tokens 1, as the real API does; the final count comes in message_delta.
  const start = {
    type: 'message_start',
    message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } },
  };
  if (!(await write(x, sseEvent('message_start', start)))) return;
  if (!(await write(x, sseEvent('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } })))) return;
  // The API's ping payload has a space after the colon; written by hand to keep those exact bytes.
  if (!(await write(x, 'event: ping\ndata: {"type": "ping"}\n\n'))) return;
  if (!(await pause(plan.first, x.signal))) return;
  const ok = await streamPieces(x, answer.pieces, plan, (text) =>
    sseEvent('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } }));
  if (!ok) return;
  if (!(await write(x, sseEvent('content_block_stop', { type: 'content_block_stop', index: 0 })))) return;
  if (!(await write(x, sseEvent('message_delta', { type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: outputTokens } })))) return;
  if (await write(x, sseEvent('message_stop', { type: 'message_stop' }))) x.res.end();
};

const countTokens: Handler = async (x) => {
  requireModel(x.body);
  sendJson(x.res, 200, { input_tokens: readPrompt(x.body).inputTokens }, requestHeaders());
};

const ROUTES = new Map<string, Handler>([
  ['POST /v1/messages', messagesHandler],
  ['POST /v1/messages/count_tokens', countTokens],
]);

const ERROR_TYPES: Record<SimError['kind'], string> = {
  invalid_request: 'invalid_request_error',
  not_found: 'not_found_error',
  too_large: 'request_too_large',
  server_error: 'api_error',
};

export const anthropic: Dialect = {
  name: 'anthropic',
  route: (method, path) => ROUTES.get(`${method} ${path}`) ?? null,
  errorBody(err) {
    const body = { type: 'error', error: { type: ERROR_TYPES[err.kind], message: err.message }, request_id: randomId('req_01', 22) };
    return { contentType: 'application/json', body: JSON.stringify(body) };
  },
  notFoundMessage: () => 'Not Found',
  badJsonMessage: (detail) => `There was an issue with the request body: it is not valid JSON (${detail})`,
};
