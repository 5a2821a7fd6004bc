// Shared plumbing for response observers: picks the framing by content type and keeps the observed state.
import { createTextTally } from '../tokens/estimate.ts';
import { createJsonBodyCollector, type JsonBodyView } from './json-body.ts';
import { createLineSplitter } from './lines.ts';
import { createSseParser, type SseEvent } from './sse.ts';
import type { Observation, ObserverInit, ReportedUsage, ResponseObserver } from './types.ts';

/** Longest SSE event or NDJSON line read; longer ones are skipped and noted (the relay is unaffected). */
export const MAX_LINE_CHARS = 1024 * 1024;
const MAX_NOTES = 8;

export interface ObservedState {
  responseModel: string | null;
  responseId: string | null;
  finishReasons: string[];
  usage: ReportedUsage | null;
  firstContentAt: number | null;
  complete: boolean;
  streamError: string | null;
  /** marks the first content chunk and collects its text for the estimator */
  content(text: string, now: number): void;
  /** keeps an unparsed chunk for the estimator: after the first content, most chunks need no parsing at all */
  defer(raw: string): void;
  note(text: string): void;
}

export interface DialectHandlers {
  sse?(ev: SseEvent, now: number, s: ObservedState): void;
  /** one NDJSON line, unparsed: the dialect decides whether it is worth parsing */
  ndjson?(line: string, now: number, s: ObservedState): void;
  json(view: JsonBodyView, s: ObservedState): void;
  /** the generated text in a deferred chunk, read only when an estimate is needed */
  extract?(raw: string): string;
}

export function createObserver(init: ObserverInit, handlers: DialectHandlers): ResponseObserver {
  const tally = createTextTally(handlers.extract);
  const notes: string[] = [];
  const state: ObservedState = {
    responseModel: null,
    responseId: null,
    finishReasons: [],
    usage: null,
    firstContentAt: null,
    complete: false,
    streamError: null,
    content(text, now) {
      if (!text) return;
      if (state.firstContentAt === null) state.firstContentAt = now;
      tally.add(text);
    },
    defer(raw) {
      tally.addRaw(raw);
    },
    note(text) {
      if (notes.length < MAX_NOTES) notes.push(text);
      else if (notes.length === MAX_NOTES) notes.push('further notes dropped');
    },
  };
  const oversize = (chars: number): void => state.note(`skipped a line of ${chars} characters (over ${MAX_LINE_CHARS})`);
  let now = 0;

  const ct = init.contentType.toLowerCase();
  let feed: { push(c: Uint8Array): void; end(): void };
  if (ct.includes('text/event-stream') && handlers.sse) {
    const sse = handlers.sse;
    feed = createSseParser((ev) => sse(ev, now, state), oversize, MAX_LINE_CHARS);
  } else if ((ct.includes('ndjson') || ct.includes('jsonl')) && handlers.ndjson) {
    const nd = handlers.ndjson;
    feed = createLineSplitter((line) => {
      if (line.length > 0 && line.trim() !== '') nd(line, now, state);
    }, oversize, MAX_LINE_CHARS);
  } else if (ct.includes('json')) {
    const body = createJsonBodyCollector();
    feed = {
      push: (c) => body.push(c),
      end() {
        const view = body.end();
        if (view.parseError) state.note(`response body is not JSON: ${view.parseError}`);
        else handlers.json(view, state);
        // A non-stream body is complete when it ended; its first content is the whole body.
        if (!view.parseError) state.complete = true;
      },
    };
  } else {
    feed = { push() {}, end() {} };
  }

  return {
    write(chunk, at) {
      now = at;
      feed.push(chunk);
    },
    end(): Observation {
      feed.end();
      return {
        responseModel: state.responseModel,
        responseId: state.responseId,
        finishReasons: state.finishReasons.filter((r) => typeof r === 'string'),
        usage: state.usage,
        firstContentAt: state.firstContentAt,
        complete: state.complete,
        streamError: state.streamError,
        estimateOutputTokens: () => tally.total(),
        notes,
      };
    },
  };
}

/** Parses a chunk's JSON: the object, or undefined (noted) when it is not a JSON object. */
export function parseChunk(text: string, s: Pick<ObservedState, 'note'>, what: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* noted below */
  }
  s.note(`skipped ${what} that is not a JSON object: ${text.slice(0, 60)}`);
  return undefined;
}

/** Parses JSON quietly, for deferred chunks read at estimate time. */
export function tryParse(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
export const obj = (v: unknown): Record<string, unknown> | undefined =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
export const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Drops undefined fields; null when nothing was reported. Field by field: this runs for every response. */
export function usageOf(u: ReportedUsage): ReportedUsage | null {
  const out: ReportedUsage = {};
  let n = 0;
  if (u.input !== undefined) (out.input = u.input), n++;
  if (u.output !== undefined) (out.output = u.output), n++;
  if (u.total !== undefined) (out.total = u.total), n++;
  if (u.cacheRead !== undefined) (out.cacheRead = u.cacheRead), n++;
  if (u.cacheWrite !== undefined) (out.cacheWrite = u.cacheWrite), n++;
  if (u.reasoning !== undefined) (out.reasoning = u.reasoning), n++;
  return n > 0 ? out : null;
}

/** Request parameters shared by the dialects' request inspectors. */
export function setIfNumber<T extends object, K extends keyof T>(target: T, key: K, v: unknown): void {
  if (typeof v === 'number' && Number.isFinite(v)) (target as Record<K, unknown>)[key] = v;
}
