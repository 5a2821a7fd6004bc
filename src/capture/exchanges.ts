// Groups capture records into exchanges, and the one-row summary of each that the inspector lists, filters and sorts.
import { expandChunks, type ChunkRecord, type EndRecord, type RequestRecord, type ResponseRecord, type CaptureRecord } from './format.ts';

export interface CapturedExchange {
  id: string;
  /** the file its first record was read from */
  file: string;
  request: RequestRecord | null;
  response: ResponseRecord | null;
  /** body chunks in arrival order (both directions, batches taken apart); empty unless the assembler was asked to keep them */
  chunks: ChunkRecord[];
  end: EndRecord | null;
  /** kept whatever the assembler keeps: response chunk count, first and last offsets, longest silence between two */
  responseChunks: number;
  firstChunkAt: number | null;
  lastChunkAt: number | null;
  maxGap: number;
  /** the capture header said bodies were off */
  bodiesOff: boolean;
}

export interface AssemblerOptions {
  /** keep the chunk records (with their bytes) of this exchange; default none */
  keepChunks?: (id: string) => boolean;
  /** called when an exchange's end record arrives */
  onEnd?: (ex: CapturedExchange) => void;
}

export interface Assembler {
  add(record: CaptureRecord, file: string): void;
  /** every exchange seen, in order of first appearance (unfinished ones included) */
  exchanges(): CapturedExchange[];
  /** forgets finished exchanges (a follow that prints as it goes keeps memory bounded) */
  dropFinished(): void;
}

export function createAssembler(opts: AssemblerOptions = {}): Assembler {
  const byId = new Map<string, CapturedExchange>();
  let bodiesOff = false;
  const get = (id: string, file: string): CapturedExchange => {
    let ex = byId.get(id);
    if (!ex) {
      ex = { id, file, request: null, response: null, chunks: [], end: null, responseChunks: 0, firstChunkAt: null, lastChunkAt: null, maxGap: 0, bodiesOff };
      byId.set(id, ex);
    }
    return ex;
  };
  const timeChunk = (ex: CapturedExchange, at: number): void => {
    ex.responseChunks++;
    if (ex.lastChunkAt !== null) ex.maxGap = Math.max(ex.maxGap, at - ex.lastChunkAt);
    ex.firstChunkAt ??= at;
    ex.lastChunkAt = at;
  };
  return {
    add(record, file) {
      switch (record.type) {
        case 'header':
          bodiesOff = record.bodies === false;
          return;
        case 'request':
          get(record.id, file).request = record;
          return;
        case 'response':
          get(record.id, file).response = record;
          return;
        case 'chunk': {
          // Format 1.x: one record per chunk.
          const ex = get(record.id, file);
          if (record.dir === 'response') timeChunk(ex, record.at);
          if (opts.keepChunks?.(record.id)) ex.chunks.push(record);
          return;
        }
        case 'chunks': {
          const ex = get(record.id, file);
          if (record.dir === 'response' && Array.isArray(record.at)) for (const at of record.at) timeChunk(ex, at);
          if (opts.keepChunks?.(record.id)) for (const c of expandChunks(record)) ex.chunks.push(c);
          return;
        }
        case 'end': {
          const ex = get(record.id, file);
          ex.end = record;
          opts.onEnd?.(ex);
          return;
        }
        default:
          // A newer minor version's record type: skipped, as the format promises.
          return;
      }
    },
    exchanges: () => [...byId.values()],
    dropFinished() {
      for (const [id, ex] of byId) if (ex.end) byId.delete(id);
    },
  };
}

/** The row the table, the filters and --json use. */
export interface ExchangeSummary {
  id: string;
  time: string;
  method: string;
  url: string;
  path: string;
  dialect: string;
  upstream: string;
  model: string;
  stream: boolean;
  status: number | null;
  /** the end record's outcome, or 'unfinished' when the capture has none (llmtap stopped, or the file was cut) */
  outcome: string;
  ttfb: number | null;
  ttft: number | null;
  duration: number | null;
  tokensIn: number | null;
  tokensOut: number | null;
  usageSource: string | null;
  bytesIn: number | null;
  bytesOut: number | null;
  traceId: string | null;
  errorType: string | null;
  errorMessage: string | null;
  finishReasons: string[];
  streamComplete: boolean | null;
  chunks: number;
  file: string;
}

export function summarize(ex: CapturedExchange): ExchangeSummary {
  const r = ex.request;
  const e = ex.end;
  const url = e?.url ?? r?.url ?? '';
  return {
    id: ex.id,
    time: e?.time ?? r?.time ?? '',
    method: e?.method ?? r?.method ?? '',
    url,
    path: url.split('?')[0]!,
    dialect: e?.dialect ?? r?.dialect ?? '',
    upstream: e?.upstream.url ?? r?.upstream.url ?? '',
    model: e?.model ?? r?.model ?? 'unknown',
    stream: e?.stream ?? r?.stream ?? false,
    status: e?.status ?? ex.response?.status ?? null,
    outcome: e?.outcome ?? 'unfinished',
    ttfb: e?.timings.ttfb ?? null,
    ttft: e?.timings.ttft ?? null,
    duration: e?.timings.duration ?? null,
    tokensIn: e?.usage.input ?? null,
    tokensOut: e?.usage.output ?? null,
    usageSource: e?.usage.source ?? null,
    bytesIn: e?.bytes.requestIn ?? r?.bodySize ?? null,
    bytesOut: e?.bytes.responseOut ?? null,
    traceId: e?.traceId ?? null,
    errorType: e?.errorType ?? null,
    errorMessage: e?.errorMessage ?? null,
    finishReasons: e?.finishReasons ?? [],
    streamComplete: e ? e.streamComplete : null,
    chunks: ex.responseChunks,
    file: ex.file,
  };
}
