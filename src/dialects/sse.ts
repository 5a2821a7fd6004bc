// Incremental Server-Sent Events parser (WHATWG framing) over the capped line splitter.
import { createLineSplitter, type LineSplitter } from './lines.ts';

export interface SseEvent {
  event: string;
  data: string;
}

export function createSseParser(onEvent: (ev: SseEvent) => void, onOversize: (chars: number) => void, maxChars: number): LineSplitter {
  let event = '';
  let data: string[] = [];
  let dataChars = 0;
  let dropped = false;

  const dispatch = (): void => {
    if (data.length > 0 && !dropped) onEvent({ event: event || 'message', data: data.join('\n') });
    event = '';
    data = [];
    dataChars = 0;
    dropped = false;
  };

  const onLine = (line: string): void => {
    if (line === '') return dispatch();
    if (line.charCodeAt(0) === 58 /* ':' comment */) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') {
      dataChars += value.length;
      // Many data lines can add up to one huge event: hold at most maxChars of it.
      if (dataChars > maxChars) {
        if (!dropped) onOversize(dataChars);
        dropped = true;
        data = [];
        return;
      }
      if (!dropped) data.push(value);
    } else if (field === 'event') {
      event = value;
    }
  };

  const lines = createLineSplitter(onLine, (n) => {
    dropped = true;
    onOversize(n);
  }, maxChars);
  return {
    push: (chunk) => lines.push(chunk),
    end() {
      lines.end();
      // A stream cut before its blank line still carried the event's data.
      dispatch();
    },
  };
}
