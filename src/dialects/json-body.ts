// Reads fields from a non-streamed JSON body in bounded memory: whole when small, head and tail when large.

export interface JsonBodyCollector {
  push(chunk: Uint8Array): void;
  /** the parsed body when it was small enough; otherwise a view that finds top-level-looking keys in head and tail */
  end(): JsonBodyView;
}

export interface JsonBodyView {
  /** the whole parsed body, or undefined when it was too large to hold (or did not parse) */
  whole: unknown;
  /** value of the first `"key":` in the head, else the last in the tail; undefined when absent or cut */
  find(key: string): unknown;
  truncated: boolean;
  parseError: string | null;
}

const WHOLE_LIMIT = 1024 * 1024;
const EDGE = 64 * 1024;

export function createJsonBodyCollector(): JsonBodyCollector {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let head: Buffer | null = null;
  let tail: Uint8Array[] = [];
  let tailSize = 0;

  return {
    push(chunk) {
      size += chunk.length;
      if (head === null && size <= WHOLE_LIMIT) {
        chunks.push(chunk);
        return;
      }
      if (head === null) {
        // Crossing the limit: keep the first EDGE bytes, then a rolling tail.
        const all = Buffer.concat([...chunks, chunk]);
        chunks.length = 0;
        head = Buffer.from(all.subarray(0, EDGE)); // a copy: a view would keep the whole joined buffer alive
        tail = [Buffer.from(all.subarray(Math.max(EDGE, all.length - EDGE)))];
        tailSize = tail[0]!.length;
        return;
      }
      tail.push(chunk);
      tailSize += chunk.length;
      while (tailSize - tail[0]!.length >= EDGE) tailSize -= tail.shift()!.length;
    },
    end() {
      if (head === null) {
        const text = (chunks.length === 1 ? Buffer.from(chunks[0]!.buffer, chunks[0]!.byteOffset, chunks[0]!.byteLength) : Buffer.concat(chunks)).toString('utf8');
        chunks.length = 0;
        try {
          const whole: unknown = JSON.parse(text);
          return { whole, truncated: false, parseError: null, find: (k) => (isObject(whole) ? whole[k] : undefined) };
        } catch (err) {
          return { whole: undefined, truncated: false, parseError: (err as Error).message, find: () => undefined };
        }
      }
      const headText = head.toString('utf8');
      const tailText = Buffer.concat(tail).toString('utf8');
      return {
        whole: undefined,
        truncated: true,
        parseError: null,
        find: (k) => valueAfterKey(headText, k, 'first') ?? valueAfterKey(tailText, k, 'last'),
      };
    },
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Finds `"key"\s*:` in text and parses the JSON value after it, by bracket matching. */
export function valueAfterKey(text: string, key: string, which: 'first' | 'last'): unknown {
  const needle = JSON.stringify(key);
  let at = which === 'first' ? text.indexOf(needle) : text.lastIndexOf(needle);
  for (let tries = 0; at !== -1 && tries < 8; tries++) {
    let i = at + needle.length;
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (text[i] === ':') {
      const end = valueEnd(text, i + 1);
      if (end !== -1) {
        try {
          return JSON.parse(text.slice(i + 1, end));
        } catch {
          /* a key-like string inside other text; try the next occurrence */
        }
      }
    }
    at = which === 'first' ? text.indexOf(needle, at + 1) : text.lastIndexOf(needle, at - 1);
  }
  return undefined;
}

function valueEnd(text: string, from: number): number {
  let i = from;
  while (i < text.length && /\s/.test(text[i]!)) i++;
  const c = text[i];
  if (c === '"') {
    for (let j = i + 1; j < text.length; j++) {
      if (text[j] === '\\') j++;
      else if (text[j] === '"') return j + 1;
    }
    return -1;
  }
  if (c === '{' || c === '[') {
    let depth = 0;
    let inString = false;
    for (let j = i; j < text.length; j++) {
      const ch = text[j];
      if (inString) {
        if (ch === '\\') j++;
        else if (ch === '"') inString = false;
      } else if (ch === '"') inString = true;
      else if (ch === '{' || ch === '[') depth++;
      else if (ch === '}' || ch === ']') {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return -1;
  }
  const m = /^[^,}\]\s]+/.exec(text.slice(i, i + 64));
  return m ? i + m[0].length : -1;
}

/** Where the value of a top-level key of a JSON object text starts and ends, for byte-preserving edits. */
export function topLevelMember(text: string, key: string): { start: number; end: number } | null {
  let i = text.indexOf('{');
  if (i === -1) return null;
  i++;
  for (let guard = 0; guard < 100_000 && i < text.length; guard++) {
    while (i < text.length && /[\s,]/.test(text[i]!)) i++;
    if (text[i] !== '"') return null;
    const keyEnd = valueEnd(text, i);
    if (keyEnd === -1) return null;
    const name: unknown = JSON.parse(text.slice(i, keyEnd));
    i = keyEnd;
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (text[i] !== ':') return null;
    i++;
    while (i < text.length && /\s/.test(text[i]!)) i++;
    const end = valueEnd(text, i);
    if (end === -1) return null;
    if (name === key) return { start: i, end };
    i = end;
  }
  return null;
}
