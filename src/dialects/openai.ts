// OpenAI dialect: chat/completions, completions, embeddings and responses, streamed (SSE) or not.
import type { Operation, RequestParams } from '../exchange/record.ts';
import { arr, createObserver, num, obj, parseChunk, setIfNumber, str, tryParse, usageOf, type ObservedState } from './observe.ts';
import type { JsonBodyView } from './json-body.ts';
import type { Dialect, ReportedUsage, RequestInfo } from './types.ts';
import type { SseEvent } from './sse.ts';

const OPERATIONS: Record<string, Operation> = {
  '/v1/chat/completions': 'chat',
  '/v1/completions': 'text_completion',
  '/v1/embeddings': 'embeddings',
  '/v1/responses': 'chat',
};

export function inspectOpenaiRequest(path: string, body: unknown): RequestInfo {
  const b = obj(body);
  const params: RequestParams = {};
  if (b) {
    setIfNumber(params, 'maxTokens', b.max_tokens ?? b.max_completion_tokens ?? b.max_output_tokens);
    setIfNumber(params, 'temperature', b.temperature);
    setIfNumber(params, 'topP', b.top_p);
    setIfNumber(params, 'frequencyPenalty', b.frequency_penalty);
    setIfNumber(params, 'presencePenalty', b.presence_penalty);
    setIfNumber(params, 'seed', b.seed);
    setIfNumber(params, 'choiceCount', b.n);
    if (typeof b.stop === 'string') params.stopSequences = [b.stop];
    else if (Array.isArray(b.stop)) params.stopSequences = b.stop.filter((s): s is string => typeof s === 'string');
  }
  return {
    model: str(b?.model) || 'unknown',
    stream: b?.stream === true,
    operation: OPERATIONS[path] ?? null,
    params,
  };
}

/** Chat/completions usage and Responses-API usage share one reader. */
export function openaiUsage(u: Record<string, unknown>): ReportedUsage | null {
  const inDetails = obj(u.prompt_tokens_details) ?? obj(u.input_tokens_details);
  const outDetails = obj(u.completion_tokens_details) ?? obj(u.output_tokens_details);
  return usageOf({
    input: num(u.prompt_tokens) ?? num(u.input_tokens),
    output: num(u.completion_tokens) ?? num(u.output_tokens),
    total: num(u.total_tokens),
    cacheRead: num(inDetails?.cached_tokens),
    reasoning: num(outDetails?.reasoning_tokens),
  });
}

function choiceContent(c: Record<string, unknown>, now: number, s: ObservedState): void {
  const delta = obj(c.delta) ?? obj(c.message);
  if (delta) {
    s.content(str(delta.content) ?? '', now);
    s.content(str(delta.refusal) ?? '', now);
    // vLLM/DeepSeek-style reasoning is generated content too: it is what the user waits on.
    s.content(str(delta.reasoning_content) ?? str(delta.reasoning) ?? '', now);
    for (const call of arr(delta.tool_calls)) {
      const fn = obj(obj(call)?.function);
      s.content((str(fn?.name) ?? '') + (str(fn?.arguments) ?? ''), now);
    }
  }
  s.content(str(c.text) ?? '', now);
  const finish = str(c.finish_reason);
  if (finish) {
    const index = num(c.index) ?? 0;
    s.finishReasons[index] = finish;
  }
}

function chatChunk(o: Record<string, unknown>, now: number, s: ObservedState): void {
  s.responseId ??= str(o.id) ?? null;
  s.responseModel ??= str(o.model) ?? null;
  for (const c of arr(o.choices)) {
    const choice = obj(c);
    if (choice) choiceContent(choice, now, s);
  }
  const u = obj(o.usage);
  if (u) s.usage = openaiUsage(u);
  const err = obj(o.error);
  if (err) s.streamError = str(err.message) ?? JSON.stringify(err);
}

/** The Responses API streams typed events; the final one carries the whole response with usage. */
function responsesEvent(type: string, o: Record<string, unknown>, now: number, s: ObservedState): void {
  const response = obj(o.response);
  if (response) {
    s.responseId ??= str(response.id) ?? null;
    s.responseModel ??= str(response.model) ?? null;
  }
  if (type.endsWith('.delta')) s.content(str(o.delta) ?? '', now);
  if (type === 'response.completed' || type === 'response.incomplete' || type === 'response.failed') {
    s.complete = true;
    if (response) finishResponse(response, s);
  }
  if (type === 'error') s.streamError = str(o.message) ?? JSON.stringify(o);
}

function finishResponse(response: Record<string, unknown>, s: ObservedState): void {
  const u = obj(response.usage);
  if (u) s.usage = openaiUsage(u);
  const status = str(response.status);
  const reason = str(obj(response.incomplete_details)?.reason);
  if (reason ?? status) s.finishReasons = [reason ?? status!];
  const error = obj(response.error);
  if (error) s.streamError = str(error.message) ?? null;
}

/** Chunks that can carry a finish reason, usage or an error: these are parsed even after the first content. */
const MATTERS = /"finish_reason"\s*:\s*"|"usage"\s*:\s*\{|"error"|"status"\s*:\s*"(completed|incomplete|failed)"/;

function sse(ev: SseEvent, now: number, s: ObservedState): void {
  const data = ev.data;
  if (data === '[DONE]') {
    s.complete = true;
    return;
  }
  // After the first content, a plain content chunk tells nothing new: keep it unparsed for a possible estimate.
  if (s.firstContentAt !== null && s.responseModel !== null && (ev.event.endsWith('.delta') || !MATTERS.test(data))) {
    s.defer(data);
    return;
  }
  const o = parseChunk(data, s, 'an SSE event');
  if (!o) return;
  const type = str(o.type);
  if (type && (type.startsWith('response.') || type === 'error') && !o.choices) responsesEvent(type, o, now, s);
  else chatChunk(o, now, s);
}

/** The generated text of a deferred chunk (chat, completions or Responses-API delta). */
function extract(raw: string): string {
  const o = tryParse(raw);
  if (!o) return '';
  if (typeof o.delta === 'string') return o.delta;
  let text = '';
  for (const c of arr(o.choices)) {
    const choice = obj(c);
    const delta = obj(choice?.delta);
    text += (str(choice?.text) ?? '') + (str(delta?.content) ?? '') + (str(delta?.reasoning_content) ?? str(delta?.reasoning) ?? '') + (str(delta?.refusal) ?? '');
    for (const call of arr(delta?.tool_calls)) text += str(obj(obj(call)?.function)?.arguments) ?? '';
  }
  return text;
}

function json(view: JsonBodyView, s: ObservedState): void {
  s.responseId = str(view.find('id')) ?? null;
  s.responseModel = str(view.find('model')) ?? null;
  const u = obj(view.find('usage'));
  if (u) s.usage = openaiUsage(u);
  const err = obj(view.find('error'));
  if (err) s.streamError = str(err.message) ?? null;
  const whole = obj(view.whole);
  if (!whole) {
    // Too large to hold: the last finish_reason / status sits in the tail with the usage.
    const finish = str(view.find('finish_reason')) ?? (view.find('object') === 'response' ? str(view.find('status')) : undefined);
    if (finish) s.finishReasons = [finish];
    return;
  }
  if (whole.object === 'response') {
    finishResponse(whole, s);
    for (const item of arr(whole.output)) {
      for (const part of arr(obj(item)?.content)) s.content(str(obj(part)?.text) ?? '', 0);
    }
  } else {
    for (const c of arr(whole.choices)) {
      const choice = obj(c);
      if (choice) choiceContent(choice, 0, s);
    }
  }
  // Non-stream bodies have no first chunk: ttft is for streams only.
  s.firstContentAt = null;
}

export const openai: Dialect = {
  name: 'openai',
  inspectRequest: inspectOpenaiRequest,
  createObserver: (init) => createObserver(init, { sse, json, extract }),
  errorBody: ({ status, code, message }) => ({
    error: { message, type: status >= 500 ? 'api_error' : 'invalid_request_error', param: null, code },
  }),
};
