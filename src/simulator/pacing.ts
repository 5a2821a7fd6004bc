// When each piece of a simulated answer is sent: a think pause, then a jittered per-token rhythm.

export interface PacingOptions {
  /** fixed delay between output tokens; default: 15-40 ms with jitter */
  tokenDelayMs?: number;
  /** fixed delay before the first output token; default: 150-400 ms */
  firstTokenDelayMs?: number;
}

export interface Plan {
  /** ms from the start of the answer to its first token */
  first: number;
  /** gaps[i] = ms between piece i-1 and piece i; gaps[0] is 0 */
  gaps: number[];
  /** ms from the start to the last token */
  total: number;
}

const FIRST_MS = { min: 150, max: 400 };
const TOKEN_MS = { min: 15, max: 40 };
// Defaults must keep a whole answer within a couple of seconds, whatever its length.
const DEFAULT_BUDGET_MS = 2000;

const between = (r: () => number, lo: number, hi: number): number => lo + r() * (hi - lo);

/**
 * The delays for an answer of `count` pieces. Explicit options are used as given (tests pass 0 for speed);
 * the defaults jitter like a real server and are squeezed to fit the budget.
 */
export function planPacing(count: number, opts: PacingOptions = {}, random: () => number = Math.random): Plan {
  const first = opts.firstTokenDelayMs ?? Math.round(between(random, FIRST_MS.min, FIRST_MS.max));
  const gaps: number[] = [];
  for (let i = 0; i < count; i++) {
    if (i === 0) gaps.push(0);
    else if (opts.tokenDelayMs !== undefined) gaps.push(opts.tokenDelayMs);
    // Most tokens come at a steady rhythm; now and then one takes longer, as batching on a real server does.
    else gaps.push(between(random, TOKEN_MS.min, TOKEN_MS.max) * (random() < 0.05 ? 2.5 : 1));
  }
  let streamMs = gaps.reduce((a, b) => a + b, 0);
  if (opts.tokenDelayMs === undefined && first + streamMs > DEFAULT_BUDGET_MS && streamMs > 0) {
    const scale = Math.max(0, DEFAULT_BUDGET_MS - first) / streamMs;
    for (let i = 0; i < gaps.length; i++) gaps[i] = gaps[i]! * scale;
    streamMs *= scale;
  }
  for (let i = 0; i < gaps.length; i++) gaps[i] = Math.round(gaps[i]!);
  return { first, gaps, total: first + gaps.reduce((a, b) => a + b, 0) };
}

/**
 * Waits `ms`, or less if `signal` aborts first. Resolves true when the wait ran out, false when aborted,
 * and always clears its timer so an abandoned answer leaves nothing scheduled.
 */
export function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise<boolean>((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
