// Anthropic Messages dialect: message_start / content_block_delta / message_delta SSE, or one message object.
import type { RequestParams } from '../exchange/record.ts';
import { arr, createObserver, num, obj, parseChunk, setIfNumber, str, tryParse, usageOf, type ObservedState } from './observe.ts';
import type { JsonBodyView } from './json-body.ts';
import type { Dialect, ReportedUsage, RequestInfo } from './types.ts';
import type { SseEvent } from './sse.ts';

export function inspectAnthropicRequest(path: string, body: unknown): RequestInfo {
  const b = obj(body);
  const params: RequestParams = {};
  if (b) {
    setIfNumber(params, 'maxTokens', b.max_tokens);
    setIfNumber(params, 'temperature', b.temperature);
    setIfNumber(params, 'topP', b.top_p);
    setIfNumber(params, 'topK', b.top_k);
    if (Array.isArray(b.stop_sequences)) params.stopSequences = b.stop_sequences.filter((s): s is string => typeof s === 'string');
  }
  return {
    model: str(b?.model) || 'unknown',
    stream: b?.stream === true,
    operation: path === '/v1/messages' ? 'chat' : null,
    params,
  };
}

/** Anthropic reports input, cache reads and cache writes separately; input here is what the model read in all. */
function anthropicUsage(u: Record<string, unknown>, prior: ReportedUsage | null): ReportedUsage | null {
  const fresh = num(u.input_tokens);
  const cacheRead = num(u.cache_read_input_tokens) ?? prior?.cacheRead;
  const cacheWrite = num(u.cache_creation_input_tokens) ?? prior?.cacheWrite;
  const input = fresh !== undefined ? fresh + (num(u.cache_read_input_tokens) ?? 0) + (num(u.cache_creation_input_tokens) ?? 0) : prior?.input;
  const output = num(u.output_tokens) ?? prior?.output;
  return usageOf({
    input,
    output,
    total: input !== undefined && output !== undefined ? input + output : undefined,
    cacheRead,
    cacheWrite,
  });
}

function contentOf(delta: Record<string, unknown>): string {
  return str(delta.text) ?? str(delta.partial_json) ?? str(delta.thinking) ?? '';
}

function sse(ev: SseEvent, now: number, s: ObservedState): void {
  // Deltas after the first content tell nothing new: keep them unparsed for a possible estimate.
  if (ev.event === 'content_block_delta' && s.firstContentAt !== null) {
    s.defer(ev.data);
    return;
  }
  const o = parseChunk(ev.data, s, 'an SSE event');
  if (!o) return;
  switch (str(o.type) ?? ev.event) {
    case 'message_start': {
      const m = obj(o.message);
      s.responseId = str(m?.id) ?? null;
      s.responseModel = str(m?.model) ?? null;
      const u = obj(m?.usage);
      if (u) s.usage = anthropicUsage(u, s.usage);
      break;
    }
    case 'content_block_start': {
      const block = obj(o.content_block);
      if (block) s.content(str(block.text) ?? str(block.name) ?? '', now);
      break;
    }
    case 'content_block_delta': {
      const delta = obj(o.delta);
      if (delta) s.content(contentOf(delta), now);
      break;
    }
    case 'message_delta': {
      const reason = str(obj(o.delta)?.stop_reason);
      if (reason) s.finishReasons = [reason];
      const u = obj(o.usage);
      // message_delta usage is cumulative: it replaces what message_start said.
      if (u) s.usage = anthropicUsage(u, s.usage);
      break;
    }
    case 'message_stop':
      s.complete = true;
      break;
    case 'error':
      s.streamError = str(obj(o.error)?.message) ?? ev.data;
      break;
    default:
      break;
  }
}

function extract(raw: string): string {
  const delta = obj(tryParse(raw)?.delta);
  return delta ? contentOf(delta) : '';
}

function json(view: JsonBodyView, s: ObservedState): void {
  s.responseId = str(view.find('id')) ?? null;
  s.responseModel = str(view.find('model')) ?? null;
  const reason = str(view.find('stop_reason'));
  if (reason) s.finishReasons = [reason];
  const u = obj(view.find('usage'));
  if (u) s.usage = anthropicUsage(u, null);
  if (view.find('type') === 'error') s.streamError = str(obj(view.find('error'))?.message) ?? null;
  for (const block of arr(obj(view.whole)?.content)) {
    const b = obj(block);
    if (b) s.content(str(b.text) ?? str(b.thinking) ?? (b.input ? JSON.stringify(b.input) : ''), 0);
  }
  s.firstContentAt = null;
}

export const anthropic: Dialect = {
  name: 'anthropic',
  inspectRequest: inspectAnthropicRequest,
  createObserver: (init) => createObserver(init, { sse, json, extract }),
  errorBody: ({ status, code, message }) => ({
    type: 'error',
    error: {
      type: status === 413 ? 'request_too_large' : status === 404 ? 'not_found_error' : status === 504 ? 'timeout_error' : status >= 500 ? 'api_error' : 'invalid_request_error',
      message,
      code,
    },
  }),
};
