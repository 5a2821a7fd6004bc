// The per-exchange record: the one fact every subscriber (logs, telemetry, captures, usage) reads.

export type DialectName = 'openai' | 'anthropic' | 'ollama';

/** GenAI semantic-convention operation names; null for calls that generate nothing (model lists, tags). */
export type Operation = 'chat' | 'text_completion' | 'embeddings' | null;

/**
 * How an exchange ended.
 * - ok: the upstream answered (any status) and the whole body reached the client.
 * - upstream_unreachable / upstream_timeout: no response head; the client got a 502 / 504.
 * - upstream_idle: the stream stalled longer than LLMTAP_STREAM_IDLE_MS; the client stream was ended.
 * - upstream_aborted: the upstream closed the connection before finishing its answer (before or after its head).
 * - client_aborted: the client went away first; the upstream request was aborted.
 * - body_too_large: the client body passed LLMTAP_MAX_BODY_MB; the client got a 413.
 * - proxy_error: llmtap itself failed (a bug); the client got a 500.
 * With several upstreams (config file `upstreams:`), llmtap may answer a request itself, without an upstream call:
 * - rate_limited: the client passed LLMTAP_RATE_LIMIT; 429.
 * - bad_request: no model, or JSON that does not parse, where the model picks the upstream; 400.
 * - no_upstream: no upstream serves the model (404) or every one serving it is down (503).
 * - overloaded: every upstream serving it is at max_concurrent and its wait queue is full or the wait timed out; 503.
 */
export type Outcome =
  | 'ok'
  | 'upstream_unreachable'
  | 'upstream_timeout'
  | 'upstream_idle'
  | 'upstream_aborted'
  | 'client_aborted'
  | 'body_too_large'
  | 'proxy_error'
  | 'rate_limited'
  | 'bad_request'
  | 'no_upstream'
  | 'overloaded';

/** An upstream that failed before the client got a byte, after which llmtap tried another one. */
export interface FailedAttempt {
  upstream: string;
  url: string;
  outcome: Outcome;
  /** the upstream's status when it answered with a 5xx */
  status: number | null;
  error: string;
}

export type UsageSource = 'reported' | 'estimated' | 'none';

export interface TokenUsage {
  input: number | null;
  output: number | null;
  total: number | null;
  /** Prompt tokens served from the provider's cache (OpenAI cached_tokens, Anthropic cache_read_input_tokens). */
  cacheRead: number | null;
  /** Anthropic cache_creation_input_tokens. */
  cacheWrite: number | null;
  /** Output tokens spent on hidden reasoning (OpenAI reasoning_tokens). */
  reasoning: number | null;
  source: UsageSource;
}

/** Milliseconds, measured with a monotonic clock; null when the exchange never reached that point. */
export interface Timings {
  /** request forwarded → response head from the upstream */
  ttfb: number | null;
  /** request forwarded → first chunk carrying generated content (streams only) */
  ttft: number | null;
  /** request received → last byte relayed to the client */
  duration: number;
  /** (duration - ttft) / (output tokens - 1), streams with at least two output tokens */
  timePerOutputToken: number | null;
  /** time spent running llmtap's own code on the request path, excluding waits on client and upstream */
  overhead: number;
}

export interface ByteCounts {
  /** body bytes received from the client */
  requestIn: number;
  /** body bytes sent to the upstream (differs from requestIn when llmtap asked for stream usage) */
  requestOut: number;
  /** body bytes received from the upstream (after any content-encoding, as on the wire) */
  responseIn: number;
  /** body bytes sent to the client */
  responseOut: number;
}

/** Request parameters worth recording (gen_ai.request.*), as the client sent them. */
export interface RequestParams {
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  seed?: number;
  stopSequences?: string[];
  choiceCount?: number;
}

export interface ExchangeRecord {
  /** unique per exchange; also the capture key */
  id: string;
  /** wall-clock time the request arrived, ISO 8601 */
  startedAt: string;
  method: string;
  /** path and query as the client sent them */
  url: string;
  dialect: DialectName;
  upstream: { name: string; url: string };
  operation: Operation;
  /** the model the client asked for; 'unknown' when the body did not say (or did not parse) */
  model: string;
  responseModel: string | null;
  responseId: string | null;
  stream: boolean;
  params: RequestParams;
  /** status sent to the client (the upstream's, or llmtap's own error status) */
  status: number | null;
  outcome: Outcome;
  /** stable error code (LLMTAP_UPSTREAM_TIMEOUT ...) or the upstream's HTTP status class; null on success */
  errorType: string | null;
  errorMessage: string | null;
  finishReasons: string[];
  /** true when the stream carried its dialect's end marker ([DONE], message_stop, done:true) */
  streamComplete: boolean;
  timings: Timings;
  usage: TokenUsage;
  bytes: ByteCounts;
  /** filled by telemetry when tracing is on */
  traceId: string | null;
  /** llmtap asked the upstream for stream usage and removed it from the client's stream */
  usageInjected: boolean;
  /** things the observer skipped (oversized or malformed lines), bounded in number */
  notes: string[];
  /** with several upstreams: the upstreams tried first, in order, when llmtap failed over (absent otherwise) */
  failover?: FailedAttempt[];
  /** with several upstreams: ms the request waited for a slot at its upstream's max_concurrent (absent otherwise) */
  queuedMs?: number;
}
