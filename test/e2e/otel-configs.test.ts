// The example configs in otel/ hold together: promtool accepts prometheus.yml and alerts.yml, the Collector and compose wiring is consistent, the dashboard parses.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { PROMTOOL_BIN, missingBinary, promtool } from '../helpers/prometheus.ts';

const OTEL = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'otel');

type Obj = Record<string, unknown>;
const obj = (v: unknown, what: string): Obj => {
  assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), `${what} is a mapping`);
  return v as Obj;
};
const yamlFile = (name: string): Obj => obj(parseYaml(readFileSync(join(OTEL, name), 'utf8')), name);

describe('otel/ Prometheus files pass promtool', () => {
  it('promtool check config otel/prometheus.yml (rule files included)', (t) => {
    const missing = missingBinary(PROMTOOL_BIN);
    if (missing) return t.skip(missing);
    const r = promtool(['check', 'config', join(OTEL, 'prometheus.yml')]);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS: 1 rule files found/);
  });

  it('promtool check rules otel/alerts.yml: error rate, slow first chunk, upstream down', (t) => {
    const missing = missingBinary(PROMTOOL_BIN);
    if (missing) return t.skip(missing);
    const r = promtool(['check', 'rules', join(OTEL, 'alerts.yml')]);
    assert.equal(r.status, 0, r.output);
    const alerts = (obj(yamlFile('alerts.yml'), 'alerts').groups as Array<{ rules: Array<{ alert?: string }> }>).flatMap((g) => g.rules.map((x) => x.alert));
    for (const name of ['LlmtapHighErrorRate', 'LlmtapSlowFirstChunk', 'LlmtapUpstreamDown']) assert.ok(alerts.includes(name), `alerts.yml has ${name} (has ${alerts.join(', ')})`);
  });

  it('prometheus.yml scrapes llmtap on its default port and the Collector on its exporter port', () => {
    const cfg = yamlFile('prometheus.yml');
    const jobs = cfg.scrape_configs as Array<{ job_name: string; metrics_path?: string; static_configs: Array<{ targets: string[] }> }>;
    const llmtap = jobs.find((j) => j.job_name === 'llmtap');
    assert.ok(llmtap, 'a job named llmtap (alerts.yml uses up{job="llmtap"})');
    assert.deepEqual(llmtap.static_configs[0]!.targets, ['127.0.0.1:7878']);
    assert.equal(llmtap.metrics_path ?? '/metrics', '/metrics');
    const collectorJob = jobs.find((j) => j.job_name === 'otel-collector');
    const promExporter = obj(obj(yamlFile('collector.yaml').exporters, 'exporters').prometheus, 'prometheus exporter');
    const port = String(promExporter.endpoint).split(':').at(-1);
    assert.deepEqual(collectorJob?.static_configs[0]!.targets, [`127.0.0.1:${port}`], 'Prometheus scrapes the port the Collector exposes');
  });
});

describe('otel/collector.yaml', () => {
  const cfg = yamlFile('collector.yaml');
  const service = obj(cfg.service, 'service');
  const pipelines = obj(service.pipelines, 'service.pipelines');

  it('every receiver, processor and exporter a pipeline names is defined', () => {
    for (const [name, p] of Object.entries(pipelines)) {
      const pipeline = obj(p, `pipeline ${name}`);
      for (const section of ['receivers', 'processors', 'exporters'] as const) {
        const defined = obj(cfg[section] ?? {}, section);
        for (const ref of (pipeline[section] as string[] | undefined) ?? []) assert.ok(ref in defined, `pipeline ${name} names ${section}.${ref}, which is not defined`);
      }
    }
    for (const ext of (service.extensions as string[] | undefined) ?? []) assert.ok(ext in obj(cfg.extensions, 'extensions'), `extension ${ext} is defined`);
  });

  it('receives OTLP over HTTP on 4318 and fans traces out to Jaeger and metrics to Prometheus', () => {
    const http = obj(obj(obj(obj(cfg.receivers, 'receivers').otlp, 'otlp').protocols, 'protocols').http, 'http');
    assert.equal(http.endpoint, '0.0.0.0:4318');
    const traces = obj(pipelines.traces, 'traces');
    const metrics = obj(pipelines.metrics, 'metrics');
    assert.ok((traces.receivers as string[]).includes('otlp') && (metrics.receivers as string[]).includes('otlp'));
    const jaeger = (traces.exporters as string[]).find((e) => e.startsWith('otlp'));
    assert.ok(jaeger, 'traces go out over OTLP');
    assert.match(String(obj(obj(cfg.exporters, 'exporters')[jaeger], jaeger).endpoint), /^jaeger:4317$/, 'to the compose service "jaeger"');
    assert.ok((metrics.exporters as string[]).includes('prometheus'), 'metrics go to the prometheus exporter');
  });
});

describe('otel/docker-compose.yml', () => {
  const compose = yamlFile('docker-compose.yml');
  const services = obj(compose.services, 'services');
  const collectorCfg = yamlFile('collector.yaml');
  const published = (svc: string): string[] => ((obj(services[svc], svc).ports as string[] | undefined) ?? []).map((p) => p.split(':')[0]!);
  const mounts = (svc: string): Array<[string, string]> =>
    ((obj(services[svc], svc).volumes as string[] | undefined) ?? []).map((v) => {
      const [src, dst] = v.split(':');
      return [src!, dst!];
    });

  it('runs Jaeger, Prometheus, Grafana and the Collector', () => {
    for (const s of ['jaeger', 'prometheus', 'grafana', 'otel-collector']) assert.ok(s in services, `service ${s}`);
  });

  it('every file it mounts exists in otel/', () => {
    for (const svc of Object.keys(services)) {
      for (const [src] of mounts(svc)) if (src.startsWith('./')) assert.ok(existsSync(join(OTEL, src)), `${svc} mounts ${src}, which exists`);
    }
  });

  it('the Collector gets collector.yaml and publishes OTLP/HTTP 4318 (llmtap on the host sends there) and its Prometheus port', () => {
    const m = mounts('otel-collector').find(([src]) => src === './collector.yaml');
    assert.ok(m, 'collector.yaml is mounted');
    assert.ok(String((obj(services['otel-collector'], 'c').command as string[]).join(' ')).includes(m[1]), 'the collector is started with the mounted file');
    const promPort = String(obj(obj(collectorCfg.exporters, 'exporters').prometheus, 'p').endpoint).split(':').at(-1)!;
    for (const port of ['4318', promPort]) assert.ok(published('otel-collector').includes(port), `collector publishes ${port}`);
  });

  it('Prometheus gets prometheus.yml and alerts.yml side by side and uses host networking to reach llmtap on 127.0.0.1', () => {
    const m = new Map(mounts('prometheus'));
    assert.equal(dirname(m.get('./prometheus.yml')!), dirname(m.get('./alerts.yml')!), 'rule_files: alerts.yml resolves next to prometheus.yml');
    assert.equal(obj(services.prometheus, 'prometheus').network_mode, 'host');
  });

  it('Grafana is provisioned with a Prometheus datasource (the one the dashboard uses) and the dashboard folder', () => {
    const m = new Map(mounts('grafana'));
    const prov = m.get('./grafana/provisioning');
    assert.equal(prov, '/etc/grafana/provisioning');
    const dsFile = obj(parseYaml(readFileSync(join(OTEL, 'grafana/provisioning/datasources/datasources.yml'), 'utf8')), 'datasources');
    const prom = (dsFile.datasources as Array<{ uid: string; type: string; url: string }>).find((d) => d.type === 'prometheus');
    assert.ok(prom, 'a prometheus datasource');
    assert.match(prom.url, /:9090$/);
    const dbFile = obj(parseYaml(readFileSync(join(OTEL, 'grafana/provisioning/dashboards/dashboards.yml'), 'utf8')), 'dashboards');
    const path = (dbFile.providers as Array<{ options: { path: string } }>)[0]!.options.path;
    assert.equal(m.get('./grafana/dashboards'), path, 'the provider reads the mounted dashboards folder');
    const dash = JSON.parse(readFileSync(join(OTEL, 'grafana/dashboards/llmtap.json'), 'utf8')) as { templating: { list: Array<{ name: string; type: string; query: unknown }> } };
    const dsVar = dash.templating.list.find((v) => v.type === 'datasource');
    assert.equal(dsVar?.query, 'prometheus', 'the dashboard picks a prometheus datasource');
  });
});
