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
    throw new CaptureFormatError(`${file} is format ${h.version}, written by a newer llmtap; this reader reads formats ${OLDEST_MAJOR}.x to ${FORMAT_MAJOR}.x: update llmtap to read it`);
  }
  if (major < OLDEST_MAJOR) throw new CaptureFormatError(`${file} is format ${h.version}, older than this reader supports (${OLDEST_MAJOR}.x to ${FORMAT_MAJOR}.x)`);
  return h as HeaderRecord;
}

// The chunks record is the one written for body bytes: encoded by hand straight into the write queue's block,
// as the same CBOR map the generic encoder would write (keys in the same order), with fixed-width numbers.
const ascii = (s: string): number[] => [...Buffer.from(s, 'latin1')];
const CHUNKS_HEAD = Buffer.from([0xa7, 0x64, ...ascii('type'), 0x66, ...ascii('chunks'), 0x62, ...ascii('id')]);
const KEY_DIR = Buffer.from([0x63, ...ascii('dir')]);
const DIR_VALUE = { request: Buffer.from([0x67, ...ascii('request')]), response: Buffer.from([0x68, ...ascii('response')]) };
const KEY_AT = Buffer.from([0x62, ...ascii('at')]);
const KEY_WALL = Buffer.from([0x64, ...ascii('wall')]);
const KEY_SIZE = Buffer.from([0x64, ...ascii('size')]);
const KEY_DATA = Buffer.from([0x64, ...ascii('data')]);
const KEYS = KEY_AT.length + KEY_WALL.length + KEY_SIZE.length + KEY_DATA.length;

function put(dst: Buffer, src: Buffer, p: number): number {
  for (let i = 0; i < src.length; i++) dst[p + i] = src[i]!;
  return p + src.length;
}

/** Length of a CBOR head (major type and argument) for argument n. */
function headLength(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

function putHead(b: Buffer, view: DataView, p: number, major: number, n: number): number {
  const m = major << 5;
  if (n < 24) b[p++] = m | n;
  else if (n < 0x100) {
    b[p++] = m | 24;
    b[p++] = n;
  } else if (n < 0x10000) {
    b[p++] = m | 25;
    view.setUint16(p, n);
    p += 2;
  } else {
    b[p++] = m | 26;
    view.setUint32(p, n);
    p += 4;
  }
  return p;
}

/**
 * The bytes every chunks record of one exchange and direction starts with (type, id, dir), built once per
 * exchange; null when the id is not short ASCII (then use encodeRecord).
 */
export function chunksPrefix(id: string, dir: 'request' | 'response'): Buffer | null {
  if (id.length > 255 || /[^\x00-\x7f]/.test(id)) return null;
  const d = DIR_VALUE[dir];
  const b = Buffer.allocUnsafe(CHUNKS_HEAD.length + headLength(id.length) + id.length + KEY_DIR.length + d.length);
  let p = put(b, CHUNKS_HEAD, 0);
  p = putHead(b, new DataView(b.buffer, b.byteOffset, b.length), p, 3, id.length);
  p += b.write(id, p, 'latin1');
  p = put(b, KEY_DIR, p);
  put(b, d, p);
  return b;
}

/** One exchange's chunks waiting to be written: per chunk, what the tap appends and nothing more. */
export interface ChunkBatch {
  at: number[];
  wall: number[];
  size: number[];
  /** the chunks themselves (bodies on), not copied until the batch is encoded */
  data: Uint8Array[] | null;
  /** data bytes held */
  bytes: number;
}

export function newBatch(bodies: boolean): ChunkBatch {
  return { at: [], wall: [], size: [], data: bodies ? [] : null, bytes: 0 };
}

/** Bytes encodeChunksInto writes for this prefix and batch. */
export function chunksLength(prefix: Buffer, b: ChunkBatch): number {
  const n = b.at.length;
  const arrays = 3 * headLength(n) + 9 * n + 9 * n + 5 * n;
  if (!b.data) return prefix.length + KEYS + arrays + 1;
  let data = headLength(n);
  for (let i = 0; i < n; i++) data += headLength(b.data[i]!.length) + b.data[i]!.length;
  return prefix.length + KEYS + arrays + data;
}

/** Writes a chunks record of chunksLength() bytes at p: at and wall as 64-bit floats, sizes as 32-bit integers. */
export function encodeChunksInto(buf: Buffer, view: DataView, p: number, prefix: Buffer, b: ChunkBatch): void {
  const n = b.at.length;
  buf.set(prefix, p);
  p = putHead(buf, view, put(buf, KEY_AT, p + prefix.length), 4, n);
  for (let i = 0; i < n; i++, p += 9) {
    buf[p] = 0xfb;
    view.setFloat64(p + 1, b.at[i]!);
  }
  p = putHead(buf, view, put(buf, KEY_WALL, p), 4, n);
  for (let i = 0; i < n; i++, p += 9) {
    buf[p] = 0xfb;
    view.setFloat64(p + 1, b.wall[i]!);
  }
  p = putHead(buf, view, put(buf, KEY_SIZE, p), 4, n);
  for (let i = 0; i < n; i++, p += 5) {
    buf[p] = 0x1a;
    view.setUint32(p + 1, b.size[i]!);
  }
  p = put(buf, KEY_DATA, p);
  if (!b.data) {
    buf[p] = 0xf6;
    return;
  }
  p = putHead(buf, view, p, 4, n);
  for (let i = 0; i < n; i++) {
    const d = b.data[i]!;
    p = putHead(buf, view, p, 2, d.length);
    buf.set(d, p);
    p += d.length;
  }
}

/** The batch as one record (tests, odd ids): by hand when the id allows, else by the generic encoder. */
export function encodeChunks(id: string, dir: 'request' | 'response', b: ChunkBatch): Uint8Array {
  const prefix = chunksPrefix(id, dir);
  if (!prefix || b.size.some((s) => s > 0xffffffff)) {
    return encodeRecord({ type: 'chunks', id, dir, at: b.at, wall: b.wall, size: b.size, data: b.data });
  }
  const out = Buffer.allocUnsafe(chunksLength(prefix, b));
  encodeChunksInto(out, new DataView(out.buffer, out.byteOffset, out.length), 0, prefix, b);
  return out;
}

/** The chunks a chunks record carries, one ChunkRecord each (as format 1.x wrote them). */
export function expandChunks(r: ChunksRecord): ChunkRecord[] {
  const n = Math.min(r.at.length, r.wall.length, r.size.length, r.data ? r.data.length : Infinity);
  const out: ChunkRecord[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = { type: 'chunk', id: r.id, dir: r.dir, at: r.at[i]!, wall: r.wall[i]!, size: r.size[i]!, data: r.data ? r.data[i]! : null };
  return out;
}
