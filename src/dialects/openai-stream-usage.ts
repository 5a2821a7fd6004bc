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
const LF_LF = Buffer.from('\n\n');
const LF_CRLF = Buffer.from('\n\r\n');
const USAGE = Buffer.from('"usage"');
const USAGE_NULL = /,\s*"usage"\s*:\s*null(?=\s*[,}])|"usage"\s*:\s*null\s*,\s*/;

/**
 * Removes what include_usage added: the `"usage":null` field of every chunk and the final usage-only chunk
 * (`"choices":[]`). Works on whole SSE events; an event never waits for more than its own bytes.
 */
export function createUsageStripper(): ResponseTransform {
  let held: Buffer = Buffer.alloc(0);
  let passthrough = false;

  const rewriteEvent = (event: Buffer): Buffer | null => {
    if (event.indexOf(USAGE) === -1) return event;
    const text = event.toString('utf8');
    const dataAt = text.indexOf('data:');
    if (dataAt === -1) return event;
    if (!USAGE_NULL.test(text)) {
      // usage with a value: drop the chunk only when it is the usage-only chunk include_usage added
      const payload = text.slice(dataAt + 5).trim();
      try {
        const chunk = obj(JSON.parse(payload));
        if (chunk && Array.isArray(chunk.choices) && chunk.choices.length === 0 && obj(chunk.usage)) return null;
      } catch {
        /* not JSON: pass through */
      }
      return event;
    }
    return Buffer.from(text.replace(USAGE_NULL, ''), 'utf8');
  };

  const boundary = (buf: Buffer, from: number): { at: number; len: number } | null => {
    const a = buf.indexOf(LF_LF, from);
    const b = buf.indexOf(LF_CRLF, from);
    if (a === -1 && b === -1) return null;
    if (b === -1 || (a !== -1 && a < b)) return { at: a, len: 2 };
    return { at: b, len: 3 };
  };

  return {
    push(chunk) {
      if (passthrough) return chunk;
      const buf = held.length > 0 ? Buffer.concat([held, chunk]) : chunk;
      const out: Buffer[] = [];
      let from = 0;
      for (let b = boundary(buf, from); b; b = boundary(buf, from)) {
        const end = b.at + b.len;
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
