// Ollama dialect: /api/chat, /api/generate (NDJSON streams by default) and /api/embed.
import type { Operation, RequestParams } from '../exchange/record.ts';
import { arr, createObserver, num, obj, parseChunk, setIfNumber, str, tryParse, usageOf, type ObservedState } from './observe.ts';
import type { JsonBodyView } from './json-body.ts';
import type { Dialect, RequestInfo } from './types.ts';

const OPERATIONS: Record<string, Operation> = {
  '/api/chat': 'chat',
  '/api/generate': 'text_completion',
  '/api/embed': 'embeddings',
  '/api/embeddings': 'embeddings',
};

export function inspectOllamaRequest(path: string, body: unknown): RequestInfo {
  const b = obj(body);
  const operation = OPERATIONS[path] ?? null;
  const params: RequestParams = {};
  const o = obj(b?.options);
  if (o) {
    setIfNumber(params, 'maxTokens', o.num_predict);
    setIfNumber(params, 'temperature', o.temperature);
    setIfNumber(params, 'topP', o.top_p);
    setIfNumber(params, 'topK', o.top_k);
    setIfNumber(params, 'seed', o.seed);
    setIfNumber(params, 'frequencyPenalty', o.frequency_penalty);
    setIfNumber(params, 'presencePenalty', o.presence_penalty);
    if (Array.isArray(o.stop)) params.stopSequences = o.stop.filter((s): s is string => typeof s === 'string');
  }
  return {
    model: str(b?.model) || 'unknown',
    // Ollama streams chat and generate unless the client says stream:false.
    stream: (operation === 'chat' || operation === 'text_completion') && b !== undefined && b.stream !== false,
    operation,
    params,
  };
}

/** Lines that end the stream or report an error: parsed even after the first content. */
const MATTERS = /"done"\s*:\s*true|"error"/;

function ndjson(text: string, now: number, s: ObservedState): void {
  // After the first content, a plain token line tells nothing new: keep it unparsed for a possible estimate.
  if (s.firstContentAt !== null && s.responseModel !== null && !MATTERS.test(text)) {
    s.defer(text);
    return;
  }
  const o = parseChunk(text, s, 'an NDJSON line');
  if (o) line(o, now, s);
}

function extract(raw: string): string {
  const o = tryParse(raw);
  if (!o) return '';
  const message = obj(o.message);
  return (str(message?.content) ?? '') + (str(message?.thinking) ?? str(o.thinking) ?? '') + (str(o.response) ?? '');
}

function line(o: Record<string, unknown>, now: number, s: ObservedState): void {
  s.responseModel ??= str(o.model) ?? null;
  const message = obj(o.message);
  s.content(str(message?.content) ?? '', now);
  s.content(str(message?.thinking) ?? str(o.thinking) ?? '', now);
  for (const call of arr(message?.tool_calls)) s.content(JSON.stringify(call), now);
  s.content(str(o.response) ?? '', now);
  if (o.done === true) {
    s.complete = true;
    const reason = str(o.done_reason);
    if (reason) s.finishReasons = [reason];
    s.usage = usageOf({
      input: num(o.prompt_eval_count),
      output: num(o.eval_count),
      total: num(o.prompt_eval_count) !== undefined && num(o.eval_count) !== undefined ? num(o.prompt_eval_count)! + num(o.eval_count)! : undefined,
    });
  }
  if (typeof o.error === 'string') s.streamError = o.error;
}

function json(view: JsonBodyView, s: ObservedState): void {
  const whole = obj(view.whole);
  if (whole) {
    line(whole, 0, s);
    // /api/embed reports only prompt_eval_count and has no done flag.
    if (whole.done === undefined) s.usage = usageOf({ input: num(whole.prompt_eval_count) });
  } else {
    // Too large to hold: the final fields sit in the tail; read them as the small-body path would.
    const fields: Record<string, unknown> = {};
    for (const k of ['model', 'done', 'done_reason', 'prompt_eval_count', 'eval_count', 'error']) fields[k] = view.find(k);
    line(fields, 0, s);
    if (fields.done === undefined) s.usage = usageOf({ input: num(fields.prompt_eval_count) });
  }
  s.firstContentAt = null;
}

export const ollama: Dialect = {
  name: 'ollama',
  inspectRequest: inspectOllamaRequest,
  createObserver: (init) => createObserver(init, { ndjson, json, extract }),
  errorBody: ({ code, message }) => ({ error: message, code }),
};
