// `npm run inspect -- <file-or-dir>` (bin llmtap-inspect): lists, shows, filters, checks and exports CBOR wire captures.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createAssembler, summarize, type CapturedExchange, type ExchangeSummary } from '../src/capture/exchanges.ts';
import { CaptureFormatError } from '../src/capture/format.ts';
import { toHar } from '../src/capture/har.ts';
import { DEFAULT_THRESHOLDS, detectIssues, type Issue } from '../src/capture/issues.ts';
import { captureFiles, readCapture, type CaptureItem } from '../src/capture/reader.ts';
import { generatedText, requestText, responseBytes, decodedBody, streamEvents, bodyKind } from '../src/capture/reassemble.ts';
import { statsByModel } from '../src/capture/stats.ts';

const USAGE = `Usage: npm run inspect -- [options] [file-or-dir]     (also: llmtap-inspect [options] [file-or-dir])

Reads llmtap's CBOR wire captures (LLMTAP_CAPTURE=on): a capture file, or a folder of them (default ./captures).

  (no option)            a table, one row per exchange
  --show <id>            one exchange in full: request, response head, stream events with their times, generated text
  --json                 NDJSON, one object per exchange
  --filter <k=v>         keep matching exchanges; repeat or comma-separate, all must match:
                           model=<name or glob*>  status=<429|4xx|>=400>  outcome=<ok|client_aborted|...>
                           path=<prefix>  since=<ISO time|30s|15m|2h|1d ago>  until=<same>
  --last <n>             only the newest n exchanges (after filtering)
  --detect-issues        one line per problem: truncated streams, upstream errors, rate limits, client aborts,
                         missing usage, slow first chunk, long gaps, requests with no response
    --slow-ms <ms>       first chunk slower than this is reported (default ${DEFAULT_THRESHOLDS.slowFirstChunkMs})
    --gap-ms <ms>        silence between chunks longer than this is reported (default ${DEFAULT_THRESHOLDS.gapMs})
  --stats                count and p50/p95/p99 of ttft and duration per model
  --har <out.har>        write a HAR 1.2 file (open it in a browser's network panel)
  --follow               keep reading as llmtap writes (table, --json or --detect-issues); Ctrl-C to stop
  --color / --no-color   colours (default: on a terminal only, and not with NO_COLOR)
  --help
`;

class UsageError extends Error {}
class InputError extends Error {}

interface Options {
  path: string;
  show: string | null;
  json: boolean;
  filters: Filter[];
  last: number | null;
  issues: boolean;
  slowMs: number;
  gapMs: number;
  stats: boolean;
  har: string | null;
  follow: boolean;
  color: boolean;
}

type Filter = (s: ExchangeSummary) => boolean;

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function parseTime(value: string, key: string): number {
  const rel = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)$/.exec(value.trim());
  if (rel) return Date.now() - Number(rel[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[rel[2] as 's' | 'm' | 'h' | 'd'];
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new UsageError(`--filter ${key}=${value}: expected an ISO time (2025-01-31T12:00:00Z) or an age like 15m, 2h, 1d`);
  return t;
}

function parseFilter(expr: string): Filter[] {
  const out: Filter[] = [];
  for (const part of expr.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([a-z]+)\s*(=|!=)\s*(.*)$/.exec(part);
    if (!m) throw new UsageError(`--filter ${part}: expected key=value (model, status, outcome, path, since, until)`);
    const [, key, op, value] = m as unknown as [string, string, string, string];
    let f: Filter;
    switch (key) {
      case 'model': {
        const re = new RegExp(`^${value.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
        f = (s) => re.test(s.model);
        break;
      }
      case 'status': {
        const cls = /^([1-5])xx$/i.exec(value);
        const cmp = /^(>=|<=|>|<)?\s*(\d{3})$/.exec(value);
        if (cls) f = (s) => s.status !== null && Math.floor(s.status / 100) === Number(cls[1]);
        else if (cmp) {
          const n = Number(cmp[2]);
          const o = cmp[1] ?? '=';
          f = (s) => s.status !== null && (o === '>=' ? s.status >= n : o === '<=' ? s.status <= n : o === '>' ? s.status > n : o === '<' ? s.status < n : s.status === n);
        } else throw new UsageError(`--filter status=${value}: expected a status (429), a class (5xx) or a comparison (>=400)`);
        break;
      }
      case 'outcome':
        f = (s) => s.outcome === value;
        break;
      case 'path':
        f = (s) => s.path.startsWith(value);
        break;
      case 'since': {
        const t = parseTime(value, key);
        f = (s) => Date.parse(s.time) >= t;
        break;
      }
      case 'until': {
        const t = parseTime(value, key);
        f = (s) => Date.parse(s.time) <= t;
        break;
      }
      default:
        throw new UsageError(`--filter ${key}: unknown key (model, status, outcome, path, since, until)`);
    }
    out.push(op === '!=' ? (s) => !f(s) : f);
  }
  return out;
}

function positiveInt(name: string, raw: string | undefined, fallback: number | null): number | null {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} ${raw}: expected a whole number`);
  return n;
}

function parseOptions(argv: string[]): Options | null {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        show: { type: 'string' },
        json: { type: 'boolean', default: false },
        filter: { type: 'string', multiple: true },
        last: { type: 'string' },
        'detect-issues': { type: 'boolean', default: false },
        'slow-ms': { type: 'string' },
        'gap-ms': { type: 'string' },
        stats: { type: 'boolean', default: false },
        har: { type: 'string' },
        follow: { type: 'boolean', short: 'f', default: false },
        color: { type: 'boolean' },
        'no-color': { type: 'boolean' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return null;
  if (parsed.positionals.length > 1) throw new UsageError(`one file or folder at a time (got ${parsed.positionals.length})`);
  const modes = [v.show !== undefined, v.stats, v.har !== undefined, v['detect-issues']].filter(Boolean).length;
  if (modes > 1) throw new UsageError('--show, --stats, --har and --detect-issues are used one at a time');
  if (v.follow && (v.show !== undefined || v.stats || v.har !== undefined)) throw new UsageError('--follow goes with the table, --json or --detect-issues');
  const tty = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
  return {
    path: parsed.positionals[0] ?? './captures',
    show: v.show ?? null,
    json: v.json,
    filters: (v.filter ?? []).flatMap(parseFilter),
    last: positiveInt('last', v.last, null),
    issues: v['detect-issues'],
    slowMs: positiveInt('slow-ms', v['slow-ms'], DEFAULT_THRESHOLDS.slowFirstChunkMs)!,
    gapMs: positiveInt('gap-ms', v['gap-ms'], DEFAULT_THRESHOLDS.gapMs)!,
    stats: v.stats,
    har: v.har ?? null,
    follow: v.follow,
    color: v['no-color'] ? false : (v.color ?? tty),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Output

interface Paint {
  dim(s: string): string;
  bold(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  green(s: string): string;
  cyan(s: string): string;
}

function painter(on: boolean): Paint {
  const c = (code: string) => (s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);
  return { dim: c('2'), bold: c('1'), red: c('31'), yellow: c('33'), green: c('32'), cyan: c('36') };
}

const fmtMs = (n: number | null): string => (n === null ? '-' : n >= 10_000 ? `${(n / 1000).toFixed(1)}s` : `${Math.round(n)}ms`);
const fmtBytes = (n: number | null): string => (n === null ? '-' : n >= 1024 * 1024 ? `${(n / 1048576).toFixed(1)}M` : n >= 1024 ? `${(n / 1024).toFixed(1)}k` : String(n));
const fmtTime = (iso: string): string => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') : '-');
const num = (n: number | null): string => (n === null ? '-' : String(n));

const COLUMNS: { title: string; width: number; right?: boolean; cell(s: ExchangeSummary): string }[] = [
  { title: 'time (UTC)', width: 19, cell: (s) => fmtTime(s.time) },
  { title: 'id', width: 21, cell: (s) => s.id },
  { title: 'request', width: 30, cell: (s) => `${s.method} ${s.path}` },
  { title: 'model', width: 20, cell: (s) => s.model },
  { title: 'status', width: 6, right: true, cell: (s) => num(s.status) },
  { title: 'outcome', width: 18, cell: (s) => s.outcome },
  { title: 'ttft', width: 7, right: true, cell: (s) => fmtMs(s.ttft) },
  { title: 'duration', width: 8, right: true, cell: (s) => fmtMs(s.duration) },
  { title: 'tok in/out', width: 11, right: true, cell: (s) => `${num(s.tokensIn)}/${num(s.tokensOut)}` },
  { title: 'bytes in/out', width: 13, right: true, cell: (s) => `${fmtBytes(s.bytesIn)}/${fmtBytes(s.bytesOut)}` },
];

function fit(s: string, width: number, right = false): string {
  const t = s.length > width ? `${s.slice(0, width - 1)}…` : s;
  return right ? t.padStart(width) : t.padEnd(width);
}

function tableHeader(p: Paint): string {
  return p.bold(COLUMNS.map((c) => fit(c.title, c.width, c.right)).join('  '));
}

function tableRow(s: ExchangeSummary, p: Paint): string {
  return COLUMNS.map((c) => {
    const cell = fit(c.cell(s), c.width, c.right);
    if (c.title === 'id') return p.dim(cell);
    if (c.title === 'outcome' || c.title === 'status') {
      if (s.outcome !== 'ok' || (s.status !== null && s.status >= 500)) return p.red(cell);
      if (s.status !== null && s.status >= 400) return p.yellow(cell);
      return p.green(cell);
    }
    return cell;
  }).join('  ');
}

function issueLine(s: ExchangeSummary, i: Issue, p: Paint): string {
  const kind = i.kind === 'missing_usage' || i.kind === 'slow_first_chunk' || i.kind === 'long_gap' ? p.yellow(i.kind) : p.red(i.kind);
  return `${fmtTime(s.time)}  ${i.id}  ${kind}  ${s.method} ${s.path} ${s.model}: ${i.message}`;
}

function jsonLine(ex: CapturedExchange, s: ExchangeSummary): string {
  const e = ex.end;
  return JSON.stringify({ ...s, timings: e?.timings ?? null, usage: e?.usage ?? null, bytes: e?.bytes ?? null, responseModel: e?.responseModel ?? null, responseId: e?.responseId ?? null, dropped: e?.dropped ?? 0 });
}

function statsTable(rows: ExchangeSummary[], p: Paint): string {
  const stats = statsByModel(rows);
  const head = ['model', 'count', 'errors', 'tok in', 'tok out', 'ttft p50', 'p95', 'p99', 'duration p50', 'p95', 'p99'];
  const widths = [24, 6, 6, 8, 8, 9, 7, 7, 12, 7, 7];
  const line = (cells: string[]) => cells.map((c, i) => fit(c, widths[i]!, i > 0)).join('  ');
  const out = [p.bold(line(head))];
  for (const s of stats) {
    out.push(line([s.model, String(s.count), String(s.errors), String(s.tokensIn), String(s.tokensOut), fmtMs(s.ttft.p50), fmtMs(s.ttft.p95), fmtMs(s.ttft.p99), fmtMs(s.duration.p50), fmtMs(s.duration.p95), fmtMs(s.duration.p99)]));
  }
  return out.join('\n');
}

function headersBlock(h: Record<string, string | string[]> | undefined): string[] {
  return Object.entries(h ?? {}).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => `  ${k}: ${x}`));
}

function showExchange(ex: CapturedExchange, p: Paint): string {
  const s = summarize(ex);
  const e = ex.end;
  const out: string[] = [];
  out.push(p.bold(`exchange ${ex.id}`) + p.dim(`  (${ex.file})`));
  out.push(`  ${s.method} ${s.url}  →  ${s.upstream} (${s.dialect})`);
  out.push(`  started ${s.time}  model ${s.model}${e?.responseModel && e.responseModel !== s.model ? ` (answered by ${e.responseModel})` : ''}  stream ${s.stream}`);
  out.push(`  outcome ${s.outcome}  status ${num(s.status)}  ttfb ${fmtMs(s.ttfb)}  ttft ${fmtMs(s.ttft)}  duration ${fmtMs(s.duration)}`);
  if (e) {
    out.push(`  tokens in ${num(e.usage.input)} out ${num(e.usage.output)} (${e.usage.source})  bytes in ${e.bytes.requestIn} out ${e.bytes.responseOut}  trace ${e.traceId ?? '-'}`);
    if (e.finishReasons.length) out.push(`  finish ${e.finishReasons.join(', ')}`);
    if (e.errorMessage) out.push(p.red(`  error ${e.errorType ?? ''}: ${e.errorMessage}`));
    if (e.dropped) out.push(p.yellow(`  ${e.dropped} record(s) of this exchange were dropped by the capture: chunks are missing`));
  } else out.push(p.yellow('  no end record: llmtap stopped or the capture was cut before this exchange finished'));
  out.push('', p.bold('request headers'), ...headersBlock(ex.request?.headers));
  out.push('', p.bold('request body'));
  const rt = requestText(ex);
  out.push(rt === null ? p.dim(ex.request?.bodySize ? `  (${ex.request.bodySize} bytes, not captured)` : '  (none)') : rt);
  out.push('', p.bold(`response ${ex.response ? ex.response.status : '(none)'}`) + (ex.response ? p.dim(`  head at +${ex.response.at.toFixed(1)} ms`) : ''), ...headersBlock(ex.response?.headers));
  const kind = bodyKind(ex);
  const body = responseBytes(ex);
  if (kind === 'sse' || kind === 'ndjson') {
    const events = streamEvents(ex);
    out.push('', p.bold(`stream events (${events.length}, in ${ex.responseChunks} chunks)`));
    for (const ev of events) out.push(`  ${p.cyan(`+${ev.at.toFixed(1).padStart(8)} ms`)}  ${ev.event && ev.event !== 'message' ? `${ev.event}  ` : ''}${ev.data}`);
    if (body === null) out.push(p.dim(`  (bodies were not captured: ${ex.responseChunks} chunk(s), ${fmtBytes(s.bytesOut)})`));
  } else {
    out.push('', p.bold('response body'));
    if (body === null) out.push(p.dim(`  (not captured: ${fmtBytes(s.bytesOut)})`));
    else {
      const text = decodedBody(body, ex.response?.headers).toString('utf8');
      let pretty = text;
      try {
        pretty = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        /* not JSON: as it is */
      }
      out.push(pretty);
    }
  }
  const text = generatedText(ex);
  if (text !== null) out.push('', p.bold('generated text'), text);
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Main

function describeReadError(path: string, err: NodeJS.ErrnoException): string {
  if (err.code === 'ENOENT') return `llmtap-inspect: ${path}: no such file or folder (captures are written with LLMTAP_CAPTURE=on to LLMTAP_CAPTURE_DIR, default ./captures)`;
  if (err.code === 'EACCES' || err.code === 'EPERM') return `llmtap-inspect: ${path}: permission denied`;
  if (err.code === 'EISDIR') return `llmtap-inspect: ${path}: is a folder`;
  return `llmtap-inspect: cannot read ${path}: ${err.code ?? err.message}`;
}

async function run(o: Options): Promise<number> {
  const p = painter(o.color);
  const stdout = (s: string): void => void process.stdout.write(s + '\n');
  const note = (s: string): void => void process.stderr.write(p.dim(s) + '\n');

  let isDir: boolean;
  try {
    isDir = statSync(o.path).isDirectory();
  } catch (err) {
    throw new InputError(describeReadError(o.path, err as NodeJS.ErrnoException));
  }
  if (isDir && !o.follow) {
    const files = await captureFiles(o.path).catch((err: NodeJS.ErrnoException) => {
      throw new InputError(describeReadError(o.path, err));
    });
    if (files.length === 0) throw new InputError(`llmtap-inspect: ${o.path} holds no capture files (llmtap-*.cbor)`);
  }

  const passes = (s: ExchangeSummary): boolean => o.filters.every((f) => f(s));
  const thresholds = { slowFirstChunkMs: o.slowMs, gapMs: o.gapMs };
  let showMatches = new Set<string>();
  const keepChunks = o.har !== null ? () => true : o.show !== null ? (id: string) => id.startsWith(o.show!) : undefined;
  let issueCount = 0;

  // --follow prints each exchange as its end record arrives.
  const live = o.follow;
  const emit = (ex: CapturedExchange): void => {
    const s = summarize(ex);
    if (!passes(s)) return;
    if (o.issues) {
      for (const i of detectIssues(ex, thresholds)) {
        issueCount++;
        stdout(issueLine(s, i, p));
      }
    } else if (o.json) stdout(jsonLine(ex, s));
    else stdout(tableRow(s, p));
  };
  const asm = createAssembler({ keepChunks, onEnd: live ? emit : undefined });

  const ac = new AbortController();
  if (live) {
    process.once('SIGINT', () => ac.abort());
    process.once('SIGTERM', () => ac.abort());
    if (!o.json && !o.issues) stdout(tableHeader(p));
  }
  const cuts: Extract<CaptureItem, { kind: 'cut' }>[] = [];
  try {
    let n = 0;
    for await (const item of readCapture(o.path, { follow: live, signal: ac.signal })) {
      if (item.kind === 'cut') {
        cuts.push(item);
        continue;
      }
      asm.add(item.record, item.file);
      if (live && ++n % 1000 === 0) asm.dropFinished();
      if (o.show !== null && item.record.type !== 'header' && item.record.id.startsWith(o.show)) showMatches.add(item.record.id);
    }
  } catch (err) {
    if (err instanceof CaptureFormatError) throw new InputError(`llmtap-inspect: ${err.message}`);
    const e = err as NodeJS.ErrnoException;
    if (e.code) throw new InputError(describeReadError(e.path ?? o.path, e));
    throw err;
  }
  for (const c of cuts) {
    note(`note: ${c.file} ends inside a record at byte ${c.offset} (${c.bytes} byte(s) after the last whole record): cut short by a crash, or still being written`);
  }
  if (live) {
    if (o.issues) note(issueCount === 0 ? 'no issues found' : `${issueCount} issue(s)`);
    return 0;
  }

  let exchanges = asm.exchanges().filter((ex) => passes(summarize(ex)));
  if (o.last !== null) exchanges = exchanges.slice(Math.max(0, exchanges.length - o.last));

  if (o.show !== null) {
    showMatches = new Set([...showMatches].filter((id) => exchanges.some((ex) => ex.id === id)));
    if (showMatches.size === 0) throw new InputError(`llmtap-inspect: no exchange with id ${o.show} in ${o.path}`);
    if (showMatches.size > 1 && !showMatches.has(o.show)) throw new InputError(`llmtap-inspect: ${o.show} matches ${showMatches.size} exchanges: ${[...showMatches].slice(0, 5).join(', ')}${showMatches.size > 5 ? ' ...' : ''}`);
    const id = showMatches.has(o.show) ? o.show : [...showMatches][0]!;
    stdout(showExchange(exchanges.find((ex) => ex.id === id)!, p));
    return 0;
  }
  if (o.har !== null) {
    writeFileSync(o.har, JSON.stringify(toHar(exchanges, version()), null, 2));
    note(`wrote ${exchanges.length} exchange(s) to ${o.har} (HAR 1.2)`);
    return 0;
  }
  if (o.stats) {
    stdout(statsTable(exchanges.map(summarize), p));
    return 0;
  }
  if (o.issues) {
    for (const ex of exchanges) {
      const s = summarize(ex);
      for (const i of detectIssues(ex, thresholds)) {
        issueCount++;
        stdout(issueLine(s, i, p));
      }
    }
    note(issueCount === 0 ? `no issues found in ${exchanges.length} exchange(s)` : `${issueCount} issue(s) in ${exchanges.length} exchange(s)`);
    return 0;
  }
  if (o.json) {
    for (const ex of exchanges) stdout(jsonLine(ex, summarize(ex)));
    return 0;
  }
  stdout(tableHeader(p));
  for (const ex of exchanges) stdout(tableRow(summarize(ex), p));
  note(`${exchanges.length} exchange(s)`);
  return 0;
}

async function main(): Promise<void> {
  let o: Options | null;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`llmtap-inspect: ${err.message}\n\n${USAGE}`);
      process.exit(2);
    }
    throw err;
  }
  if (!o) {
    process.stdout.write(USAGE);
    return;
  }
  try {
    process.exitCode = await run(o);
  } catch (err) {
    if (err instanceof InputError || err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(err instanceof UsageError ? 2 : 1);
    }
    throw err;
  }
}

// Piped into `head`: stop quietly when the reader goes away.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
});

await main();
