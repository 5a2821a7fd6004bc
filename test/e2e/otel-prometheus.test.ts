// End to end: a real Prometheus scrapes llmtap's /metrics; its query API shows the mock's token counts, requests by status, the GenAI bucket boundaries, and accepts every dashboard and alert expression.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { configWith } from '../../src/config.ts';
import { startLlmtap, type RunningLlmtap } from '../../src/start.ts';
import { telemetryFeature } from '../../src/telemetry/feature.ts';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.ts';
import { freePort } from '../helpers/free-port.ts';
import { PROMETHEUS_BIN, missingBinary, startPrometheus, type RunningPrometheus, type PromSample } from '../helpers/prometheus.ts';

const OTEL = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'otel');

// The GenAI metrics conventions' explicit bucket boundaries (semantic-conventions docs/gen-ai/gen-ai-metrics.md).
const DURATION_BOUNDS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
const TOKEN_BOUNDS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];

/** Traffic with known usage: [dialect path, model, stream, usage, count]. */
const TRAFFIC = [
  { path: '/v1/chat/completions', model: 'prom-gpt', stream: false, usage: { input: 11, output: 7 }, count: 3 },
  { path: '/v1/chat/completions', model: 'prom-gpt', stream: true, usage: { input: 13, output: 4 }, count: 1 },
  { path: '/v1/messages', model: 'prom-claude', stream: true, usage: { input: 20, output: 5 }, count: 2 },
  { path: '/api/chat', model: 'prom-llama', stream: true, usage: { input: 8, output: 6 }, count: 1 },
] as const;
const RATE_LIMITED = 2;

let skipped: string | null = null;
let mock: MockUpstream;
let proxy: RunningLlmtap;
let prom: RunningPrometheus;
let scrapeText = '';

function bodyFor(path: string, model: string, stream: boolean): Record<string, unknown> {
  const messages = [{ role: 'user', content: 'count my tokens' }];
  if (path === '/v1/messages') return { model, max_tokens: 32, messages, stream };
  return { model, messages, stream };
}

async function send(path: string, model: string, stream: boolean): Promise<number> {
  const r = await fetch(`${proxy.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer t' }, body: JSON.stringify(bodyFor(path, model, stream)) });
  await r.arrayBuffer();
  return r.status;
}

/** Whether a name in an expression is a metric or a label of llmtap's scrape. */
function inScrape(text: string, names: Set<string>, name: string): boolean {
  return names.has(name) || text.includes(`${name}="`);
}

/** Metric family names present in a Prometheus text exposition. */
function namesIn(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (m) names.add(m[1]!);
  }
  return names;
}

const byLabel = (samples: PromSample[], label: string): Record<string, number> =>
  Object.fromEntries(samples.map((s) => [s.metric[label] ?? '', Number(s.value[1])]));

before(async () => {
  skipped = missingBinary(PROMETHEUS_BIN);
  if (skipped) return;
  mock = await startMockUpstream();
  mock.handle((req) => {
    const body = req.json as { model?: string };
    if (body.model === 'prom-limited') return { kind: 'raw', status: 429, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: { message: 'slow down', type: 'rate_limit' } }) };
    const asked = (req.json as { stream?: boolean }).stream;
    const stream = req.path === '/api/chat' ? asked !== false : asked === true;
    const t = TRAFFIC.find((x) => x.model === body.model && x.path === req.path && x.stream === stream);
    return { kind: 'chat', usage: t?.usage ?? { input: 1, output: 1 }, firstChunkDelayMs: 30, gapMs: 2 };
  });
  proxy = await startLlmtap(configWith({ port: 0, openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: mock.url, logLevel: 'silent' }), {
    features: [telemetryFeature],
    env: {
      OTEL_METRICS_EXPORTER: 'prometheus',
      OTEL_EXPORTER_PROMETHEUS_PORT: '0',
      // Spans to a port nobody listens on: the export-failure counter (a dashboard panel) gets series too.
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${await freePort()}/v1/traces`,
      OTEL_BSP_SCHEDULE_DELAY: '20',
      OTEL_EXPORTER_OTLP_TIMEOUT: '200',
    },
  });
  for (const t of TRAFFIC) for (let i = 0; i < t.count; i++) assert.equal(await send(t.path, t.model, t.stream), 200);
  for (let i = 0; i < RATE_LIMITED; i++) assert.equal(await send('/v1/chat/completions', 'prom-limited', false), 429);

  const target = new URL(proxy.url).host;
  prom = await startPrometheus({ targets: [{ job: 'llmtap', target }], interval: '1s', ruleFiles: [join(OTEL, 'alerts.yml')] });
  await prom.freshScrape(15_000);
  const r = await fetch(`${proxy.url}/metrics`);
  assert.equal(r.status, 200, '/metrics answers on the proxy port');
  scrapeText = await r.text();
});

after(async () => {
  await prom?.close();
  await proxy?.close();
  await mock?.close();
});

describe('Prometheus scrapes llmtap', () => {
  it('gen_ai_client_token_usage sums equal the tokens the mock reported, per model and token type', async (t) => {
    if (skipped) return t.skip(skipped);
    const got = await prom.samples('sum by (gen_ai_request_model, gen_ai_token_type) (gen_ai_client_token_usage_sum)');
    const actual: Record<string, number> = {};
    for (const s of got) actual[`${s.metric.gen_ai_request_model} ${s.metric.gen_ai_token_type}`] = Number(s.value[1]);
    const expected: Record<string, number> = {};
    for (const x of TRAFFIC) {
      expected[`${x.model} input`] = (expected[`${x.model} input`] ?? 0) + x.usage.input * x.count;
      expected[`${x.model} output`] = (expected[`${x.model} output`] ?? 0) + x.usage.output * x.count;
    }
    assert.deepEqual(actual, expected, `token sums in Prometheus (scrape: ${prom.url})`);
    const counts = byLabel(await prom.samples('sum by (gen_ai_request_model) (gen_ai_client_token_usage_count{gen_ai_token_type="output"})'), 'gen_ai_request_model');
    assert.deepEqual(counts, { 'prom-gpt': 4, 'prom-claude': 2, 'prom-llama': 1 }, 'one token-usage observation per exchange and type');
  });

  it('request counts by status code (and outcome)', async (t) => {
    if (skipped) return t.skip(skipped);
    const total = TRAFFIC.reduce((n, x) => n + x.count, 0);
    const byStatus = byLabel(await prom.samples('sum by (http_response_status_code) (llmtap_requests_total)'), 'http_response_status_code');
    assert.deepEqual(byStatus, { '200': total, '429': RATE_LIMITED });
    const byOutcome = byLabel(await prom.samples('sum by (llmtap_outcome) (llmtap_requests_total)'), 'llmtap_outcome');
    assert.deepEqual(byOutcome, { ok: total + RATE_LIMITED }, 'a 429 the upstream answered is outcome ok, status 429');
    const errorTypes = byLabel(await prom.samples('sum by (error_type) (llmtap_requests_total{http_response_status_code="429"})'), 'error_type');
    assert.ok(Object.keys(errorTypes).every((k) => k !== ''), `the 429s carry error.type (got ${JSON.stringify(errorTypes)})`);
  });

  it('histogram buckets sit at the GenAI conventions\' boundaries', async (t) => {
    if (skipped) return t.skip(skipped);
    const les = async (metric: string): Promise<number[]> =>
      [...new Set((await prom.samples(`count by (le) (${metric})`)).map((s) => s.metric.le!))].map((le) => (le === '+Inf' ? Infinity : Number(le))).sort((a, b) => a - b);
    const withInf = (b: number[]) => [...b, Infinity];
    assert.deepEqual(await les('gen_ai_client_operation_duration_bucket'), withInf(DURATION_BOUNDS), 'gen_ai.client.operation.duration');
    assert.deepEqual(await les('gen_ai_client_token_usage_bucket'), withInf(TOKEN_BOUNDS), 'gen_ai.client.token.usage');
    assert.deepEqual(await les('gen_ai_client_operation_time_to_first_chunk_bucket'), withInf(DURATION_BOUNDS), 'gen_ai.client.operation.time_to_first_chunk');
    // The streams' first chunk came ~30 ms after forwarding: in the (0.02, 0.04] bucket or later, never at or below 0.02.
    const under20ms = await prom.samples('sum(gen_ai_client_operation_time_to_first_chunk_bucket{le="0.02"})');
    assert.equal(Number(under20ms[0]?.value[1] ?? 0), 0, 'no stream had its first chunk within 20 ms (the mock waits 30 ms)');
    const streams = await prom.samples('sum(gen_ai_client_operation_time_to_first_chunk_count)');
    assert.equal(Number(streams[0]?.value[1]), TRAFFIC.filter((x) => x.stream).reduce((n, x) => n + x.count, 0), 'one time-to-first-chunk per stream');
  });

  it('every Grafana dashboard expression is accepted by Prometheus and names metrics the scrape really has', async (t) => {
    if (skipped) return t.skip(skipped);
    const dash = JSON.parse(readFileSync(join(OTEL, 'grafana/dashboards/llmtap.json'), 'utf8')) as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }> };
    const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((x) => ({ title: p.title, expr: x.expr })));
    assert.ok(exprs.length >= 8, 'the dashboard has its panels');
    const titles = dash.panels.map((p) => p.title.toLowerCase()).join(' | ');
    for (const topic of ['requests', 'errors', 'duration', 'first chunk', 'tokens', 'bytes', 'active', 'overhead']) assert.ok(titles.includes(topic), `a panel about ${topic} (have: ${titles})`);
    const scraped = namesIn(scrapeText);
    for (const { title, expr } of exprs) {
      // Grafana's own variables, as Grafana would fill them in.
      const promql = expr.replaceAll('$__rate_interval', '1m').replaceAll('$model', '.*');
      const r = await prom.query(promql);
      assert.equal(r.status, 'success', `panel "${title}": Prometheus rejects ${promql}: ${r.error}`);
      for (const name of promql.match(/\b(?:gen_ai|llmtap|http|error)_[a-z0-9_]+/g) ?? []) {
        // The llmtap_upstream_* gauges exist only with several upstreams (test/e2e/upstreams-health.test.ts checks them there).
        if (name.startsWith('llmtap_upstream_')) continue;
        assert.ok(inScrape(scrapeText, scraped, name), `panel "${title}" uses ${name}, which is neither a metric nor a label in llmtap's scrape`);
      }
    }
    // With traffic behind them, the main panels show data.
    // (rate needs two scrapes: waited for, bounded.)
    for (const expr of ['sum(llmtap_requests_total)', 'sum(rate(gen_ai_client_token_usage_sum[1m]))', 'sum(llmtap_telemetry_export_failures_total)']) await prom.waitFor(expr, (x) => x.length > 0, 5000);
  });

  it('every alert rule loads, evaluates without error, and names metrics the scrape really has', async (t) => {
    if (skipped) return t.skip(skipped);
    const rules = parseYaml(readFileSync(join(OTEL, 'alerts.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
    const scraped = namesIn(scrapeText);
    for (const rule of rules.groups.flatMap((g) => g.rules)) {
      const r = await prom.query(rule.expr);
      assert.equal(r.status, 'success', `alert ${rule.alert}: ${r.error}`);
      for (const name of rule.expr.match(/\b(?:gen_ai|llmtap|http|error)_[a-z0-9_]+/g) ?? []) {
        // The llmtap_upstream_* gauges exist only with several upstreams (test/e2e/upstreams-health.test.ts checks them there).
        if (name.startsWith('llmtap_upstream_')) continue;
        assert.ok(inScrape(scrapeText, scraped, name), `alert ${rule.alert} uses ${name}, which is neither a metric nor a label in llmtap's scrape`);
      }
    }
    // Prometheus evaluated the loaded rules against the live data: none reports an error.
    const deadline = Date.now() + 5000;
    let health: Array<{ name: string; health: string; lastError?: string }> = [];
    for (let i = 0; i < 50; i++) {
      const r = (await (await fetch(`${prom.url}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> } };
      health = r.data.groups.flatMap((g) => g.rules);
      if (health.length > 0 && health.every((x) => x.health !== 'unknown')) break;
      if (Date.now() > deadline) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.ok(health.length >= 3, `rules loaded (${health.length})`);
    for (const x of health) assert.equal(x.health, 'ok', `rule ${x.name}: ${x.lastError ?? x.health}`);
  });
});
