import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { ensurePrometheus, freePort, startPrometheus, queryRange, promtoolCheckMetrics, upTargets } from '../scripts/fetch-prometheus.ts';
import { dashboardQueries, expandGrafanaVariables, loadDashboard } from './support/dashboard.ts';
import { prepareDataset } from '../src/data/prepare/prepare.ts';
import type { Tokenizer } from '../src/tokenizer/types.ts';

/**
 * The dashboard proven against a real Prometheus: Debian's `prometheus` package (fetched with
 * `apt-get download`, unpacked with `dpkg-deb -x`, cached in .cache/) scrapes a LIVE short
 * training run (`vilm coordinator … --metrics-port P`, 2 worker threads, configs/test.yaml) every
 * second; then every query of every panel must return finite data over the run, and
 * `promtool check metrics` must accept the coordinator's own exposition.
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

interface LiveRun { metricsPort: number; outDir: string; child: ChildProcess; exited: Promise<number | null>; stderr(): string }

/** The metrics source: a real short training run. */
async function startLiveTraining(dir: string, metricsPort: number): Promise<LiveRun> {
  const data = await prepareTinyData(dir);
  const outDir = path.join(dir, 'run');
  const child = spawn('node', [
    ...CLI, 'coordinator', '--config', 'configs/test.yaml', '--data', data, '--out', outDir,
    '--workers', '2', '--local-only', '--backend', 'wasm', '--metrics-port', String(metricsPort),
    '--steps', '150', '--test-sequences', '8', '--set', 'train.eval_every=5', '--set', 'train.checkpoint_every=10',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { metricsPort, outDir, child, exited, stderr: () => err };
}

test('every Grafana panel query returns data from a real Prometheus scraping a live training run; promtool accepts our metrics', { timeout: 600_000 }, async () => {
  const tools = ensurePrometheus();
  // a missing tool is a failure, not a skip: CI installs it (.ci/run), so must a contributor
  assert.ok(tools.ok, `cannot get Debian's prometheus package (apt-get download prometheus): ${tools.ok ? '' : tools.reason}`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vilm-promtest-'));
  // Prometheus first (ready, scraping every second), then the run: a short run must not finish
  // before its first scrape
  const metricsPort = await freePort();
  const prom = await startPrometheus(tools.prometheus, [`127.0.0.1:${metricsPort}`], { scrapeInterval: '1s' });
  const run = await startLiveTraining(dir, metricsPort).catch(async (e: unknown) => { await prom.stop(); throw e; });
  try {
    const start = Date.now() / 1000;
    // while it trains: take one exposition for promtool, and see Prometheus scrape the target
    let exposition = '';
    let scraped = false;
    let code: number | null | undefined;
    void run.exited.then((c) => { code = c; });
    while (code === undefined) {
      try {
        const r = await fetch(`http://127.0.0.1:${run.metricsPort}/metrics`);
        const text = await r.text();
        if (/^vilm_steps_total [1-9]/m.test(text)) exposition = text;
      } catch { /* not listening yet */ }
      if (!scraped && (await upTargets(prom.url)).length > 0) scraped = true;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(code, 0, `coordinator failed:\n${run.stderr().slice(-3000)}`);
    assert.ok(scraped, 'Prometheus never scraped the coordinator');
    assert.ok(exposition, 'never saw vilm_steps_total > 0 on /metrics');
    const end = Date.now() / 1000 + 1;

    const lint = promtoolCheckMetrics(tools.promtool, exposition);
    assert.equal(lint.status, 0, `promtool check metrics:\n${lint.output}`);

    const queries = dashboardQueries(loadDashboard().panels);
    assert.ok(queries.length > 0);
    const empty: string[] = [];
    for (const q of queries) {
      const series = await queryRange(prom.url, expandGrafanaVariables(q.expr, '5s'), start, end, 1);
      const finite = series.flatMap((s) => s.values).filter(([, v]) => Number.isFinite(Number(v)));
      if (finite.length === 0) empty.push(`${q.panel} [${q.refId}] ${q.expr}`);
    }
    assert.deepEqual(empty, [], 'panel queries without data');

    // the same run's log renders as a report
    assert.ok(existsSync(path.join(run.outDir, 'log.jsonl')));
    const rep = vilm(['report', run.outDir], 60_000);
    assert.equal(rep.status, 0, rep.stderr);
    assert.equal((readFileSync(path.join(run.outDir, 'report.html'), 'utf8').match(/<svg/g) ?? []).length, 4);
  } finally {
    if (run.child.exitCode === null) { run.child.kill('SIGKILL'); await run.exited; }
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
