import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { createMetrics } from '../src/metrics/index.ts';
import { createWorkerMetrics } from '../src/metrics/worker.ts';
import { DATASOURCE_REF, DATASOURCE_UID, dashboardQueries, loadDashboard, promqlReferences } from './support/dashboard.ts';

/**
 * The Grafana dashboard, cross-checked against what the metrics module really registers (the
 * coordinator's and a remote worker's): every metric and label a panel query names must exist,
 * with the right type, and every metric we export is on a panel.
 */
interface Registered { type: string; labels: Set<string> }

/** Labels Prometheus adds to every series of a target (not registered by us). */
const TARGET_LABELS = new Set(['job', 'instance']);

async function registered(): Promise<Map<string, Registered>> {
  const out = new Map<string, Registered>();
  for (const { registry } of [createMetrics(), createWorkerMetrics({ name: 'w' })]) {
    for (const m of await registry.getMetricsAsJSON()) {
      const metric = registry.getSingleMetric(m.name) as unknown as { labelNames?: string[] };
      const labels = new Set([...(out.get(m.name)?.labels ?? []), ...(metric.labelNames ?? [])]);
      out.set(m.name, { type: String(m.type), labels });
    }
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

test('dashboard: valid JSON, the datasource variable everywhere (provisioned uid by default), provisioning declares it', () => {
  const d = loadDashboard();
  assert.ok(d.uid && d.title);
  const qs = dashboardQueries(d.panels);
  assert.ok(qs.length >= 12);
  for (const q of qs) {
    assert.ok(q.expr.trim(), `${q.panel}/${q.refId}: empty query`);
    assert.ok(q.datasourceUids.length > 0, `${q.panel}: no datasource`);
    for (const uid of q.datasourceUids) assert.equal(uid, DATASOURCE_REF, `${q.panel}/${q.refId}`);
  }
  // no other datasource uid hides anywhere in the file (annotations, templating…): the dashboard
  // imports into any Grafana, its Prometheus picked from the datasource variable
  const text = readFileSync('cluster/grafana/dashboards/vilm.json', 'utf8');
  const uids = new Set([...text.matchAll(/"datasource":\s*\{[^}]*"uid":\s*"([^"]+)"/g)].map((m) => m[1]));
  assert.deepEqual([...uids], [DATASOURCE_REF]);
  assert.doesNotMatch(text, /\$\{?DS_/, 'no import-time datasource variables');
  const dsVar = d.variables.find((v) => v.name === 'datasource');
  assert.equal(dsVar?.type, 'datasource');
  assert.equal(dsVar?.query, 'prometheus');
  assert.equal((dsVar?.current as { value?: unknown } | undefined)?.value, DATASOURCE_UID, 'the provisioned datasource is the default');

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
      const ok = TARGET_LABELS.has(label) || resolved.some((r) => r.m.labels.has(label) || (label === 'le' && r.suffix === 'bucket'));
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
  // every metric of ours (coordinator and remote worker) is on a panel
  const ours = [...reg.keys()].filter((n) => n.startsWith('vilm_'));
  assert.ok(ours.length >= 30, ours.join(', '));
  assert.deepEqual(ours.filter((n) => !used.has(n)), [], 'metrics on no panel');
  // and the standard process metrics of the coordinator, by their standard names
  for (const need of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds']) assert.ok(used.has(need), `no panel uses ${need}`);
});

test('the PromQL reader finds names and labels (and so would flag a typo)', async () => {
  const r = promqlReferences('histogram_quantile(0.95, sum by (le, part) (rate(vilm_step_part_duration_seconds_bucket{part!="x,y"}[5m]))) / ignoring(worker) group_left vilm_x{job="$job"} / 1e6');
  assert.deepEqual(r.metrics, ['vilm_step_part_duration_seconds_bucket', 'vilm_x']);
  assert.deepEqual(r.labels.sort(), ['job', 'le', 'part', 'worker']);
  const reg = await registered();
  assert.equal(resolve(reg, 'vilm_token_total'), null);
  assert.equal(resolve(reg, 'vilm_loss_bucket'), null, 'a gauge has no _bucket series');
  assert.equal(resolve(reg, 'vilm_step_duration_seconds'), null, 'a histogram is queried through its suffixes');
  assert.equal(resolve(reg, 'vilm_step_duration_seconds_count')?.base, 'vilm_step_duration_seconds');
});

test('the Prometheus configs scrape the coordinator on the default metrics port and address (127.0.0.1:9464), under the job the dashboard defaults to', async () => {
  const { DEFAULT_METRICS_PORT } = await import('../src/cli/run-options.ts');
  const p = parseYaml(readFileSync('cluster/prometheus/prometheus.yml', 'utf8')) as { scrape_configs: { job_name: string; static_configs?: { targets: string[] }[] }[] };
  const c = p.scrape_configs.find((s) => s.job_name === 'vilm-coordinator');
  assert.deepEqual(c?.static_configs?.[0].targets, [`127.0.0.1:${DEFAULT_METRICS_PORT}`]);
  assert.ok(p.scrape_configs.some((s) => s.job_name === 'vilm-worker'));
  const k = parseYaml(readFileSync('cluster/prometheus/prometheus-k8s.yml', 'utf8')) as { scrape_configs: { job_name: string; dns_sd_configs?: { port: number }[] }[] };
  assert.equal(k.scrape_configs.find((s) => s.job_name === 'vilm-coordinator')?.dns_sd_configs?.[0].port, DEFAULT_METRICS_PORT);
  assert.ok(k.scrape_configs.some((s) => s.job_name === 'vilm-worker'));
  // the dashboard's job variable defaults to that job; the worker job is among its worker jobs
  const vars = loadDashboard().variables;
  assert.equal((vars.find((v) => v.name === 'job')?.current as { value?: unknown } | undefined)?.value, 'vilm-coordinator');
});
