// Incremental line splitting with a cap: an oversized line is skipped and noted, never buffered whole.

export interface LineSplitter {
  push(chunk: Uint8Array): void;
  end(): void;
}

/**
 * Calls onLine for each line (without its \n or \r\n); a line longer than maxChars is dropped and reported.
 * Bytes are decoded up to the chunk's last newline only: a newline byte never sits inside a UTF-8 sequence,
 * so a character split across chunks is always held back whole, with no streaming decoder (which is slow).
 */
export function createLineSplitter(onLine: (line: string) => void, onOversize: (chars: number) => void, maxChars: number): LineSplitter {
  let tailBytes: Buffer | null = null;
  let skipping = false;
  let skipped = 0;

  const emit = (line: string): void => {
    if (line.length > maxChars) {
      onOversize(line.length);
      return;
    }
    onLine(line.charCodeAt(line.length - 1) === 13 ? line.slice(0, -1) : line);
  };

  /** text holds whole lines, each ending in \n */
  const lines = (text: string): void => {
    let from = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', from)) {
      if (skipping) {
        onOversize(skipped + nl - from);
        skipping = false;
        skipped = 0;
      } else {
        emit(text.slice(from, nl));
      }
      from = nl + 1;
    }
  };

  const hold = (bytes: Buffer): void => {
    if (skipping) {
      skipped += bytes.length;
      return;
    }
    const pending = (tailBytes?.length ?? 0) + bytes.length;
    if (pending > maxChars) {
      skipping = true;
      skipped = pending;
      tailBytes = null;
      return;
    }
    // A copy, so that a large upstream chunk is not kept alive by its last few bytes.
    tailBytes = tailBytes ? Buffer.concat([tailBytes, bytes]) : Buffer.from(bytes);
  };

  return {
    push(chunk) {
      let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      const last = buf.lastIndexOf(0x0a);
      if (last === -1) {
        hold(buf);
        return;
      }
      if (tailBytes) {
        buf = Buffer.concat([tailBytes, buf]);
        tailBytes = null;
        const at = buf.lastIndexOf(0x0a);
        lines(buf.toString('utf8', 0, at + 1));
        if (at + 1 < buf.length) hold(buf.subarray(at + 1));
        return;
      }
      lines(buf.toString('utf8', 0, last + 1));
      if (last + 1 < buf.length) hold(buf.subarray(last + 1));
    },
    end() {
      if (skipping) onOversize(skipped);
      else if (tailBytes) emit(tailBytes.toString('utf8'));
      tailBytes = null;
      skipping = false;
    },
  };
}
