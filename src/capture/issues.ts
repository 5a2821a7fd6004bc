// Finds the problems an exchange's capture shows: cut streams, upstream errors, aborts, missing usage, slow or stalled streams.
import type { CapturedExchange } from './exchanges.ts';

export type IssueKind =
  | 'truncated_stream'
  | 'upstream_error'
  | 'rate_limited'
  | 'client_aborted'
  | 'missing_usage'
  | 'slow_first_chunk'
  | 'long_gap'
  | 'no_response';

export interface Issue {
  id: string;
  kind: IssueKind;
  message: string;
}

export interface IssueThresholds {
  /** ttft (streams) or ttfb (others) above this is slow */
  slowFirstChunkMs: number;
  /** silence between two response chunks above this is a long gap */
  gapMs: number;
}

export const DEFAULT_THRESHOLDS: IssueThresholds = { slowFirstChunkMs: 5000, gapMs: 10_000 };

const END_MARKER: Record<string, string> = { openai: 'data: [DONE]', anthropic: 'message_stop', ollama: 'done:true' };
const GENERATIVE = new Set(['chat', 'text_completion', 'embeddings']);
const ms = (n: number): string => `${Math.round(n)} ms`;

export function detectIssues(ex: CapturedExchange, t: IssueThresholds = DEFAULT_THRESHOLDS): Issue[] {
  const out: Issue[] = [];
  const add = (kind: IssueKind, message: string): void => void out.push({ id: ex.id, kind, message });
  const e = ex.end;
  if (!e) {
    add('no_response', ex.response ? `response head ${ex.response.status} but no end record (llmtap stopped or the capture was cut)` : 'request with no response in the capture (llmtap stopped or the capture was cut)');
    return out;
  }
  const status = e.status;
  switch (e.outcome) {
    case 'client_aborted':
      add('client_aborted', `the client went away after ${ms(e.timings.duration)}${e.stream && ex.responseChunks ? ` and ${ex.responseChunks} chunk(s)` : ''}`);
      break;
    case 'upstream_unreachable':
    case 'upstream_timeout':
      add('no_response', `no response from ${e.upstream.url}: ${e.errorMessage ?? e.outcome} (${e.errorType ?? e.outcome}, client got ${status ?? '-'})`);
      break;
    case 'upstream_idle':
    case 'upstream_aborted':
      if (ex.response || (status !== null && status < 500)) add('truncated_stream', `the upstream ${e.outcome === 'upstream_idle' ? 'went silent' : 'cut the response'} after ${ex.responseChunks} chunk(s): ${e.errorMessage ?? e.outcome}`);
      else add('no_response', `the upstream closed the connection without answering: ${e.errorMessage ?? e.outcome}`);
      break;
    case 'ok':
      if (status === 429) add('rate_limited', `rate limited by the upstream (429)${e.errorMessage ? `: ${e.errorMessage}` : ''}`);
      else if (status !== null && status >= 400) add('upstream_error', `upstream answered ${status}${e.errorMessage ? `: ${e.errorMessage}` : ''}`);
      else if (e.stream && status !== null && status < 300 && !e.streamComplete) {
        add('truncated_stream', `stream ended without its end marker (${END_MARKER[e.dialect] ?? 'end marker'})${e.errorMessage ? `: ${e.errorMessage}` : ''}`);
      } else if (e.errorMessage) add('upstream_error', `the upstream reported an error inside the stream: ${e.errorMessage}`);
      break;
    default:
      add('upstream_error', `${e.outcome}: ${e.errorMessage ?? ''}`);
  }
  const okish = e.outcome === 'ok' && status !== null && status < 300;
  if (okish && e.operation && GENERATIVE.has(e.operation) && e.usage.source !== 'reported') {
    add('missing_usage', `the upstream reported no token usage${e.usage.source === 'estimated' ? ' (llmtap estimated it)' : ''}`);
  }
  const first = e.stream ? e.timings.ttft : e.timings.ttfb;
  if (first !== null && first > t.slowFirstChunkMs) add('slow_first_chunk', `first ${e.stream ? 'content chunk' : 'response byte'} after ${ms(first)} (threshold ${ms(t.slowFirstChunkMs)})`);
  if (ex.maxGap > t.gapMs) add('long_gap', `${ms(ex.maxGap)} between two chunks (threshold ${ms(t.gapMs)})`);
  return out;
}
