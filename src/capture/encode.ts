// The records written for every exchange (request, response, chunks, end), encoded by hand: the same CBOR maps as format.ts describes, at a fraction of a generic encoder's cost.
import type { ExchangeStart } from '../exchange/bus.ts';
import type { ByteCounts, ExchangeRecord, Timings, TokenUsage } from '../exchange/record.ts';
import { createOut, head, key, mapStart, nil, num, numField, raw, room, text, textField, value, type Out } from './cbor-write.ts';
import { writeHeaders, type RawHeaders, type RedactSet } from './redact.ts';
import { keptPart, writeKept, type KeptPart } from './repeats.ts';

// Timings, usage and byte counts as maps of known fields, read by name (monomorphic loads, no key iteration).
// Each key list is checked complete by the compiler: a field added to the record is a field written.
const TIMINGS = keys<Timings>({ ttfb: 0, ttft: 1, duration: 2, timePerOutputToken: 3, overhead: 4 });
const USAGE = keys<TokenUsage>({ input: 0, output: 1, total: 2, cacheRead: 3, cacheWrite: 4, reasoning: 5, source: 6 });
const BYTES = keys<ByteCounts>({ requestIn: 0, requestOut: 1, responseIn: 2, responseOut: 3 });

function keys<T>(order: { [K in keyof T]-?: number }): Buffer[] {
  const names = Object.keys(order).sort((a, b) => order[a as keyof T] - order[b as keyof T]);
  return names.map((n, i) => (i === 0 ? mapStart(names.length, key(n)) : key(n)));
}

function timings(o: Out, t: Timings | null | undefined): void {
  if (!t) return value(o, t);
  raw(o, TIMINGS[0]!);
  numField(o, t.ttfb);
  raw(o, TIMINGS[1]!);
  numField(o, t.ttft);
  raw(o, TIMINGS[2]!);
  numField(o, t.duration);
  raw(o, TIMINGS[3]!);
  numField(o, t.timePerOutputToken);
  raw(o, TIMINGS[4]!);
  numField(o, t.overhead);
}

function usage(o: Out, u: TokenUsage | null | undefined): void {
  if (!u) return value(o, u);
  raw(o, USAGE[0]!);
  numField(o, u.input);
  raw(o, USAGE[1]!);
  numField(o, u.output);
  raw(o, USAGE[2]!);
  numField(o, u.total);
  raw(o, USAGE[3]!);
  numField(o, u.cacheRead);
  raw(o, USAGE[4]!);
  numField(o, u.cacheWrite);
  raw(o, USAGE[5]!);
  numField(o, u.reasoning);
  raw(o, USAGE[6]!);
  textField(o, u.source);
}

function byteCounts(o: Out, b: ByteCounts | null | undefined): void {
  if (!b) return value(o, b);
  raw(o, BYTES[0]!);
  numField(o, b.requestIn);
  raw(o, BYTES[1]!);
  numField(o, b.requestOut);
  raw(o, BYTES[2]!);
  numField(o, b.responseIn);
  raw(o, BYTES[3]!);
  numField(o, b.responseOut);
}

const REQUEST_START = mapStart(14, key('type', 'request'), key('id'));
const K = {
  time: key('time'),
  wall: key('wall'),
  method: key('method'),
  url: key('url'),
  dialect: key('dialect'),
  upstream: key('upstream'),
  model: key('model'),
  stream: key('stream'),
  operation: key('operation'),
  headers: key('headers'),
  body: key('body'),
  bodySize: key('bodySize'),
  at: key('at'),
  status: key('status'),
  responseModel: key('responseModel'),
  responseId: key('responseId'),
  outcome: key('outcome'),
  errorType: key('errorType'),
  errorMessage: key('errorMessage'),
  finishReasons: key('finishReasons'),
  streamComplete: key('streamComplete'),
  timings: key('timings'),
  usage: key('usage'),
  bytes: key('bytes'),
  traceId: key('traceId'),
  usageInjected: key('usageInjected'),
  dropped: key('dropped'),
};
const UPSTREAM_NAME = mapStart(2, key('name'));
const K_URL = key('url');

// Each record writes first what is new every time (id, times), then the fields consecutive exchanges mostly share,
// kept as last written (repeats.ts), then the rest. The order of a map's pairs carries no meaning in the format.
const requestCommon = keptPart();
const endCommon = keptPart();
const requestHeaders = keptPart();
const responseHeaders = keptPart();

/** The upstream among a part's values: [name, url] for the {name, url} object, anything else as it is. */
function upstreamValue(u: { name: string; url: string } | null | undefined): unknown {
  return u !== null && typeof u === 'object' ? [u.name, u.url] : u;
}

/** A part's fields, written from its values alone (so keeping the bytes by the values is safe); `upstream` is upstreamValue()'s. */
function writeFields(o: Out, values: unknown[], keys: readonly Buffer[]): void {
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const v = values[i];
    raw(o, k);
    if (k === K.upstream && Array.isArray(v)) {
      raw(o, UPSTREAM_NAME);
      textField(o, v[0]);
      raw(o, K_URL);
      textField(o, v[1]);
    } else value(o, v);
  }
}

const REQUEST_COMMON = [K.method, K.url, K.dialect, K.upstream, K.model, K.stream, K.operation];
const END_COMMON = [K.method, K.url, K.dialect, K.upstream, K.operation, K.model, K.responseModel, K.stream, K.status, K.outcome, K.errorType, K.errorMessage, K.finishReasons, K.streamComplete, K.usageInjected];

/** The header map with its key; its bytes depend on the names and values in order, and on what is redacted. */
function headersField(o: Out, h: RawHeaders, redacted: RedactSet, kept: KeptPart): void {
  const values: unknown[] = [redacted];
  for (const name in h) {
    const v = h[name];
    if (v !== undefined) values.push(name, v);
  }
  writeKept(o, kept, values, writeHeadersField, { h, redacted });
}

function writeHeadersField(o: Out, _values: unknown[], a: { h: RawHeaders; redacted: RedactSet }): void {
  raw(o, K.headers);
  writeHeaders(o, a.h, a.redacted);
}

/** The request record (format.ts RequestRecord) from the relay's start event; bytes at o.buf[0, o.p). */
export function writeRequest(o: Out, s: ExchangeStart, wall: number, bodies: boolean, redacted: RedactSet): void {
  raw(o, REQUEST_START);
  textField(o, s.id);
  raw(o, K.time);
  textField(o, s.startedAt);
  raw(o, K.wall);
  numField(o, wall);
  writeKept(o, requestCommon, [s.method, s.url, s.dialect, upstreamValue(s.upstream), s.model, s.stream, s.operation], writeFields, REQUEST_COMMON);
  headersField(o, s.requestHeaders, redacted, requestHeaders);
  raw(o, K.body);
  const body = s.requestBody;
  if (bodies && body) {
    head(o, 2, body.length);
    raw(o, body);
  } else nil(o);
  raw(o, K.bodySize);
  num(o, body?.length ?? 0);
}

const RESPONSE_START = mapStart(6, key('type', 'response'), key('id'));

/** The response record (format.ts ResponseRecord). */
export function writeResponse(o: Out, id: string, at: number, wall: number, status: number, headers: RawHeaders, redacted: RedactSet): void {
  raw(o, RESPONSE_START);
  textField(o, id);
  raw(o, K.at);
  numField(o, at);
  raw(o, K.wall);
  numField(o, wall);
  raw(o, K.status);
  numField(o, status);
  headersField(o, headers, redacted, responseHeaders);
}

const END_START = mapStart(25, key('type', 'end'), key('id'));

/** The end record (format.ts EndRecord) from the exchange's record. */
export function writeEnd(o: Out, r: ExchangeRecord, wall: number, dropped: number): void {
  raw(o, END_START);
  textField(o, r.id);
  raw(o, K.wall);
  numField(o, wall);
  raw(o, K.time);
  textField(o, r.startedAt);
  const values = [r.method, r.url, r.dialect, upstreamValue(r.upstream), r.operation, r.model, r.responseModel, r.stream, r.status, r.outcome, r.errorType, r.errorMessage, r.finishReasons, r.streamComplete, r.usageInjected];
  writeKept(o, endCommon, values, writeFields, END_COMMON);
  raw(o, K.responseId);
  textField(o, r.responseId);
  raw(o, K.timings);
  timings(o, r.timings);
  raw(o, K.usage);
  usage(o, r.usage);
  raw(o, K.bytes);
  byteCounts(o, r.bytes);
  raw(o, K.traceId);
  textField(o, r.traceId);
  raw(o, K.dropped);
  numField(o, dropped);
}

/** One exchange's chunks waiting to be written: per chunk, what the tap appends and nothing more. */
export interface ChunkBatch {
  at: number[];
  size: number[];
  /** the chunks themselves (bodies on), not copied until the batch is encoded */
  data: Uint8Array[] | null;
  /**
   * chunk i arrived at wall-clock time wallOffset + at[i] (ms since the epoch): the exchange's wall clock at its
   * start plus the monotonic offset, so a chunk costs no clock read of its own
   */
  wallOffset: number;
  /** bytes the batch will take, roughly: data plus a fixed amount per chunk (for the BATCH_BYTES limit) */
  bytes: number;
}

export function newBatch(bodies: boolean, wallOffset: number): ChunkBatch {
  return { at: [], size: [], data: bodies ? [] : null, wallOffset, bytes: 0 };
}

// The chunks record: at and wall always as 64-bit floats, sizes as the smallest integer that holds them.
const CHUNKS_START = mapStart(7, key('type', 'chunks'), key('id'));
const DIR = { request: key('dir', 'request'), response: key('dir', 'response') };
const K_AT = key('at');
const K_WALL = key('wall');
const K_SIZE = key('size');
const K_DATA = key('data');

/** The batch as one chunks record (format.ts ChunksRecord). */
export function writeChunks(o: Out, id: string, dir: 'request' | 'response', b: ChunkBatch): void {
  const n = b.at.length;
  raw(o, CHUNKS_START);
  text(o, id);
  raw(o, DIR[dir]);
  raw(o, K_AT);
  head(o, 4, n);
  floats(o, b.at, n, 0);
  raw(o, K_WALL);
  head(o, 4, n);
  floats(o, b.at, n, b.wallOffset);
  raw(o, K_SIZE);
  head(o, 4, n);
  for (let i = 0; i < n; i++) num(o, b.size[i]!);
  raw(o, K_DATA);
  if (!b.data) return nil(o);
  head(o, 4, n);
  for (let i = 0; i < n; i++) {
    const d = b.data[i]!;
    head(o, 2, d.length);
    raw(o, d);
  }
}

/** xs[i] + plus, each as a 64-bit float. */
function floats(o: Out, xs: number[], n: number, plus: number): void {
  room(o, 9 * n);
  const { buf, view } = o;
  let p = o.p;
  for (let i = 0; i < n; i++, p += 9) {
    buf[p] = 0xfb;
    view.setFloat64(p + 1, xs[i]! + plus);
  }
  o.p = p;
}

/** The batch as one record in a buffer of its own (tests, lone chunks). */
export function encodeChunks(id: string, dir: 'request' | 'response', b: ChunkBatch): Uint8Array {
  const o = createOut(256);
  writeChunks(o, id, dir, b);
  return Buffer.from(o.buf.subarray(0, o.p));
}
