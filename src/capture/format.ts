// The capture file format (docs/capture-format.md): record shapes, the header, and the one CBOR encoder/decoder pair.
import { Decoder, Encoder } from 'cbor-x';
import type { DialectName, ExchangeRecord, Operation } from '../exchange/record.ts';

export const FORMAT_NAME = 'llmtap-capture';
/** major.minor: a reader accepts any minor of its major (unknown fields and record types are skipped). */
export const FORMAT_VERSION = '2.0';
export const FORMAT_MAJOR = 2;
/** the oldest major this reader still reads (1.x wrote one `chunk` record per chunk) */
export const OLDEST_MAJOR = 1;
/** what a header value says in place of a credential */
export const REDACTED = '[redacted]';
/** capture file names: llmtap-<UTC time>-<pid>-<sequence>.cbor, so a name sort is a time sort */
export const FILE_PATTERN = /^llmtap-\d{8}T\d{9}Z-\d+-\d+\.cbor$/;

export type Headers = Record<string, string | string[]>;

/** First record of every file. */
export interface HeaderRecord {
  type: 'header';
  format: typeof FORMAT_NAME;
  version: string;
  /** ISO 8601 time the file was started */
  created: string;
  host: string;
  pid: number;
  /** llmtap's own version */
  llmtap: string;
  /** false when LLMTAP_CAPTURE_BODIES=off: no body bytes in this file */
  bodies: boolean;
  /** header names whose values were replaced by REDACTED */
  redacted: string[];
  /** 1 for the first file this process wrote, then 2, 3 ... */
  sequence: number;
}

/** The request as forwarded to the upstream. */
export interface RequestRecord {
  type: 'request';
  id: string;
  /** ISO 8601 time the request arrived */
  time: string;
  /** wall clock (ms since the epoch) when the record was made */
  wall: number;
  method: string;
  /** path and query as the client sent them */
  url: string;
  dialect: DialectName;
  upstream: { name: string; url: string };
  model: string;
  stream: boolean;
  operation: Operation;
  headers: Headers;
  /** the body bytes as forwarded; null without a body or with bodies off */
  body: Uint8Array | null;
  bodySize: number;
}

export interface ResponseRecord {
  type: 'response';
  id: string;
  /** ms since the exchange started (monotonic) */
  at: number;
  wall: number;
  status: number;
  headers: Headers;
}

/** One body chunk: what a reader hands on for each entry of a `chunks` record (and format 1.x's own record). */
export interface ChunkRecord {
  type: 'chunk';
  id: string;
  dir: 'request' | 'response';
  /** ms since the exchange started (monotonic clock): chunks of one exchange are in order */
  at: number;
  /** wall clock, ms since the epoch */
  wall: number;
  size: number;
  /** the bytes as relayed; null with bodies off, and for the request chunk (its bytes are the request record's body) */
  data: Uint8Array | null;
}

/**
 * Body chunks of one exchange and direction in arrival order, written together: at the exchange's end, and
 * earlier once the batch passes BATCH_BYTES or BATCH_MS. Entry i of each array belongs to chunk i.
 */
export interface ChunksRecord {
  type: 'chunks';
  id: string;
  dir: 'request' | 'response';
  /** ms since the exchange started (monotonic clock) */
  at: number[];
  /** wall clock, ms since the epoch */
  wall: number[];
  size: number[];
  /** the bytes as relayed; null with bodies off, and for request chunks (their bytes are the request record's body) */
  data: Uint8Array[] | null;
}

/** A batch is written once its bytes pass this (bounds memory per exchange, and what a crash can lose) ... */
export const BATCH_BYTES = 64 * 1024;
/** ... or once its first chunk is this old (ms), so a long stream reaches the disk as it goes. */
export const BATCH_MS = 250;

export interface EndRecord {
  type: 'end';
  id: string;
  wall: number;
  time: string;
  method: string;
  url: string;
  dialect: DialectName;
  upstream: { name: string; url: string };
  operation: Operation;
  model: string;
  responseModel: string | null;
  responseId: string | null;
  stream: boolean;
  status: number | null;
  outcome: ExchangeRecord['outcome'];
  errorType: string | null;
  errorMessage: string | null;
  finishReasons: string[];
  streamComplete: boolean;
  timings: ExchangeRecord['timings'];
  usage: ExchangeRecord['usage'];
  bytes: ExchangeRecord['bytes'];
  traceId: string | null;
  usageInjected: boolean;
  /** records of this exchange the capture dropped (queue full or disk failing): its chunks are incomplete */
  dropped: number;
}

export type CaptureRecord = HeaderRecord | RequestRecord | ResponseRecord | ChunksRecord | ChunkRecord | EndRecord;
export type ExchangeEvent = RequestRecord | ResponseRecord | ChunksRecord | ChunkRecord | EndRecord;

// Plain CBOR maps and byte strings (no cbor-x record extension, no typed-array tags): any CBOR decoder reads them.
const encoder = new Encoder({ useRecords: false, tagUint8Array: false, mapsAsObjects: true });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true, copyBuffers: true });

/** One record as one CBOR data item; the bytes are a fresh view that later encodes do not overwrite. */
export function encodeRecord(record: CaptureRecord): Uint8Array {
  return encoder.encode(record);
}

/** Decodes one whole CBOR data item. */
export function decodeItem(bytes: Uint8Array): unknown {
  return decoder.decode(bytes);
}

export function headerRecord(init: Omit<HeaderRecord, 'type' | 'format' | 'version'>): HeaderRecord {
  return { type: 'header', format: FORMAT_NAME, version: FORMAT_VERSION, ...init };
}

/** The file name for a capture started at `date` by process `pid`. */
export function captureFileName(date: Date, pid: number, sequence: number): string {
  const stamp = date.toISOString().replace(/[-:.]/g, '');
  return `llmtap-${stamp}-${pid}-${String(sequence).padStart(4, '0')}.cbor`;
}

/** A file that is not a capture this reader understands. */
export class CaptureFormatError extends Error {
  readonly code = 'LLMTAP_CAPTURE_FORMAT';
}

/** Checks a file's first item; throws CaptureFormatError naming the file and what is wrong. */
export function checkHeader(item: unknown, file: string): HeaderRecord {
  const h = item as Partial<HeaderRecord> | null;
  if (!h || typeof h !== 'object' || h.format !== FORMAT_NAME) {
    throw new CaptureFormatError(`${file} is not an llmtap capture (its first record does not name the format "${FORMAT_NAME}")`);
  }
  const major = Number(String(h.version ?? '').split('.')[0]);
  if (!Number.isInteger(major)) throw new CaptureFormatError(`${file}: capture header has no valid version (${JSON.stringify(h.version)})`);
  if (major > FORMAT_MAJOR) {
    throw new CaptureFormatError(`${file} is format ${h.version}, written by a newer llmtap; this reader reads formats ${OLDEST_MAJOR}.x to ${FORMAT_MAJOR}.x: update llmtap to read it`);
  }
  if (major < OLDEST_MAJOR) throw new CaptureFormatError(`${file} is format ${h.version}, older than this reader supports (${OLDEST_MAJOR}.x to ${FORMAT_MAJOR}.x)`);
  return h as HeaderRecord;
}

/** The chunks a chunks record carries, one ChunkRecord each (as format 1.x wrote them). */
export function expandChunks(r: ChunksRecord): ChunkRecord[] {
  const n = Math.min(r.at.length, r.wall.length, r.size.length, r.data ? r.data.length : Infinity);
  const out: ChunkRecord[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = { type: 'chunk', id: r.id, dir: r.dir, at: r.at[i]!, wall: r.wall[i]!, size: r.size[i]!, data: r.data ? r.data[i]! : null };
  return out;
}
