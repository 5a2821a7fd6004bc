// Query parameters of the usage API: parsed strictly, so a typo gets a 400 naming the parameter rather than a silently wrong answer.

export class BadParameter extends Error {
  readonly code = 'LLMTAP_BAD_PARAMETER';
  readonly status = 400;
  constructor(
    readonly parameter: string,
    message: string,
  ) {
    super(message);
  }
}

/** The query's parameters; unknown or repeated names are refused (names starting with _ are cache busters and ignored). */
export function readQuery(querystring: string, allowed: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, value] of new URLSearchParams(querystring)) {
    if (name.startsWith('_')) continue;
    if (!allowed.includes(name)) {
      throw new BadParameter(name, `unknown query parameter "${name}"${allowed.length ? `: this endpoint takes ${allowed.join(', ')}` : ': this endpoint takes none'}`);
    }
    if (out.has(name)) throw new BadParameter(name, `query parameter "${name}" is given more than once`);
    out.set(name, value);
  }
  return out;
}

const RELATIVE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const ISO = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

/**
 * A point in time as ISO 8601 (UTC): an ISO date or date-time, epoch milliseconds, or a duration ago (90s, 15m, 1h, 7d).
 * A bare date as an upper bound means the end of that day.
 */
export function readTime(name: string, value: string, opts: { endOfDay?: boolean; now?: number } = {}): string {
  const v = value.trim();
  const now = opts.now ?? Date.now();
  let ms: number;
  const rel = RELATIVE.exec(v);
  if (rel) ms = now - Number(rel[1]) * UNIT_MS[rel[2]!]!;
  else if (/^\d{10,16}$/.test(v)) ms = Number(v);
  else if (ISO.test(v)) {
    ms = Date.parse(v.replace(' ', 'T'));
    if (DATE_ONLY.test(v) && opts.endOfDay) ms += 86_400_000 - 1;
  } else ms = Number.NaN;
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) {
    throw new BadParameter(name, `query parameter "${name}" must be an ISO 8601 date or date-time (2025-06-01, 2025-06-01T12:00:00Z), epoch milliseconds, or a time ago like 15m, 1h, 7d; got "${value}"`);
  }
  return new Date(ms).toISOString();
}

export function readInt(name: string, value: string | undefined, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value.trim())) throw new BadParameter(name, `query parameter "${name}" must be a whole number from ${min} to ${max}; got "${value}"`);
  const n = Number(value.trim());
  if (n < min || n > max) throw new BadParameter(name, `query parameter "${name}" must be from ${min} to ${max}; got ${n}`);
  return n;
}

export function readEnum<T extends string>(name: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) throw new BadParameter(name, `query parameter "${name}" must be one of ${allowed.join(', ')}; got "${value}"`);
  return value as T;
}

/** A non-empty text filter (model, provider, upstream). */
export function readText(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value.length === 0 || value.length > 512) throw new BadParameter(name, `query parameter "${name}" must be 1 to 512 characters`);
  return value;
}
