import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { createMetrics } from '../src/metrics/index.ts';
import { DATASOURCE_UID, dashboardQueries, loadDashboard, promqlReferences } from './support/dashboard.ts';

/**
 * The Grafana dashboard, cross-checked against what the metrics module really registers: every
 * metric and label a panel query names must exist, with the right type.
 */
interface Registered { type: string; labels: Set<string> }

async function registered(): Promise<Map<string, Registered>> {
  const { registry } = createMetrics();
  const out = new Map<string, Registered>();
  for (const m of await registry.getMetricsAsJSON()) {
    const metric = registry.getSingleMetric(m.name) as unknown as { labelNames?: string[] };
    out.set(m.name, { type: String(m.type), labels: new Set(metric.labelNames ?? []) });
  }
  return out;
}

/** Resolve a series name used in PromQL to its registered metric (histogram series carry suffixes). */
function resolve(reg: Map<string, Registered>, series: string): { base: string; m: Registered; suffix: string } | null {
  const direct = reg.get(series);
  if (direct) return direct.type === 'histogram' ? null : { base: series, m: direct, suffix: '' };
  const h = /^(.*)_(bucket|sum|count)$/.exec(series);
  const base = h ? reg.get(h[1]) : undefined;
  return h && base?.type === 'histogram' ? { base: h[1], m: base, suffix: h[2] } : null;
}

test('dashboard: valid JSON, fixed datasource uid everywhere, provisioning declares it', () => {
  const d = loadDashboard();
  assert.ok(d.uid && d.title);
  const qs = dashboardQueries(d.panels);
  assert.ok(qs.length >= 12);
  for (const q of qs) {
    assert.ok(q.expr.trim(), `${q.panel}/${q.refId}: empty query`);
    assert.ok(q.datasourceUids.length > 0, `${q.panel}: no datasource`);
    for (const uid of q.datasourceUids) assert.equal(uid, DATASOURCE_UID, `${q.panel}/${q.refId}`);
  }
  // no other datasource uid hides anywhere in the file (annotations, templating…)
  const text = readFileSync('cluster/grafana/dashboards/vilm.json', 'utf8');
  const uids = new Set([...text.matchAll(/"datasource":\s*\{[^}]*"uid":\s*"([^"]+)"/g)].map((m) => m[1]));
  assert.deepEqual([...uids], [DATASOURCE_UID]);
  assert.doesNotMatch(text, /\$\{?DS_/, 'no import-time datasource variables');

  const ds = parseYaml(readFileSync('cluster/grafana/provisioning/datasources/vilm.yaml', 'utf8')) as { datasources: { uid: string; type: string; url: string }[] };
  assert.equal(ds.datasources.length, 1);
  assert.equal(ds.datasources[0].uid, DATASOURCE_UID);
  assert.equal(ds.datasources[0].type, 'prometheus');
  const prov = parseYaml(readFileSync('cluster/grafana/provisioning/dashboards/vilm.yaml', 'utf8')) as { providers: { type: string; options: { path: string } }[] };
  assert.equal(prov.providers[0].type, 'file');
  assert.ok(prov.providers[0].options.path.startsWith('/'));
});

test('every metric and label a panel query names is registered by src/metrics, with a fitting type', async () => {
  const reg = await registered();
  const used = new Set<string>();
  for (const q of dashboardQueries(loadDashboard().panels)) {
    const where = `${q.panel}/${q.refId}: ${q.expr}`;
    const refs = promqlReferences(q.expr);
    assert.ok(refs.metrics.length > 0, `${where}: names no metric`);
    const resolved = refs.metrics.map((name) => {
      const r = resolve(reg, name);
      assert.ok(r, `${where}: '${name}' is not a registered metric`);
      used.add(r.base);
      return r;
    });
    for (const label of refs.labels) {
      const ok = resolved.some((r) => r.m.labels.has(label) || (label === 'le' && r.suffix === 'bucket'));
      assert.ok(ok, `${where}: label '${label}' is on none of its metrics`);
    }
    // rate()/increase() only make sense on counters (and histogram series, which are counters)
    for (const m of q.expr.matchAll(/\b(?:rate|increase|irate)\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/g)) {
      const r = resolve(reg, m[1]);
      assert.ok(r && (r.m.type === 'counter' || r.suffix !== ''), `${where}: rate() over ${m[1]}, which is not a counter`);
    }
    // histogram_quantile needs the _bucket series with `le` kept
    if (q.expr.includes('histogram_quantile')) assert.match(q.expr, /_bucket\b/);
  }
  // the panels the issue asks for are all there
  for (const need of [
    'vilm_tokens_total', 'vilm_step_duration_seconds', 'vilm_step_part_duration_seconds', 'vilm_loss', 'vilm_validation_loss',
    'vilm_workers_connected', 'vilm_worker_micro_shards_total', 'vilm_network_sent_bytes_total', 'vilm_network_received_bytes_total',
    'vilm_micro_shards_reassigned_total', 'vilm_results_rejected_total',
  ]) assert.ok(used.has(need), `no panel uses ${need}`);
});

test('the PromQL reader finds names and labels (and so would flag a typo)', async () => {
  const r = promqlReferences('histogram_quantile(0.95, sum by (le, part) (rate(vilm_step_part_duration_seconds_bucket{part!="x,y"}[5m]))) / 1e6');
  assert.deepEqual(r.metrics, ['vilm_step_part_duration_seconds_bucket']);
  assert.deepEqual(r.labels.sort(), ['le', 'part']);
  const reg = await registered();
  assert.equal(resolve(reg, 'vilm_token_total'), null);
  assert.equal(resolve(reg, 'vilm_loss_bucket'), null, 'a gauge has no _bucket series');
  assert.equal(resolve(reg, 'vilm_step_duration_seconds'), null, 'a histogram is queried through its suffixes');
  assert.equal(resolve(reg, 'vilm_step_duration_seconds_count')?.base, 'vilm_step_duration_seconds');
});

test('prometheus.yml scrapes the coordinator on the default metrics port 9464', () => {
  const p = parseYaml(readFileSync('cluster/prometheus/prometheus.yml', 'utf8')) as { scrape_configs: { job_name: string; static_configs?: { targets: string[] }[] }[] };
  const c = p.scrape_configs.find((s) => s.job_name === 'vilm-coordinator');
  assert.ok(c?.static_configs?.[0].targets.includes('localhost:9464'));
  assert.ok(p.scrape_configs.some((s) => s.job_name === 'vilm-worker'));
});
