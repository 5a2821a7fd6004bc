// Loads the shared wire fixtures and cuts them into chunks the way a network would (whole, byte by byte, random).
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The fixtures folder: LLMTAP_FIXTURES_DIR, else ../shared/fixtures beside the repository. */
export const FIXTURES_DIR = process.env.LLMTAP_FIXTURES_DIR ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/fixtures');

/** The bytes of one fixture, by its path under the fixtures folder (e.g. "openai/chat_nonstream.json"). */
export function loadFixture(rel: string): Buffer {
  return readFileSync(join(FIXTURES_DIR, rel));
}

/** Every fixture file as "folder/file", sorted; README.md is not a fixture. */
export function listFixtures(): string[] {
  const out: string[] = [];
  for (const dir of readdirSync(FIXTURES_DIR, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue;
    for (const f of readdirSync(join(FIXTURES_DIR, dir.name), { withFileTypes: true })) {
      if (f.isFile()) out.push(`${dir.name}/${f.name}`);
    }
  }
  return out.sort();
}

/** A small deterministic PRNG (mulberry32): the same seed gives the same chunking on every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cuts buf into pieces of `size` bytes (the last may be shorter). Pieces are copies, as network chunks are. */
export function splitEvery(buf: Uint8Array, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(Buffer.from(buf.subarray(i, Math.min(buf.length, i + size))));
  return out;
}

/** Cuts buf into pieces of random sizes from min to max bytes, fixed by seed. */
export function splitRandom(buf: Uint8Array, seed: number, min = 1, max = 64): Buffer[] {
  const rnd = seededRandom(seed);
  const out: Buffer[] = [];
  let i = 0;
  while (i < buf.length) {
    const n = min + Math.floor(rnd() * (max - min + 1));
    out.push(Buffer.from(buf.subarray(i, Math.min(buf.length, i + n))));
    i += n;
  }
  return out;
}

export interface Segment {
  /** byte offset of the first byte */
  start: number;
  /** byte offset just past the segment's terminator (\n\n for SSE, \n for NDJSON) */
  end: number;
  /** the segment's text, terminator included */
  text: string;
}

/**
 * The SSE events (terminated by a blank line, "\n\n") or NDJSON lines ("\n") of a fixture, with byte offsets.
 * A trailing piece without its terminator is a last segment of its own.
 */
export function segments(buf: Buffer, kind: 'sse' | 'ndjson'): Segment[] {
  const sep = Buffer.from(kind === 'sse' ? '\n\n' : '\n');
  const out: Segment[] = [];
  let from = 0;
  while (from < buf.length) {
    const at = buf.indexOf(sep, from);
    const end = at === -1 ? buf.length : at + sep.length;
    out.push({ start: from, end, text: buf.subarray(from, end).toString('utf8') });
    from = end;
  }
  return out;
}
