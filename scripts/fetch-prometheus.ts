/**
 * Fetch a real Prometheus (Debian's `prometheus` package) without installing it system-wide, and
 * run it against a live vilm /metrics endpoint. Used by test/prometheus-dashboard.test.ts; also a
 * command of its own:
 *
 *   node --import tsx scripts/fetch-prometheus.ts     # prints the paths of prometheus and promtool
 *
 * The package is downloaded with `apt-get download` (no root needed, no service started) into
 * .cache/prometheus/ (git-ignored) and unpacked with `dpkg-deb -x`; later calls reuse it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export interface PrometheusTools { prometheus: string; promtool: string; version: string }
export type FetchResult = ({ ok: true } & PrometheusTools) | { ok: false; reason: string };

const DEFAULT_CACHE = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '.cache', 'prometheus');

function lastLine(s: string): string {
  return s.trim().split('\n').filter((l) => !/^W: Download is performed unsandboxed/.test(l)).pop() ?? '';
}

function tools(root: string): FetchResult {
  const prometheus = path.join(root, 'usr', 'bin', 'prometheus');
  const promtool = path.join(root, 'usr', 'bin', 'promtool');
  if (!existsSync(prometheus) || !existsSync(promtool)) return { ok: false, reason: `no prometheus/promtool under ${root}` };
  const v = spawnSync(prometheus, ['--version'], { encoding: 'utf8' });
  if (v.status !== 0) return { ok: false, reason: `${prometheus} --version failed: ${lastLine(v.stderr ?? '')}` };
  return { ok: true, prometheus, promtool, version: (v.stdout || v.stderr).split('\n')[0] };
}

/**
 * Prometheus binaries from the cache, downloading Debian's package on first use. Returns
 * `{ ok: false, reason }` (never throws) where apt cannot be reached, so a test can skip with it.
 */
export function ensurePrometheus(cacheDir = DEFAULT_CACHE): FetchResult {
  const root = path.join(cacheDir, 'root');
  const cached = tools(root);
  if (cached.ok) return cached;

  for (const bin of ['apt-get', 'dpkg-deb']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) return { ok: false, reason: `${bin} not found (not a Debian/Ubuntu machine)` };
  }
  const debDir = path.join(cacheDir, 'deb');
  mkdirSync(debDir, { recursive: true });
  const download = () => spawnSync('apt-get', ['download', 'prometheus'], { cwd: debDir, encoding: 'utf8', timeout: 300_000 });
  let r = download();
  if (r.status !== 0) {
    // a fresh container often has no package lists yet; `apt-get update` needs root, so it may fail too
    spawnSync('apt-get', ['update'], { encoding: 'utf8', timeout: 300_000 });
    r = download();
  }
  const debs = readdirSync(debDir).filter((f) => /^prometheus_.*\.deb$/.test(f)).sort();
  if (r.status !== 0 || debs.length === 0) {
    return { ok: false, reason: `apt-get download prometheus failed: ${lastLine(`${r.stdout ?? ''}\n${r.stderr ?? ''}`) || String(r.error ?? 'no .deb')}` };
  }
  // unpack beside the final folder, then rename: an interrupted unpack never looks complete
  const tmp = `${root}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const x = spawnSync('dpkg-deb', ['-x', path.join(debDir, debs[debs.length - 1]), tmp], { encoding: 'utf8' });
  if (x.status !== 0) return { ok: false, reason: `dpkg-deb -x failed: ${lastLine(x.stderr)}` };
  rmSync(root, { recursive: true, force: true });
  renameSync(tmp, root);
  return tools(root);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface RunningPrometheus {
  url: string;
  /** all output of the prometheus process so far (for error messages) */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Run prometheus on 127.0.0.1 (free port, temporary storage) scraping `targets` every second.
 * Resolves once its /-/ready endpoint answers.
 */
export async function startPrometheus(bin: string, targets: string[], opts: { scrapeInterval?: string } = {}): Promise<RunningPrometheus> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vilm-prom-'));
  const config = [
    'global:',
    `  scrape_interval: ${opts.scrapeInterval ?? '1s'}`,
    `  evaluation_interval: ${opts.scrapeInterval ?? '1s'}`,
    'scrape_configs:',
    '  - job_name: vilm-coordinator',
    '    static_configs:',
    `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
    '',
  ].join('\n');
  writeFileSync(path.join(dir, 'prometheus.yml'), config);
  return launchPrometheus(bin, dir);

}

export interface PromSeries { metric: Record<string, string>; values: [number, string][] }

/** Range query through the HTTP API; throws on a query error (bad PromQL) with Prometheus' message. */
export async function queryRange(url: string, expr: string, startSec: number, endSec: number, stepSec = 1): Promise<PromSeries[]> {
  const q = new URLSearchParams({ query: expr, start: String(startSec), end: String(endSec), step: String(stepSec) });
  const r = await fetch(`${url}/api/v1/query_range?${q}`);
  const j = (await r.json()) as { status: string; error?: string; data?: { resultType: string; result: PromSeries[] } };
  if (j.status !== 'success' || !j.data) throw new Error(`query failed (${r.status}): ${j.error ?? 'unknown'}: ${expr}`);
  return j.data.result;
}

/** Names of the targets Prometheus has scraped successfully at least once (health "up"). */
export async function upTargets(url: string): Promise<string[]> {
  const r = await fetch(`${url}/api/v1/targets`);
  const j = (await r.json()) as { data: { activeTargets: { scrapeUrl: string; health: string }[] } };
  return j.data.activeTargets.filter((t) => t.health === 'up').map((t) => t.scrapeUrl);
}

/** `promtool check metrics` on an exposition text: returns its exit status and complaints. */
export function promtoolCheckMetrics(promtool: string, exposition: string): { status: number; output: string } {
  const r = spawnSync(promtool, ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
  return { status: r.status ?? -1, output: `${r.stdout}${r.stderr}`.trim() };
}

/**
 * Run prometheus with `dir`/prometheus.yml on 127.0.0.1 (a free port, storage in `dir`, which
 * `stop` removes). Resolves once its /-/ready endpoint answers.
 */
export async function launchPrometheus(bin: string, dir: string): Promise<RunningPrometheus> {
  const port = await freePort();
  const child: ChildProcess = spawn(bin, [
    `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  let exited = false;
  child.once('exit', () => { exited = true; });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (!exited) {
      const done = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      await done;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) { await stop(); throw new Error(`prometheus exited at start:\n${out}`); }
    try {
      const r = await fetch(`${url}/-/ready`);
      if (r.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) { await stop(); throw new Error(`prometheus not ready after 60 s:\n${out}`); }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, output: () => out, stop };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const r = ensurePrometheus();
  if (!r.ok) { process.stderr.write(`fetch-prometheus: ${r.reason}\n`); process.exit(1); }
  process.stdout.write(`${r.version}\nprometheus: ${r.prometheus}\npromtool:   ${r.promtool}\n`);
}
