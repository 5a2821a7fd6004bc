// Errors llmtap itself answers with: a stable code, the HTTP status and whether the client may see the message.

export type ErrorCode =
  | 'LLMTAP_UPSTREAM_UNREACHABLE'
  | 'LLMTAP_UPSTREAM_TIMEOUT'
  | 'LLMTAP_UPSTREAM_IDLE'
  | 'LLMTAP_UPSTREAM_ABORTED'
  | 'LLMTAP_CLIENT_ABORTED'
  | 'LLMTAP_BODY_TOO_LARGE'
  | 'LLMTAP_NOT_PROXIED'
  | 'LLMTAP_BAD_JSON'
  | 'LLMTAP_MODEL_MISSING'
  | 'LLMTAP_UNKNOWN_MODEL'
  | 'LLMTAP_NO_UPSTREAM'
  | 'LLMTAP_NO_HEALTHY_UPSTREAM'
  | 'LLMTAP_QUEUE_FULL'
  | 'LLMTAP_QUEUE_TIMEOUT'
  | 'LLMTAP_RATE_LIMITED'
  | 'LLMTAP_INTERNAL';

const STATUS: Record<ErrorCode, number> = {
  LLMTAP_UPSTREAM_UNREACHABLE: 502,
  LLMTAP_UPSTREAM_TIMEOUT: 504,
  LLMTAP_UPSTREAM_IDLE: 504,
  LLMTAP_UPSTREAM_ABORTED: 502,
  LLMTAP_CLIENT_ABORTED: 499,
  LLMTAP_BODY_TOO_LARGE: 413,
  LLMTAP_NOT_PROXIED: 404,
  LLMTAP_BAD_JSON: 400,
  LLMTAP_MODEL_MISSING: 400,
  LLMTAP_UNKNOWN_MODEL: 404,
  LLMTAP_NO_UPSTREAM: 404,
  LLMTAP_NO_HEALTHY_UPSTREAM: 503,
  LLMTAP_QUEUE_FULL: 503,
  LLMTAP_QUEUE_TIMEOUT: 503,
  LLMTAP_RATE_LIMITED: 429,
  LLMTAP_INTERNAL: 500,
};

export class LlmtapError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** messages of our own making name upstreams and settings, never secrets, so clients may see them */
  readonly expose: boolean;
  /** sent as Retry-After (seconds) when the client should come back later (429, 503) */
  readonly retryAfterS: number | null;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; expose?: boolean; retryAfterS?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LlmtapError';
    this.code = code;
    this.status = STATUS[code];
    this.expose = options?.expose ?? code !== 'LLMTAP_INTERNAL';
    this.retryAfterS = options?.retryAfterS ?? null;
  }
}

/** The lowest-level cause of a network error, in words a user can act on ("connect ECONNREFUSED 127.0.0.1:9"). */
export function describeCause(err: unknown): string {
  let e: unknown = err;
  // undici wraps socket errors (fetch failed → cause); the innermost one names the address.
  for (let i = 0; i < 5 && e instanceof Error && e.cause instanceof Error; i++) e = e.cause;
  if (e instanceof AggregateError && e.errors.length > 0) e = e.errors[0];
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    return code && !e.message.includes(code) ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}
