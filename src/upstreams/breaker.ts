// A circuit breaker per upstream as plain state: closed → open after N failures → half-open after a cool-down → closed after M successes.

export type BreakerState = 'closed' | 'open' | 'half_open';

export interface BreakerSettings {
  /** consecutive failures that open it */
  failures: number;
  /** ms an open breaker waits before letting trials through */
  cooldownMs: number;
  /** successes in half-open that close it */
  successes: number;
}

export interface Breaker {
  state: BreakerState;
  /** consecutive failures (closed) */
  failures: number;
  /** successes so far (half-open) */
  successes: number;
  /** when it last opened (ms, monotonic) */
  openedAt: number;
  /** trial requests in flight while half-open: one at a time */
  trials: number;
  /** why it last opened */
  lastError: string | null;
}

/** A state change, for the log. */
export interface BreakerChange {
  from: BreakerState;
  to: BreakerState;
}

/** The gauge value of llmtap.upstream.breaker_state. */
export const BREAKER_GAUGE: Readonly<Record<BreakerState, number>> = { closed: 0, open: 1, half_open: 2 };

export function newBreaker(): Breaker {
  return { state: 'closed', failures: 0, successes: 0, openedAt: 0, trials: 0, lastError: null };
}

/** The state now: an open breaker whose cool-down is over has become half-open. */
export function breakerState(b: Breaker, s: BreakerSettings, now: number): BreakerState {
  if (b.state === 'open' && now - b.openedAt >= s.cooldownMs) {
    b.state = 'half_open';
    b.successes = 0;
    b.trials = 0;
  }
  return b.state;
}

/** ms until an open breaker lets trials through (0 when it is not open). */
export function breakerRetryInMs(b: Breaker, s: BreakerSettings, now: number): number {
  return breakerState(b, s, now) === 'open' ? Math.max(0, b.openedAt + s.cooldownMs - now) : 0;
}

/** Whether a request may go to this upstream now: closed, or half-open with no trial in flight. */
export function breakerAllows(b: Breaker, s: BreakerSettings, now: number): boolean {
  const state = breakerState(b, s, now);
  return state === 'closed' || (state === 'half_open' && b.trials === 0);
}

export function recordFailure(b: Breaker, s: BreakerSettings, now: number, error: string): BreakerChange | null {
  const from = breakerState(b, s, now);
  b.lastError = error;
  if (from === 'open') return null;
  if (from === 'closed') {
    b.failures++;
    if (b.failures < s.failures) return null;
  }
  // Half-open: one failure is enough to stay out of rotation for another cool-down.
  b.state = 'open';
  b.openedAt = now;
  b.failures = 0;
  b.successes = 0;
  return { from, to: 'open' };
}

export function recordSuccess(b: Breaker, s: BreakerSettings, now: number): BreakerChange | null {
  const from = breakerState(b, s, now);
  if (from === 'closed') {
    b.failures = 0;
    return null;
  }
  if (from === 'open') return null;
  b.successes++;
  if (b.successes < s.successes) return null;
  b.state = 'closed';
  b.failures = 0;
  b.successes = 0;
  b.lastError = null;
  return { from, to: 'closed' };
}
