// Incremental line splitting with a cap: an oversized line is skipped and noted, never buffered whole.

export interface LineSplitter {
  push(chunk: Uint8Array): void;
  end(): void;
}

/** Calls onLine for each line (without its \n or \r\n); a line longer than maxChars is dropped and reported. */
export function createLineSplitter(onLine: (line: string) => void, onOversize: (chars: number) => void, maxChars: number): LineSplitter {
  const decoder = new TextDecoder('utf-8');
  let held = '';
  let skipping = false;
  let skipped = 0;

  const emit = (line: string): void => {
    if (line.length > maxChars) {
      onOversize(line.length);
      return;
    }
    onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
  };

  const feed = (text: string): void => {
    let from = 0;
    for (;;) {
      const nl = text.indexOf('\n', from);
      if (nl === -1) break;
      if (skipping) {
        onOversize(skipped + nl - from);
        skipping = false;
        skipped = 0;
      } else {
        emit(held.length > 0 ? held + text.slice(from, nl) : text.slice(from, nl));
      }
      held = '';
      from = nl + 1;
    }
    const rest = text.length - from;
    if (skipping) {
      skipped += rest;
    } else if (held.length + rest > maxChars) {
      skipping = true;
      skipped = held.length + rest;
      held = '';
    } else if (rest > 0) {
      held += text.slice(from);
    }
  };

  return {
    push(chunk) {
      feed(decoder.decode(chunk, { stream: true }));
    },
    end() {
      feed(decoder.decode());
      if (skipping) onOversize(skipped);
      else if (held.length > 0) emit(held);
      held = '';
      skipping = false;
    },
  };
}
