// Token estimates with a real tokenizer (o200k_base) for upstreams that report no usage; CPU and memory bounded.

type CountTokens = (text: string) => number;

let counter: Promise<CountTokens> | null = null;

/** The tokenizer's tables are a few MB: load them on the first estimate, not at start-up. */
export function loadTokenCounter(): Promise<CountTokens> {
  counter ??= import('gpt-tokenizer/encoding/o200k_base').then((m) => (text: string) => m.countTokens(text));
  return counter;
}

/** Past this much text, count a sample and scale: an estimate must not stall the event loop on a 30 MB prompt. */
const EXACT_CHARS = 1_000_000;

export async function estimateTokens(text: string): Promise<number> {
  if (text.length === 0) return 0;
  const count = await loadTokenCounter();
  if (text.length <= EXACT_CHARS) return count(text);
  const sample = text.slice(0, EXACT_CHARS);
  return Math.round((count(sample) / sample.length) * text.length);
}

/** Keys under which request bodies of all three dialects carry text a model reads. */
const TEXT_KEYS = new Set(['content', 'text', 'prompt', 'input', 'system', 'instructions', 'arguments', 'thinking']);

/**
 * The prompt text of a request body, for estimating input tokens: every string reached through text-bearing
 * keys only (messages[].content[].text, input[], system ...), so image data, block types and URLs beside the
 * text are not counted. Token-id arrays count as their length, returned separately.
 */
export function promptText(body: unknown): { text: string; tokenIds: number } {
  const parts: string[] = [];
  let tokenIds = 0;
  let budget = 10_000_000; // characters; a bound on work, not a limit anyone reaches with a 32 MB body
  const collect = (text: string): void => {
    parts.push(text);
    budget -= text.length;
  };
  const walk = (v: unknown, underText: boolean, inArray: boolean, depth: number): void => {
    if (depth > 64 || budget <= 0) return;
    if (typeof v === 'string') {
      // An inline image or file handed over as a data URL is not text the tokenizer would see.
      if (underText && !v.startsWith('data:')) collect(v);
      return;
    }
    if (Array.isArray(v)) {
      if (underText && v.length > 0 && v.every((x) => typeof x === 'number')) {
        tokenIds += v.length;
        return;
      }
      for (const x of v) walk(x, underText, true, depth + 1);
      return;
    }
    if (v && typeof v === 'object') {
      const entries = Object.entries(v as Record<string, unknown>);
      // Tool-call input/arguments given as an object are tokens too, as the model wrote them (JSON).
      if (underText && !inArray && !entries.some(([k]) => TEXT_KEYS.has(k))) {
        collect(JSON.stringify(v));
        return;
      }
      // Only a text key makes its value text: { type: 'image', source: { data } } in content stays out.
      for (const [k, x] of entries) walk(x, TEXT_KEYS.has(k), false, depth + 1);
    }
  };
  walk(body, false, false, 0);
  return { text: parts.join('\n'), tokenIds };
}

/** Generated text held for an estimate, at most; past it, characters are counted and the estimate scaled. */
const HOLD_CHARS = 256 * 1024;

export interface TextTally {
  /** generated text, as a parsed chunk gave it */
  add(text: string): void;
  /** a chunk left unparsed on the hot path; its text is extracted only if an estimate is needed */
  addRaw(raw: string): void;
  /** estimated tokens of everything added; the same on every call */
  total(): Promise<number>;
  hasText(): boolean;
}

/**
 * Collects generated text as it streams, for an output estimate at the end. Nothing is tokenized or parsed
 * unless total() is called (only when the upstream reported no usage), and memory stays bounded: past
 * HOLD_CHARS the rest is only counted, and the estimate is scaled by the held sample's tokens per character.
 */
export function createTextTally(extract: (raw: string) => string = () => ''): TextTally {
  const texts: string[] = [];
  const raws: string[] = [];
  let textHeld = 0;
  let textOver = 0;
  let rawHeld = 0;
  let rawOver = 0;
  let result: Promise<number> | null = null;
  const scaled = (tokens: number, held: number, over: number): number => (held === 0 ? 0 : over === 0 ? tokens : Math.round((tokens * (held + over)) / held));
  return {
    add(text) {
      if (!text) return;
      if (textHeld + rawHeld < HOLD_CHARS) {
        texts.push(text);
        textHeld += text.length;
      } else textOver += text.length;
    },
    addRaw(raw) {
      if (!raw) return;
      if (textHeld + rawHeld < HOLD_CHARS) {
        raws.push(raw);
        rawHeld += raw.length;
      } else rawOver += raw.length;
    },
    total() {
      result ??= (async () => {
        const fromText = scaled(await estimateTokens(texts.join('')), textHeld, textOver);
        let fromRaw = 0;
        if (raws.length > 0) fromRaw = scaled(await estimateTokens(raws.map(extract).join('')), rawHeld, rawOver);
        return fromText + fromRaw;
      })();
      return result;
    },
    hasText() {
      return textHeld + textOver + rawHeld + rawOver > 0;
    },
  };
}
