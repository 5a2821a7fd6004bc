// `npm run top`: a live terminal view of llmtap's activity, like top: what is in flight, and per model how fast and how much.
import { parseArgs } from 'node:util';
import { request } from 'undici';
import type { ActiveExchange } from '../src/usage/activity.ts';
import type { Stats, Summary } from '../src/usage/stats.ts';

interface Options {
  url: string;
  token: string;
  once: boolean;
  json: boolean;
  intervalMs: number;
}

const HELP = `npm run top [-- options]: a live view of what llmtap is doing, refreshed every second

  --url <url>        llmtap's address (default http://127.0.0.1:7878)
  --token <token>    the admin token, when llmtap runs with LLMTAP_ADMIN_TOKEN
  --once             print one frame and exit
  --json             print JSON (one object per refresh; with --once, one object)
  --interval <ms>    refresh period (default 1000)
  --help

Keys: q or Ctrl-C quits.
`;

class Fatal extends Error {}

function readOptions(argv: string[]): Options | null {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        url: { type: 'string', default: 'http://127.0.0.1:7878' },
        token: { type: 'string', default: '' },
        once: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        interval: { type: 'string', default: '1000' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    throw new Fatal(`llmtap top: ${(err as Error).message} (see --help)`);
  }
  if (values.help) return null;
  const intervalMs = Number(values.interval);
  if (!Number.isInteger(intervalMs) || intervalMs < 100 || intervalMs > 60_000) throw new Fatal(`llmtap top: --interval must be a whole number of ms from 100 to 60000; got "${values.interval}"`);
  let url: URL;
  try {
    url = new URL(values.url);
  } catch {
    throw new Fatal(`llmtap top: --url must be a URL like http://127.0.0.1:7878; got "${values.url}"`);
  }
  return { url: url.origin, token: values.token, once: values.once, json: values.json, intervalMs };
}

async function getJson<T>(opts: Options, path: string): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let res;
  try {
    res = await request(`${opts.url}${path}`, { headers, signal: AbortSignal.timeout(5000) });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`cannot reach llmtap at ${opts.url} (${e.code ?? e.message}); is it running? (--url)`);
  }
  const text = await res.body.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${opts.url}${path} answered ${res.statusCode} with something other than JSON: is --url pointing at llmtap?`);
  }
  if (res.statusCode === 401 || res.statusCode === 403) {
    const msg = (body as { error?: { message?: string } }).error?.message ?? `status ${res.statusCode}`;
    throw new Fatal(`llmtap top: ${msg}${res.statusCode === 401 ? ' (--token)' : ''}`);
  }
  if (res.statusCode === 404) throw new Fatal(`llmtap top: ${opts.url} has no usage API (${path} answered 404): is the usage feature on (LLMTAP_USAGE)?`);
  if (res.statusCode !== 200) throw new Error(`${path} answered ${res.statusCode}`);
  return body as T;
}

interface ModelRow {
  model: string;
  provider: string;
  requests: number;
  requestsPerSec: number;
  outputTokensPerSec: number;
  tokensPerSec: number;
  p95TtftMs: number | null;
  errors: number;
  errorsLastMinute: number;
  cost: number;
}

interface Frame {
  at: string;
  url: string;
  active: ActiveExchange[];
  models: ModelRow[];
  totals: Pick<Summary, 'requests' | 'errors' | 'inputTokens' | 'outputTokens' | 'cost'> & { requestsPerSec: number; tokensPerSec: number };
}

interface Previous {
  at: number;
  byModel: Map<string, Summary>;
}

const keyOf = (m: { provider: string; model: string }): string => `${m.provider}\u0000${m.model}`;

async function sample(opts: Options, prev: Previous | null): Promise<{ frame: Frame; prev: Previous }> {
  const [activity, all, lastMinute] = await Promise.all([
    getJson<{ active: ActiveExchange[] }>(opts, '/v1/diagnostics/activity'),
    getJson<Stats>(opts, '/v1/usage/stats'),
    getJson<Stats>(opts, '/v1/usage/stats?since=60s'),
  ]);
  const now = Date.now();
  const recent = new Map(lastMinute.byModel.map((m) => [keyOf(m), m]));
  // Rates from the change since the last refresh; the first frame has none, so it shows the last minute's average.
  const dt = prev ? (now - prev.at) / 1000 : 60;
  const models = all.byModel.map((m): ModelRow => {
    const base = prev?.byModel.get(keyOf(m));
    const win = recent.get(keyOf(m));
    const d = (f: (s: Summary) => number): number => (prev ? f(m) - (base ? f(base) : 0) : win ? f(win) : 0);
    return {
      model: m.model,
      provider: m.provider,
      requests: m.requests,
      requestsPerSec: d((s) => s.requests) / dt,
      outputTokensPerSec: d((s) => s.outputTokens) / dt,
      tokensPerSec: d((s) => s.totalTokens) / dt,
      p95TtftMs: win?.ttftMs.p95 ?? null,
      errors: m.errors,
      errorsLastMinute: win?.errors ?? 0,
      cost: m.cost,
    };
  });
  const sum = (f: (r: ModelRow) => number): number => models.reduce((a, r) => a + f(r), 0);
  const frame: Frame = {
    at: new Date(now).toISOString(),
    url: opts.url,
    active: activity.active,
    models,
    totals: {
      requests: all.totals.requests,
      errors: all.totals.errors,
      inputTokens: all.totals.inputTokens,
      outputTokens: all.totals.outputTokens,
      cost: all.totals.cost,
      requestsPerSec: sum((r) => r.requestsPerSec),
      tokensPerSec: sum((r) => r.tokensPerSec),
    },
  };
  return { frame, prev: { at: now, byModel: new Map(all.byModel.map((m) => [keyOf(m), m])) } };
}

const tty = Boolean(process.stdout.isTTY);
const bold = (s: string): string => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string): string => (tty ? `\x1b[2m${s}\x1b[0m` : s);
const rate = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const ms = (v: number | null): string => (v === null ? '-' : v < 1000 ? `${Math.round(v)}ms` : `${(v / 1000).toFixed(1)}s`);
const size = (v: number): string => (v < 1024 ? `${v}B` : v < 1048576 ? `${(v / 1024).toFixed(1)}K` : `${(v / 1048576).toFixed(1)}M`);
const fit = (s: string, w: number): string => (s.length > w ? `${s.slice(0, w - 1)}…` : s.padEnd(w));

type Line = { text: string; style?: (s: string) => string };

function table(header: string[], widths: number[], rows: string[][], right: Set<number>): Line[] {
  const line = (cells: string[]): string => cells.map((c, i) => (right.has(i) ? c.slice(0, widths[i]).padStart(widths[i]!) : fit(c, widths[i]!))).join('  ');
  return [{ text: line(header), style: bold }, ...rows.map((r) => ({ text: line(r) }))];
}

function render(f: Frame, columns: number, rows: number): string {
  const t = f.totals;
  const out: Line[] = [
    { text: `llmtap top  ${f.url}  ${f.at.slice(11, 19)}`, style: bold },
    { text: `active ${f.active.length}   requests ${t.requests} (${rate(t.requestsPerSec)}/s)   tokens ${t.inputTokens} in / ${t.outputTokens} out (${rate(t.tokensPerSec)}/s)   errors ${t.errors}   cost $${t.cost.toFixed(4)}` },
    { text: '' },
  ];
  const modelRows = f.models.map((m) => [m.model, m.provider, String(m.requests), rate(m.requestsPerSec), rate(m.tokensPerSec), rate(m.outputTokensPerSec), ms(m.p95TtftMs), String(m.errors), String(m.errorsLastMinute)]);
  out.push(...table(['MODEL', 'PROVIDER', 'REQS', 'REQ/S', 'TOK/S', 'OUT/S', 'P95 TTFT', 'ERRORS', 'ERR 1M'], [28, 9, 8, 7, 8, 8, 8, 6, 6], modelRows, new Set([2, 3, 4, 5, 6, 7, 8])));
  if (modelRows.length === 0) out.push({ text: '  no exchanges recorded yet', style: dim });
  out.push({ text: '' });
  const room = Math.max(3, rows - out.length - 3);
  const activeRows = f.active.slice(0, room).map((a) => [a.id.slice(-12), a.model, a.upstream, a.stream ? 'yes' : 'no', a.status === null ? '-' : String(a.status), ms(a.ageMs), size(a.bytes.sentUpstream || a.bytes.fromClient), size(a.bytes.fromUpstream), size(a.bytes.sentToClient)]);
  out.push(...table(['EXCHANGE', 'MODEL', 'UPSTREAM', 'STREAM', 'STATUS', 'AGE', 'SENT UP', 'FROM UP', 'TO CLIENT'], [12, 24, 10, 6, 6, 7, 8, 8, 9], activeRows, new Set([5, 6, 7, 8])));
  if (activeRows.length === 0) out.push({ text: '  nothing in flight', style: dim });
  else if (f.active.length > activeRows.length) out.push({ text: `  … and ${f.active.length - activeRows.length} more`, style: dim });
  // Cut to the terminal's width before styling, so no escape sequence is ever cut in half.
  return out.map((l) => {
    const text = (l.text.length > columns ? l.text.slice(0, columns) : l.text).trimEnd();
    return l.style ? l.style(text) : text;
  }).join('\n');
}

async function main(): Promise<number> {
  let opts: Options | null;
  try {
    opts = readOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  if (!opts) {
    process.stdout.write(HELP);
    return 0;
  }
  const o = opts;
  if (o.once) {
    try {
      const { frame } = await sample(o, null);
      process.stdout.write(o.json ? `${JSON.stringify(frame)}\n` : `${render(frame, process.stdout.columns || 200, process.stdout.rows || 50)}\n`);
      return 0;
    } catch (err) {
      process.stderr.write(`${err instanceof Fatal ? err.message : `llmtap top: ${(err as Error).message}`}\n`);
      return 1;
    }
  }

  let stop = false;
  let wake: (() => void) | null = null;
  const quit = (): void => {
    stop = true;
    wake?.();
  };
  process.on('SIGINT', quit);
  process.on('SIGTERM', quit);
  if (process.stdin.isTTY && !o.json) {
    process.stdin.setRawMode(true);
    process.stdin.resume();
    process.stdin.on('data', (b: Buffer) => {
      const k = b.toString();
      if (k === 'q' || k === '\u0003') quit();
    });
  }
  const live = tty && !o.json;
  if (live) process.stdout.write('\x1b[?25l');
  let prev: Previous | null = null;
  let code = 0;
  while (!stop) {
    const started = Date.now();
    try {
      const s = await sample(o, prev);
      prev = s.prev;
      if (o.json) process.stdout.write(`${JSON.stringify(s.frame)}\n`);
      else process.stdout.write(`${live ? '\x1b[H\x1b[2J' : ''}${render(s.frame, process.stdout.columns || 200, process.stdout.rows || 50)}\n${live ? '' : '\n'}`);
    } catch (err) {
      if (err instanceof Fatal) {
        process.stderr.write(`${err.message}\n`);
        code = 1;
        break;
      }
      const line = `llmtap top: ${(err as Error).message}; retrying`;
      if (o.json) process.stderr.write(`${line}\n`);
      else process.stdout.write(`${live ? '\x1b[H\x1b[2J' : ''}${line}\n`);
    }
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, Math.max(0, o.intervalMs - (Date.now() - started)));
    });
    wake = null;
  }
  if (live) process.stdout.write('\x1b[?25h\n');
  if (process.stdin.isTTY) process.stdin.setRawMode(false);
  return code;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`llmtap top: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
