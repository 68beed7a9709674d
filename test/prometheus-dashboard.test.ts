import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { ensurePrometheus, freePort, launchPrometheus, queryRange, promtoolCheckMetrics, upTargets, type RunningPrometheus } from '../scripts/fetch-prometheus.ts';
import { dashboardQueries, expandGrafanaVariables, loadDashboard, parseLabelValues, variableQuery, type VariableValue } from './support/dashboard.ts';
import { prepareDataset } from '../src/data/prepare/prepare.ts';
import type { Tokenizer } from '../src/tokenizer/types.ts';

/**
 * The dashboard proven against a real Prometheus: Debian's `prometheus` package (fetched with
 * `apt-get download`, unpacked with `dpkg-deb -x`, cached in .cache/), configured from
 * cluster/prometheus/prometheus.yml (its job names; targets and a 1 s interval swapped in), scrapes
 * a LIVE short training run (`vilm coordinator … --metrics-port P`, 2 worker threads and one remote
 * `vilm worker --metrics-port Q`, configs/test.yaml). Then the dashboard's variables are resolved
 * the way Grafana does (their label_values queries against this Prometheus), every query of every
 * panel must return finite data over the run — the test loss too, scraped while the coordinator
 * lingers after the run — and `promtool check metrics` must accept both expositions.
 */
const CLI = ['--import', 'tsx', 'src/cli/main.ts'];

function vilm(args: string[], timeout = 300_000) {
  return spawnSync('node', [...CLI, ...args], { encoding: 'utf8', timeout });
}

function sentence(i: number): string {
  const subjects = ['Hà Nội', 'Thành phố Huế', 'Sông Hồng', 'Người dân', 'Học sinh', 'Nhà khoa học', 'Vịnh Hạ Long', 'Đà Nẵng'];
  const verbs = ['là', 'có', 'nằm ở', 'được biết đến với', 'thường có', 'đã xây dựng'];
  const objects = ['nhiều di tích lịch sử', 'khí hậu nhiệt đới gió mùa', 'các món ăn truyền thống', 'phía bắc Việt Nam', 'một trường đại học lớn', 'những cánh đồng lúa'];
  return `${subjects[i % subjects.length]} ${verbs[(i * 7) % verbs.length]} ${objects[(i * 5) % objects.length]} vào năm ${1900 + (i * 37) % 120}.`;
}

/**
 * A real (if dumb) byte-level tokenizer (ids 3..258, under configs/test.yaml's vocab of 512): this
 * test is about metrics, so it prepares its data without training a BPE tokenizer first.
 */
const byteTokenizer: Tokenizer = {
  vocabSize: 259, padId: 0, bosId: 1, eosId: 2,
  sha256: createHash('sha256').update('byte-tokenizer').digest('hex'),
  encode: (text) => Array.from(Buffer.from(text, 'utf8'), (b) => b + 3),
  decode: (ids) => Buffer.from(Array.from(ids).filter((t) => t >= 3).map((t) => t - 3)).toString('utf8'),
};

/** A tiny Vietnamese corpus, prepared (split, packed into buckets) for configs/test.yaml. */
async function prepareTinyData(dir: string): Promise<string> {
  const corpus = path.join(dir, 'corpus.jsonl');
  const docs = Array.from({ length: 300 }, (_, d) => ({
    id: `doc-${d}`, title: `Bài ${d}`, source: 'test',
    text: Array.from({ length: 2 + (d % 4) }, (_, s) => sentence(d * 13 + s)).join(' '),
  }));
  writeFileSync(corpus, docs.map((x) => JSON.stringify(x)).join('\n') + '\n');
  const data = path.join(dir, 'data');
  await prepareDataset({ inputs: [corpus], tokenizer: byteTokenizer, out: data, seed: 1, maxLen: 128, buckets: [32, 64, 128] });
  return data;
}

interface Proc { child: ChildProcess; exited: Promise<number | null>; stderr(): string }

function start(args: string[]): Proc {
  const child = spawn('node', [...CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, stderr: () => err };
}

/**
 * Prometheus with cluster/prometheus/prometheus.yml's scrape jobs (the names the dashboard's
 * variables default to): the coordinator job's target and the worker job's file_sd file point at
 * this test's processes; everything scraped every second.
 */
async function startPrometheusFromClusterConfig(bin: string, coordinator: string, workers: string[]): Promise<RunningPrometheus> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vilm-prom-'));
  const cfg = parseYaml(readFileSync('cluster/prometheus/prometheus.yml', 'utf8')) as {
    global: Record<string, string>; scrape_configs: { job_name: string; static_configs?: { targets: string[] }[]; file_sd_configs?: { files: string[] }[] }[];
  };
  cfg.global.scrape_interval = '1s';
  cfg.global.evaluation_interval = '1s';
  const coord = cfg.scrape_configs.find((c) => c.job_name === 'vilm-coordinator');
  const worker = cfg.scrape_configs.find((c) => c.job_name === 'vilm-worker');
  assert.ok(coord?.static_configs?.[0] && worker?.file_sd_configs?.[0], 'prometheus.yml: jobs vilm-coordinator (static) and vilm-worker (file_sd)');
  coord.static_configs[0].targets = [coordinator];
  const sdFile = worker.file_sd_configs[0].files[0].replace('*', 'test');
  mkdirSync(path.join(dir, path.dirname(sdFile)), { recursive: true });
  writeFileSync(path.join(dir, sdFile), toYaml([{ targets: workers }]));
  writeFileSync(path.join(dir, 'prometheus.yml'), toYaml(cfg));
  return launchPrometheus(bin, dir);
}

/** A label's values over the series matching `selector` in [start, end] (Grafana's label_values). */
async function labelValues(url: string, selector: string, label: string, start: number, end: number): Promise<string[]> {
  const q = new URLSearchParams({ 'match[]': selector, start: String(start), end: String(end) });
  const r = await fetch(`${url}/api/v1/label/${label}/values?${q}`);
  const j = (await r.json()) as { status: string; data?: string[]; error?: string };
  if (j.status !== 'success' || !j.data) throw new Error(`label values ${label} of ${selector}: ${j.error ?? r.status}`);
  return j.data;
}

test('every Grafana panel query returns data from a real Prometheus scraping a live training run (variables resolved like Grafana); promtool accepts our metrics', { timeout: 600_000 }, async () => {
  const tools = ensurePrometheus();
  // a missing tool is a failure, not a skip: CI installs it (.ci/run), so must a contributor
  assert.ok(tools.ok, `cannot get Debian's prometheus package (apt-get download prometheus): ${tools.ok ? '' : tools.reason}`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vilm-promtest-'));
  const data = await prepareTinyData(dir);
  const outDir = path.join(dir, 'run');
  const [metricsPort, wsPort, workerPort] = [await freePort(), await freePort(), await freePort()];
  const coordTarget = `127.0.0.1:${metricsPort}`, workerTarget = `127.0.0.1:${workerPort}`;
  // Prometheus first (ready, scraping every second), then the run: a short run must not finish
  // before its first scrape
  const prom = await startPrometheusFromClusterConfig(tools.prometheus, coordTarget, [workerTarget]);
  // the coordinator waits for the remote worker (3 = 2 threads + 1 remote), so the remote worker's
  // own metrics have tasks to show
  const run = start([
    'coordinator', '--config', 'configs/test.yaml', '--data', data, '--out', outDir,
    '--workers', '2', '--min-workers', '3', '--port', String(wsPort), '--backend', 'wasm', '--metrics-port', String(metricsPort),
    '--steps', '150', '--test-sequences', '8', '--set', 'train.eval_every=5', '--set', 'train.checkpoint_every=10',
  ]);
  const worker = start(['worker', '--connect', `ws://127.0.0.1:${wsPort}`, '--name', 'remote-1', '--metrics-port', String(workerPort), '--retry', '120']);
  try {
    const startSec = Date.now() / 1000;
    // while it trains: take one exposition of each for promtool (then leave /metrics to Prometheus:
    // the coordinator's linger ends at the first scrape after the run, which must be Prometheus'),
    // and see Prometheus scrape both targets
    let exposition = '', workerExposition = '';
    const scraped = new Set<string>();
    let code: number | null | undefined;
    void run.exited.then((c) => { code = c; });
    const deadline = Date.now() + 500_000;
    while (code === undefined) {
      assert.ok(Date.now() < deadline, `the run did not end in time:\n${run.stderr().slice(-3000)}`);
      if (!exposition) {
        try {
          const text = await (await fetch(`http://${coordTarget}/metrics`)).text();
          if (/^vilm_steps_total [1-9]/m.test(text)) exposition = text;
        } catch { /* not listening yet */ }
      }
      if (!workerExposition) {
        try {
          const text = await (await fetch(`http://${workerTarget}/metrics`)).text();
          if (/^vilm_remote_tasks_total [1-9]/m.test(text)) workerExposition = text;
        } catch { /* not listening yet */ }
      }
      for (const t of await upTargets(prom.url)) scraped.add(new URL(t).host);
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(code, 0, `coordinator failed:\n${run.stderr().slice(-3000)}`);
    assert.deepEqual([...scraped].sort(), [coordTarget, workerTarget].sort(), 'Prometheus scraped the coordinator and the remote worker');
    assert.ok(exposition, 'never saw vilm_steps_total > 0 on /metrics');
    assert.ok(workerExposition, 'never saw vilm_remote_tasks_total > 0 on the remote worker');
    // scraped during the run: the coordinator waited for Prometheus to take the final figures
    assert.match(run.stderr(), /metrics: waiting up to 60 s for one more scrape of the final figures/);
    const end = Date.now() / 1000 + 1;

    for (const [what, text] of [['coordinator', exposition], ['remote worker', workerExposition]] as const) {
      const lint = promtoolCheckMetrics(tools.promtool, text);
      assert.equal(lint.status, 0, `promtool check metrics (${what}):\n${lint.output}`);
    }

    // the variables, resolved like Grafana: each label_values query against this Prometheus
    const d = loadDashboard();
    const vars: Record<string, VariableValue> = {};
    const resolved: Record<string, string[]> = {};
    for (const v of d.variables.filter((x) => x.type === 'query')) {
      const lv = parseLabelValues(variableQuery(v));
      assert.ok(lv, `${v.name}: ${variableQuery(v)}`);
      resolved[v.name] = await labelValues(prom.url, expandGrafanaVariables(lv.selector, '5s', vars), lv.label, startSec, end);
      if (v.name === 'job') vars.job = 'vilm-coordinator';
      else if (v.name === 'instance') vars.instance = coordTarget;
      else vars[v.name] = v.includeAll && v.allValue ? { all: v.allValue } : { values: resolved[v.name], multi: true };
    }
    assert.deepEqual(resolved, { job: ['vilm-coordinator'], instance: [coordTarget], worker_job: ['vilm-worker'], worker_instance: [workerTarget] });

    const queries = dashboardQueries(d.panels);
    assert.ok(queries.length > 0);
    const empty: string[] = [];
    for (const q of queries) {
      const series = await queryRange(prom.url, expandGrafanaVariables(q.expr, '5s', vars), startSec, end, 1);
      const finite = series.flatMap((s) => s.values).filter(([, v]) => Number.isFinite(Number(v)));
      if (finite.length === 0) empty.push(`${q.panel} [${q.refId}] ${q.expr}`);
    }
    assert.deepEqual(empty, [], 'panel queries without data');
    // another run's coordinator is not mixed in: an instance that is not this run's has no data
    const other = await queryRange(prom.url, expandGrafanaVariables(queries[0].expr, '5s', { ...vars, instance: '127.0.0.1:1' }), startSec, end, 1);
    assert.equal(other.flatMap((s) => s.values).length, 0, 'queries follow $instance');
    // the final figures were scraped (the linger) and are the run's
    const final = JSON.parse(readFileSync(path.join(outDir, 'final.json'), 'utf8')) as { testLoss: number; step: number };
    const testLoss = await queryRange(prom.url, `vilm_test_loss{job="vilm-coordinator", instance="${coordTarget}"}`, startSec, end, 1);
    const last = testLoss.flatMap((s) => s.values).map(([, v]) => Number(v)).filter(Number.isFinite).at(-1);
    assert.ok(last !== undefined && Math.abs(last - final.testLoss) < 1e-9, `test loss in Prometheus ${last}, final.json ${final.testLoss}`);

    // the same run's log renders as a report
    assert.ok(existsSync(path.join(outDir, 'log.jsonl')));
    const rep = vilm(['report', outDir], 60_000);
    assert.equal(rep.status, 0, rep.stderr);
    assert.equal((readFileSync(path.join(outDir, 'report.html'), 'utf8').match(/<svg/g) ?? []).length, 4);
  } finally {
    for (const p of [run, worker]) if (p.child.exitCode === null && p.child.signalCode === null) { p.child.kill('SIGKILL'); await p.exited; }
    await prom.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('promtool check config accepts both Prometheus configurations in cluster/prometheus', { timeout: 300_000 }, () => {
  const tools = ensurePrometheus();
  if (!tools.ok) assert.fail(tools.reason);
  const promtool: string = tools.promtool;
  for (const f of ['cluster/prometheus/prometheus.yml', 'cluster/prometheus/prometheus-k8s.yml']) {
    const r = spawnSync(promtool, ['check', 'config', f], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `promtool check config ${f}:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout + r.stderr, /SUCCESS/);
  }
  // the check is real: a misspelled field is refused
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vilm-promtool-'));
  const bad = path.join(dir, 'bad.yml');
  writeFileSync(bad, readFileSync('cluster/prometheus/prometheus-k8s.yml', 'utf8').replace('scrape_interval:', 'scrape_intervall:'));
  const refused: { status: number | null; stdout: string } = spawnSync(promtool, ['check', 'config', bad], { encoding: 'utf8', timeout: 60_000 });
  rmSync(dir, { recursive: true, force: true });
  assert.notEqual(refused.status, 0, refused.stdout);
});
