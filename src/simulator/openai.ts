// The simulated OpenAI API: chat completions, legacy completions, responses, embeddings and models.
import { pause, planPacing } from './pacing.ts';
import {
  answerFor,
  chatPromptTokens,
  DEFAULT_EMBEDDING_DIMENSIONS,
  embeddingBase64,
  embeddingFor,
  MAX_EMBEDDING_DIMENSIONS,
  MAX_EMBEDDING_VALUES,
  tokenCount,
} from './text.ts';
import {
  asArray,
  asRecord,
  asString,
  openStream,
  randomId,
  readMessages,
  requireModel,
  sendJson,
  simError,
  sseData,
  sseEvent,
  streamPieces,
  tokenLimit,
  unixSeconds,
  write,
  type Dialect,
  type Handler,
  type Json,
  type SimError,
} from './wire.ts';

/** The models GET /v1/models lists; any other name is accepted and echoed too. */
export const OPENAI_MODELS = ['sim-gpt', 'sim-gpt-mini', 'sim-embed'] as const;

const FINGERPRINT = 'fp_llmtapsim';
const SSE = 'text/event-stream; charset=utf-8';
const MAX_EMBEDDING_INPUTS = 2048;

const requestHeaders = (): Record<string, string> => ({ 'x-request-id': randomId('req_', 32) });

function chatUsage(prompt: number, completion: number): Json {
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

const wantsUsage = (body: Json): boolean => asRecord(body.stream_options)?.include_usage === true;

const chatCompletions: Handler = async (x) => {
  const model = requireModel(x.body);
  const messages = asArray(x.body.messages);
  if (!messages || messages.length === 0) throw simError(400, 'invalid_request', "messages: expected a non-empty array of messages", 'messages');
  const { texts, lastUser } = readMessages(messages);
  const answer = answerFor(lastUser, tokenLimit(x.body, ['max_completion_tokens', 'max_tokens']));
  const usage = chatUsage(chatPromptTokens(texts), answer.pieces.length);
  const finish = answer.truncated ? 'length' : 'stop';
  const plan = planPacing(answer.pieces.length, x.pacing);
  const id = randomId('chatcmpl-', 29);
  const created = unixSeconds();

  if (x.body.stream !== true) {
    if (!(await pause(plan.total, x.signal))) return;
    sendJson(x.res, 200, {
      id,
      object: 'chat.completion',
      created,
      model,
      choices: [{ index: 0, message: { role: 'assistant', content: answer.text, refusal: null, annotations: [] }, logprobs: null, finish_reason: finish }],
      usage,
      service_tier: 'default',
      system_fingerprint: FINGERPRINT,
    }, requestHeaders());
    return;
  }

  // With include_usage every chunk says "usage": null and a last chunk with no choices carries the counts;
  // without it the stream has no usage key at all. Clients (and llmtap) rely on exactly this.
  const includeUsage = wantsUsage(x.body);
  const chunk = (choices: Json[]): Json => ({
    id, object: 'chat.completion.chunk', created, model, service_tier: 'default', system_fingerprint: FINGERPRINT, choices,
    ...(includeUsage ? { usage: null } : {}),
  });
  const choice = (delta: Json, finishReason: string | null): Json => ({ index: 0, delta, logprobs: null, finish_reason: finishReason });

  openStream(x.res, SSE, requestHeaders());
  if (!(await pause(plan.first, x.signal))) return;
  if (!(await write(x, sseData(chunk([choice({ role: 'assistant', content: '', refusal: null }, null)]))))) return;
  if (!(await streamPieces(x, answer.pieces, plan, (piece) => sseData(chunk([choice({ content: piece }, null)]))))) return;
  if (!(await write(x, sseData(chunk([choice({}, finish)]))))) return;
  if (includeUsage && !(await write(x, sseData({ ...chunk([]), usage })))) return;
  if (await write(x, 'data: [DONE]\n\n')) x.res.end();
};

/** The legacy prompt: a string, a list of strings, or token ids (counted as they are). */
function legacyPrompt(prompt: unknown): { text: string; tokens: number } {
  if (prompt === undefined || prompt === null) return { text: '', tokens: 1 };
  if (typeof prompt === 'string') return { text: prompt, tokens: tokenCount(prompt) };
  const items = asArray(prompt);
  if (!items) throw simError(400, 'invalid_request', 'prompt: expected a string or an array', 'prompt');
  if (items.every((i) => typeof i === 'number')) return { text: items.join(' '), tokens: items.length };
  const strings = items.map((i) => (typeof i === 'string' ? i : Array.isArray(i) ? i.join(' ') : ''));
  const text = strings.join('\n');
  return { text, tokens: tokenCount(text) };
}

const completions: Handler = async (x) => {
  const model = requireModel(x.body);
  const prompt = legacyPrompt(x.body.prompt);
  const answer = answerFor(prompt.text, tokenLimit(x.body, ['max_tokens']));
  const usage = { prompt_tokens: prompt.tokens, completion_tokens: answer.pieces.length, total_tokens: prompt.tokens + answer.pieces.length };
  const finish = answer.truncated ? 'length' : 'stop';
  const plan = planPacing(answer.pieces.length, x.pacing);
  const id = randomId('cmpl-', 29);
  const created = unixSeconds();

  if (x.body.stream !== true) {
    if (!(await pause(plan.total, x.signal))) return;
    sendJson(x.res, 200, {
      id, object: 'text_completion', created, model,
      choices: [{ text: answer.text, index: 0, logprobs: null, finish_reason: finish }],
      usage,
    }, requestHeaders());
    return;
  }

  const includeUsage = wantsUsage(x.body);
  const last = answer.pieces.length - 1;
  openStream(x.res, SSE, requestHeaders());
  if (!(await pause(plan.first, x.signal))) return;
  // The legacy stream has no role chunk and puts finish_reason on the last text chunk.
  const ok = await streamPieces(x, answer.pieces, plan, (text, i) => sseData({
    id, object: 'text_completion', created,
    choices: [{ text, index: 0, logprobs: null, finish_reason: i === last ? finish : null }],
    model,
    ...(includeUsage ? { usage: null } : {}),
  }));
  if (!ok) return;
  if (includeUsage && !(await write(x, sseData({ id, object: 'text_completion', created, model, usage, choices: [] })))) return;
  if (await write(x, 'data: [DONE]\n\n')) x.res.end();
};

/** The texts of an embeddings input and its token count (token-id inputs count their ids). */
function embeddingInputs(input: unknown): { texts: string[]; tokens: number } {
  if (typeof input === 'string') {
    if (input === '') throw simError(400, 'invalid_request', "'$.input' is invalid: an empty string cannot be embedded", 'input');
    return { texts: [input], tokens: tokenCount(input) };
  }
  const items = asArray(input);
  if (!items || items.length === 0) throw simError(400, 'invalid_request', "'$.input' is invalid: expected a string or a non-empty array", 'input');
  if (items.every((i) => typeof i === 'number')) return { texts: [items.join(' ')], tokens: items.length };
  if (items.length > MAX_EMBEDDING_INPUTS) throw simError(400, 'invalid_request', `'$.input' is invalid: at most ${MAX_EMBEDDING_INPUTS} inputs per request`, 'input');
  const texts: string[] = [];
  let tokens = 0;
  for (const item of items) {
    if (typeof item === 'string' && item !== '') {
      texts.push(item);
      tokens += tokenCount(item);
    } else if (Array.isArray(item) && item.length > 0 && item.every((t) => typeof t === 'number')) {
      texts.push(item.join(' '));
      tokens += item.length;
    } else {
      throw simError(400, 'invalid_request', "'$.input' is invalid: each input must be a non-empty string or token array", 'input');
    }
  }
  return { texts, tokens };
}

const embeddings: Handler = async (x) => {
  const model = requireModel(x.body);
  const { texts, tokens } = embeddingInputs(x.body.input);
  const dims = x.body.dimensions ?? DEFAULT_EMBEDDING_DIMENSIONS;
  if (typeof dims !== 'number' || !Number.isInteger(dims) || dims < 1 || dims > MAX_EMBEDDING_DIMENSIONS) {
    throw simError(400, 'invalid_request', `dimensions: expected an integer from 1 to ${MAX_EMBEDDING_DIMENSIONS}`, 'dimensions');
  }
  if (texts.length * dims > MAX_EMBEDDING_VALUES) throw simError(400, 'invalid_request', `too many values: ${texts.length} inputs × ${dims} dimensions is over ${MAX_EMBEDDING_VALUES}`, 'input');
  const format = x.body.encoding_format ?? 'float';
  if (format !== 'float' && format !== 'base64') throw simError(400, 'invalid_request', "encoding_format: expected 'float' or 'base64'", 'encoding_format');
  // Embeddings come back quickly on a real server, but not instantly.
  if (!(await pause(Math.round(planPacing(0, x.pacing).first * 0.3), x.signal))) return;
  sendJson(x.res, 200, {
    object: 'list',
    data: texts.map((t, index) => {
      const v = embeddingFor(t, dims);
      return { object: 'embedding', index, embedding: format === 'base64' ? embeddingBase64(v) : v };
    }),
    model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  }, requestHeaders());
};

const MODELS_CREATED = 1_700_000_000;
const modelObject = (id: string): Json => ({ id, object: 'model', created: MODELS_CREATED, owned_by: 'llmtap-simulator' });

const listModels: Handler = async (x) => {
  sendJson(x.res, 200, { object: 'list', data: OPENAI_MODELS.map(modelObject) }, requestHeaders());
};

const getModel = (id: string): Handler => async (x) => {
  sendJson(x.res, 200, modelObject(id), requestHeaders());
};

/** The Responses API input: a string or a list of message items, plus optional instructions. */
function responsesInput(body: Json): { texts: string[]; lastUser: string } {
  const instructions = asString(body.instructions);
  const prefix = instructions ? [instructions] : [];
  if (typeof body.input === 'string') return { texts: [...prefix, body.input], lastUser: body.input };
  const items = asArray(body.input);
  if (!items || items.length === 0) throw simError(400, 'invalid_request', "input: expected a string or a non-empty array of items", 'input');
  const { texts, lastUser } = readMessages(items);
  return { texts: [...prefix, ...texts], lastUser };
}

const responses: Handler = async (x) => {
  const model = requireModel(x.body);
  const { texts, lastUser } = responsesInput(x.body);
  const maxOutput = tokenLimit(x.body, ['max_output_tokens']);
  const answer = answerFor(lastUser, maxOutput);
  const inputTokens = chatPromptTokens(texts);
  const outputTokens = answer.pieces.length;
  const plan = planPacing(outputTokens, x.pacing);
  const id = randomId('resp_', 48);
  const itemId = randomId('msg_', 48);
  const createdAt = unixSeconds();
  const finalStatus = answer.truncated ? 'incomplete' : 'completed';
  const textPart = (text: string): Json => ({ type: 'output_text', annotations: [], logprobs: [], text });
  const item = (status: string, content: Json[]): Json => ({ id: itemId, type: 'message', status, content, role: 'assistant' });
  const response = (status: string, output: Json[], usage: Json | null): Json => ({
    id, object: 'response', created_at: createdAt, status, background: false,
    completed_at: status === 'in_progress' ? null : unixSeconds(),
    error: null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: asString(x.body.instructions) ?? null,
    max_output_tokens: maxOutput, model, output, parallel_tool_calls: true, previous_response_id: null,
    reasoning: { effort: null, summary: null }, service_tier: 'default', store: x.body.store !== false,
    temperature: 1, text: { format: { type: 'text' } }, tool_choice: 'auto', tools: [], top_p: 1,
    truncation: 'disabled', usage, user: null, metadata: {},
  });
  const usage: Json = {
    input_tokens: inputTokens, input_tokens_details: { cached_tokens: 0 },
    output_tokens: outputTokens, output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: inputTokens + outputTokens,
  };

  if (x.body.stream !== true) {
    if (!(await pause(plan.total, x.signal))) return;
    sendJson(x.res, 200, response(finalStatus, [item(finalStatus, [textPart(answer.text)])], usage), requestHeaders());
    return;
  }

  let seq = 0;
  const ev = (type: string, payload: Json): string => sseEvent(type, { type, ...payload, sequence_number: seq++ });
  const ids = { item_id: itemId, output_index: 0, content_index: 0 };
  openStream(x.res, SSE, requestHeaders());
  if (!(await write(x, ev('response.created', { response: response('in_progress', [], null) })))) return;
  if (!(await write(x, ev('response.in_progress', { response: response('in_progress', [], null) })))) return;
  if (!(await pause(plan.first, x.signal))) return;
  if (!(await write(x, ev('response.output_item.added', { item: item('in_progress', []), output_index: 0 })))) return;
  if (!(await write(x, ev('response.content_part.added', { ...ids, part: textPart('') })))) return;
  if (!(await streamPieces(x, answer.pieces, plan, (delta) => ev('response.output_text.delta', { ...ids, delta, logprobs: [] })))) return;
  if (!(await write(x, ev('response.output_text.done', { ...ids, logprobs: [], text: answer.text })))) return;
  if (!(await write(x, ev('response.content_part.done', { ...ids, part: textPart(answer.text) })))) return;
  const done = item(finalStatus, [textPart(answer.text)]);
  if (!(await write(x, ev('response.output_item.done', { item: done, output_index: 0 })))) return;
  if (await write(x, ev(`response.${finalStatus}`, { response: response(finalStatus, [done], usage) }))) x.res.end();
};

const ROUTES = new Map<string, Handler>([
  ['POST /v1/chat/completions', chatCompletions],
  ['POST /v1/completions', completions],
  ['POST /v1/responses', responses],
  ['POST /v1/embeddings', embeddings],
  ['GET /v1/models', listModels],
]);

const ERROR_TYPES: Record<SimError['kind'], string> = {
  invalid_request: 'invalid_request_error',
  not_found: 'invalid_request_error',
  too_large: 'invalid_request_error',
  server_error: 'server_error',
};

export const openai: Dialect = {
  name: 'openai',
  route(method, path) {
    const handler = ROUTES.get(`${method} ${path}`);
    if (handler) return handler;
    const model = /^\/v1\/models\/([^/]+)$/.exec(path);
    if (method === 'GET' && model) return getModel(decodeURIComponent(model[1]!));
    return null;
  },
  errorBody(err) {
    // OpenAI indents its error bodies by four spaces and ends them with a newline.
    const body = { error: { message: err.message, type: ERROR_TYPES[err.kind], param: err.param, code: err.kind === 'invalid_request' && err.param ? 'invalid_value' : null } };
    return { contentType: 'application/json; charset=utf-8', body: JSON.stringify(body, null, 4) + '\n' };
  },
  notFoundMessage: (method, path) => `Invalid URL (${method} ${path})`,
  badJsonMessage: () =>
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
};
