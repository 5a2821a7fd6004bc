// Asks OpenAI-dialect streams for usage (stream_options.include_usage) and hides the answer from clients that did not ask.
import { topLevelMember } from './json-body.ts';
import { obj } from './observe.ts';
import type { BodyRewrite, ResponseTransform } from './types.ts';

const STREAMING_PATHS = new Set(['/v1/chat/completions', '/v1/completions']);

/** The request body to send instead, or null when the client's own request already gets usage (or cannot). */
export function requestStreamUsage(path: string, body: unknown, raw: Buffer): BodyRewrite | null {
  const b = obj(body);
  if (!b || b.stream !== true || !STREAMING_PATHS.has(path)) return null;
  const options = b.stream_options;
  if (obj(options)?.include_usage === true) return null;
  let rewritten: Buffer;
  if (options === undefined) {
    // Insert textually so that every other byte the client sent (number formats, key order) reaches the upstream unchanged.
    let i = 0;
    while (i < raw.length && raw[i] !== 0x7b /* { */) i++;
    let j = i + 1;
    while (j < raw.length && (raw[j] === 0x20 || raw[j] === 0x0a || raw[j] === 0x0d || raw[j] === 0x09)) j++;
    const insert = '"stream_options":{"include_usage":true}' + (raw[j] === 0x7d /* } */ ? '' : ',');
    rewritten = Buffer.concat([raw.subarray(0, i + 1), Buffer.from(insert), raw.subarray(i + 1)]);
  } else {
    const edited = setIncludeUsage(raw.toString('utf8'));
    if (edited === null) return null;
    rewritten = Buffer.from(edited, 'utf8');
  }
  return { body: rewritten, createResponseTransform: createUsageStripper };
}

/** Sets stream_options.include_usage in place, leaving every other byte of the body as the client wrote it. */
function setIncludeUsage(text: string): string | null {
  const member = topLevelMember(text, 'stream_options');
  if (!member) return null;
  const value = text.slice(member.start, member.end);
  const splice = (start: number, end: number, insert: string) => text.slice(0, start) + insert + text.slice(end);
  if (value === 'null') return splice(member.start, member.end, '{"include_usage":true}');
  if (!value.startsWith('{')) return null;
  const inner = topLevelMember(value, 'include_usage');
  if (inner) return splice(member.start + inner.start, member.start + inner.end, 'true');
  const empty = /^\{\s*\}$/.test(value);
  return splice(member.start + 1, member.start + 1, '"include_usage":true' + (empty ? '' : ','));
}

/** Held bytes past which the stripper gives up and passes everything through unchanged. */
const MAX_HELD = 1024 * 1024;
const USAGE = Buffer.from('"usage"');
const USAGE_NULL_COMPACT = Buffer.from(',"usage":null');
const USAGE_NULL = /,\s*"usage"\s*:\s*null(?=\s*[,}])|"usage"\s*:\s*null\s*,\s*/;

const LF_LF = Buffer.from('\n\n');

/** End of the first SSE event in buf at or after from (index past its blank line), or -1. */
function eventEnd(buf: Buffer, from: number, crlf: boolean): number {
  // One native search per event for the usual \n\n; a byte walk only for streams that use \r\n.
  if (!crlf) {
    const at = buf.indexOf(LF_LF, from);
    return at === -1 ? -1 : at + 2;
  }
  for (let i = buf.indexOf(0x0a, from); i !== -1; i = buf.indexOf(0x0a, i + 1)) {
    const next = buf[i + 1];
    if (next === 0x0a) return i + 2;
    if (next === 0x0d && buf[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

/**
 * Removes what include_usage added: the `"usage":null` field of every chunk and the final usage-only chunk
 * (`"choices":[]`). Works on whole SSE events; an event never waits for more than its own bytes.
 */
export function createUsageStripper(): ResponseTransform {
  let held: Buffer = Buffer.alloc(0);
  let passthrough = false;
  let crlf: boolean | null = null;

  const rewriteEvent = (event: Buffer): Buffer | null => {
    const at = event.indexOf(USAGE);
    if (at === -1) return event;
    // The common case, OpenAI's compact JSON: cut the bytes out without a round trip through a string.
    const compact = event.indexOf(USAGE_NULL_COMPACT);
    if (compact !== -1) {
      const after = event[compact + USAGE_NULL_COMPACT.length];
      if (after === 0x2c /* , */ || after === 0x7d /* } */) return Buffer.concat([event.subarray(0, compact), event.subarray(compact + USAGE_NULL_COMPACT.length)]);
    }
    const text = event.toString('utf8');
    if (USAGE_NULL.test(text)) return Buffer.from(text.replace(USAGE_NULL, ''), 'utf8');
    // usage with a value: drop the chunk only when it is the usage-only chunk include_usage added
    const dataAt = text.indexOf('data:');
    if (dataAt === -1) return event;
    try {
      const chunk = obj(JSON.parse(text.slice(dataAt + 5).trim()));
      if (chunk && Array.isArray(chunk.choices) && chunk.choices.length === 0 && obj(chunk.usage)) return null;
    } catch {
      /* not JSON: pass through */
    }
    return event;
  };

  return {
    push(chunk) {
      if (passthrough) return chunk;
      const buf = held.length > 0 ? Buffer.concat([held, chunk]) : chunk;
      if (crlf === null) {
        // The first line ending tells the framing; until one arrives, the walk handles both.
        const nl = buf.indexOf(0x0a);
        if (nl !== -1) crlf = nl > 0 && buf[nl - 1] === 0x0d;
      }
      const walk = crlf ?? true;
      const out: Buffer[] = [];
      let from = 0;
      for (let end = eventEnd(buf, from, walk); end !== -1; end = eventEnd(buf, from, walk)) {
        const ev = rewriteEvent(buf.subarray(from, end));
        if (ev) out.push(ev);
        from = end;
      }
      held = buf.subarray(from);
      if (held.length > MAX_HELD) {
        passthrough = true;
        out.push(held);
        held = Buffer.alloc(0);
      }
      return out.length === 1 ? out[0]! : Buffer.concat(out);
    },
    end() {
      const rest = held;
      held = Buffer.alloc(0);
      if (rest.length === 0 || passthrough) return rest;
      return rewriteEvent(rest) ?? Buffer.alloc(0);
    },
  };
}
