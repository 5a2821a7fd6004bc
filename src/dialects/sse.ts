// Incremental Server-Sent Events parser (WHATWG framing), capped: one pass over each chunk's text.
import type { LineSplitter } from './lines.ts';

export interface SseEvent {
  event: string;
  data: string;
}

/**
 * Calls onEvent per dispatched event. The chunk's bytes are decoded only up to its last newline (a newline
 * byte never sits inside a UTF-8 sequence), and lines are walked in place: on the relay path every
 * allocation per line shows in the proxy's throughput. An event or line past maxChars is skipped and noted.
 */
export function createSseParser(onEvent: (ev: SseEvent) => void, onOversize: (chars: number) => void, maxChars: number): LineSplitter {
  let tailBytes: Buffer | null = null;
  let event = '';
  let data: string | null = null;
  let more: string[] | null = null;
  let dataChars = 0;
  let dropped = false;
  let skippingLine = false;
  let skipped = 0;

  const dispatch = (): void => {
    if (data !== null && !dropped) onEvent({ event: event || 'message', data: more ? more.join('\n') : data });
    event = '';
    data = null;
    more = null;
    dataChars = 0;
    dropped = false;
  };

  const addData = (value: string): void => {
    dataChars += value.length;
    if (dataChars > maxChars) {
      if (!dropped) onOversize(dataChars);
      dropped = true;
      data = '';
      more = null;
      return;
    }
    if (dropped) return;
    if (data === null) data = value;
    else (more ??= [data]).push(value);
  };

  /** text holds whole lines only */
  const walk = (text: string): void => {
    const n = text.length;
    // The usual chunk is one whole event, `data: {...}\n\n`, met between events: take its data without the line walk.
    if (
      data === null &&
      event === '' &&
      !dropped &&
      !skippingLine &&
      n - 2 <= maxChars &&
      text.charCodeAt(n - 2) === 10 &&
      text.charCodeAt(n - 3) !== 13 &&
      text.startsWith('data: ') &&
      text.indexOf('\n') === n - 2
    ) {
      onEvent({ event: 'message', data: text.slice(6, n - 2) });
      return;
    }
    let i = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', i)) {
      let end = nl;
      if (end > i && text.charCodeAt(end - 1) === 13) end--;
      if (skippingLine) {
        // The oversized line ends here: report its whole size once.
        onOversize(skipped + end - i);
        skippingLine = false;
        skipped = 0;
      } else if (end === i) {
        dispatch();
      } else if (end - i > maxChars) {
        onOversize(end - i);
        dropped = true;
      } else if (text.startsWith('data:', i)) {
        const v = text.charCodeAt(i + 5) === 32 ? i + 6 : i + 5;
        addData(text.slice(v, end));
      } else if (text.startsWith('event:', i)) {
        const v = text.charCodeAt(i + 6) === 32 ? i + 7 : i + 6;
        event = text.slice(v, end);
      } else if (text.charCodeAt(i) !== 58 /* ':' comment */ && text.slice(i, end) === 'data') {
        addData('');
      }
      i = nl + 1;
    }
  };

  const hold = (bytes: Buffer): void => {
    if (skippingLine) {
      skipped += bytes.length;
      return;
    }
    const pending = (tailBytes?.length ?? 0) + bytes.length;
    if (pending > maxChars) {
      skipped = pending;
      skippingLine = true;
      dropped = true;
      tailBytes = null;
      return;
    }
    // A copy, so that a large upstream chunk is not kept alive by its last few bytes.
    tailBytes = tailBytes ? Buffer.concat([tailBytes, bytes]) : Buffer.from(bytes);
  };

  return {
    push(chunk) {
      let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      if (tailBytes) {
        buf = Buffer.concat([tailBytes, buf]);
        tailBytes = null;
      }
      // Upstreams write whole events, so a chunk nearly always ends in a newline: check that byte before searching.
      const last = buf.length > 0 && buf[buf.length - 1] === 0x0a ? buf.length - 1 : buf.lastIndexOf(0x0a);
      if (last === -1) {
        hold(buf);
        return;
      }
      // No encoding name: toString then decodes UTF-8 without looking the name up, on every chunk.
      walk(buf.toString(undefined, 0, last + 1));
      if (last + 1 < buf.length) hold(buf.subarray(last + 1));
    },
    end() {
      // A stream cut before its final newline or blank line still carried the event's data.
      if (skippingLine) onOversize(skipped);
      else if (tailBytes) walk(tailBytes.toString('utf8') + '\n');
      tailBytes = null;
      skippingLine = false;
      dispatch();
    },
  };
}
