// Usage records as JSON, NDJSON or CSV, produced a slice at a time so a large export never sits whole in memory.
import { Readable } from 'node:stream';
import { USAGE_FIELDS, type UsageRecord } from './record.ts';

export type ExportFormat = 'json' | 'ndjson' | 'csv';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['json', 'ndjson', 'csv'];

export const CONTENT_TYPES: Record<ExportFormat, string> = {
  json: 'application/json; charset=utf-8',
  ndjson: 'application/x-ndjson; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
};

/** Records per piece handed to the socket: big enough to keep syscalls few, small enough to keep memory flat. */
const SLICE = 500;

/** One CSV field (RFC 4180): empty for null, quoted when it holds a comma, quote or line break. */
export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'string' ? v : String(v);
  return /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
}

export const csvRow = (r: UsageRecord): string => USAGE_FIELDS.map((f) => csvCell(r[f])).join(',') + '\r\n';

function* pieces(records: readonly UsageRecord[], keep: (r: UsageRecord) => boolean, format: ExportFormat): Generator<string> {
  if (format === 'csv') yield USAGE_FIELDS.join(',') + '\r\n';
  if (format === 'json') yield '[';
  let first = true;
  let buf: string[] = [];
  for (const r of records) {
    if (!keep(r)) continue;
    if (format === 'csv') buf.push(csvRow(r));
    else if (format === 'ndjson') buf.push(JSON.stringify(r) + '\n');
    else {
      buf.push((first ? '\n' : ',\n') + JSON.stringify(r));
      first = false;
    }
    if (buf.length >= SLICE) {
      yield buf.join('');
      buf = [];
    }
  }
  if (buf.length > 0) yield buf.join('');
  if (format === 'json') yield first ? ']\n' : '\n]\n';
}

/** A stream of the records `keep` accepts; the caller's array is only read, a slice at a time, as the client takes the bytes. */
export function exportStream(records: readonly UsageRecord[], keep: (r: UsageRecord) => boolean, format: ExportFormat): Readable {
  return Readable.from(pieces(records, keep, format), { objectMode: false, highWaterMark: 64 * 1024 });
}
