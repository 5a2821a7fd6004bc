// The capture file format (docs/capture-format.md): record shapes, the header, and the one CBOR encoder/decoder pair.
import { Decoder, Encoder } from 'cbor-x';
import type { DialectName, ExchangeRecord, Operation } from '../exchange/record.ts';

export const FORMAT_NAME = 'llmtap-capture';
/** major.minor: a reader accepts any minor of its major (unknown fields and record types are skipped). */
export const FORMAT_VERSION = '1.0';
export const FORMAT_MAJOR = 1;
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

export type CaptureRecord = HeaderRecord | RequestRecord | ResponseRecord | ChunkRecord | EndRecord;
export type ExchangeEvent = RequestRecord | ResponseRecord | ChunkRecord | EndRecord;

// Plain CBOR maps and byte strings (no cbor-x record extension, no typed-array tags): any CBOR decoder reads them.
const encoder = new Encoder({ useRecords: false, tagUint8Array: false, mapsAsObjects: true });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true, copyBuffers: true });

/** One record as one CBOR data item; the bytes are a fresh view that later encodes do not overwrite. */
export function encodeRecord(record: CaptureRecord): Uint8Array {
  return encoder.encode(record);
}

// cbor-x's encode modes: write at the start of its own buffer and hand that buffer back, no copy, no new view.
const REUSE_BUFFER_MODE = 512;
const RESET_BUFFER_MODE = 1024;
type Target = Uint8Array & { start: number; end: number };
const encodeReusing = encoder.encode.bind(encoder) as unknown as (value: unknown, mode: number) => Target;

/** The record's bytes in the encoder's own buffer: valid only until the next encode, so copy them at once. */
export function encodeTransient(record: CaptureRecord): Uint8Array {
  const t = encodeReusing(record, REUSE_BUFFER_MODE | RESET_BUFFER_MODE);
  return t.subarray(t.start, t.end);
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
    throw new CaptureFormatError(`${file} is format ${h.version}, written by a newer llmtap; this reader reads format ${FORMAT_MAJOR}.x: update llmtap to read it`);
  }
  if (major < FORMAT_MAJOR) throw new CaptureFormatError(`${file} is format ${h.version}, older than this reader supports (${FORMAT_MAJOR}.x)`);
  return h as HeaderRecord;
}

// The chunk record is the one written per body chunk: encoded by hand straight into the write queue's block,
// as the same CBOR map the generic encoder would write, with fixed-width numbers.
const CHUNK_HEAD = Buffer.from([0xa7, 0x64, ...Buffer.from('type'), 0x65, ...Buffer.from('chunk'), 0x62, ...Buffer.from('id'), 0x78]);
const KEY_DIR = Buffer.from([0x63, ...Buffer.from('dir')]);
const DIR_VALUE = { request: Buffer.from([0x67, ...Buffer.from('request')]), response: Buffer.from([0x68, ...Buffer.from('response')]) };
const KEY_AT = Buffer.from([0x62, ...Buffer.from('at'), 0xfb]);
const KEY_WALL = Buffer.from([0x64, ...Buffer.from('wall'), 0xfb]);
const KEY_SIZE = Buffer.from([0x64, ...Buffer.from('size'), 0x1a]);
const KEY_DATA = Buffer.from([0x64, ...Buffer.from('data')]);

const TAIL = KEY_AT.length + 8 + KEY_WALL.length + 8 + KEY_SIZE.length + 4 + KEY_DATA.length;

function put(dst: Buffer, src: Buffer, p: number): number {
  for (let i = 0; i < src.length; i++) dst[p + i] = src[i]!;
  return p + src.length;
}

/**
 * The bytes every chunk record of one exchange and direction starts with (type, id, dir), built once per
 * exchange; null when the id is not short ASCII (then use encodeRecord).
 */
export function chunkPrefix(id: string, dir: 'request' | 'response'): Buffer | null {
  if (id.length > 255 || /[^\x00-\x7f]/.test(id)) return null;
  const d = DIR_VALUE[dir];
  const b = Buffer.allocUnsafe(CHUNK_HEAD.length + 1 + id.length + KEY_DIR.length + d.length);
  let p = put(b, CHUNK_HEAD, 0);
  b[p++] = id.length;
  p += b.write(id, p, 'latin1');
  p = put(b, KEY_DIR, p);
  put(b, d, p);
  return b;
}

/** Bytes encodeChunkInto writes for this prefix and data. */
export function chunkLength(prefix: Buffer, data: Uint8Array | null): number {
  return prefix.length + TAIL + (data ? 5 + data.length : 1);
}

/** Writes a chunk record of chunkLength() bytes at p. */
export function encodeChunkInto(b: Buffer, view: DataView, p: number, prefix: Buffer, at: number, wall: number, size: number, data: Uint8Array | null): void {
  b.set(prefix, p);
  p = put(b, KEY_AT, p + prefix.length);
  view.setFloat64(p, at);
  p = put(b, KEY_WALL, p + 8);
  view.setFloat64(p, wall);
  p = put(b, KEY_SIZE, p + 8);
  view.setUint32(p, size);
  p = put(b, KEY_DATA, p + 4);
  if (data) {
    b[p++] = 0x5a;
    view.setUint32(p, data.length);
    b.set(data, p + 4);
  } else b[p] = 0xf6;
}

/** encodeRecord({ type: 'chunk', ... }) by the hand-written path (tests and odd ids). */
export function encodeChunk(id: string, dir: 'request' | 'response', at: number, wall: number, size: number, data: Uint8Array | null): Uint8Array {
  const prefix = chunkPrefix(id, dir);
  if (!prefix || size > 0xffffffff) return encodeRecord({ type: 'chunk', id, dir, at, wall, size, data });
  const b = Buffer.allocUnsafe(chunkLength(prefix, data));
  encodeChunkInto(b, new DataView(b.buffer, b.byteOffset, b.length), 0, prefix, at, wall, size, data);
  return b;
}
