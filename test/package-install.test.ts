/**
 * vilm as an installed package (issue 12): `npm pack` (which builds lib/ through `prepare`), the
 * tarball installed into an empty folder, and from there — not the repository — `vilm --version`,
 * `vilm start` (the built-in sample and configs found inside the package) and `vilm predict` (the
 * shipped model). The installed copy runs its compiled JavaScript (lib/ current, no tsx).
 * Dependencies come from the npm registry (or npm's cache, --prefer-offline).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const root = mkdtempSync(path.join(tmpdir(), 'vilm-pack-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

test('npm pack → npm install into an empty folder → vilm start and vilm predict from there', { timeout: 900_000 }, async () => {
  const packed = execFileSync('npm', ['pack', '--json', '--pack-destination', root], { cwd: repo, encoding: 'utf8', timeout: 300_000 });
  const info = JSON.parse(packed.slice(packed.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  const files = new Set(info[0].files.map((f) => f.path));
  for (const f of ['lib/.built', 'lib/cli/main.js', 'lib/fleet/worker/thread-worker.js', 'configs/tiny.yaml', 'configs/sample.yaml',
    'data/sample/dia-ly.jsonl', 'models/viwiki-tiny/model.safetensors', 'bin/launch.js']) {
    assert.ok(files.has(f), `the package lacks ${f}`);
  }
  assert.ok(![...files].some((f) => f.startsWith('test/') || f.startsWith('runs/') || f.startsWith('node_modules/')), 'tests or local state packed');

  const app = path.join(root, 'app');
  mkdirSync(app);
  writeFileSync(path.join(app, 'package.json'), '{"name":"app","version":"1.0.0","private":true}\n');
  execFileSync('npm', ['install', path.join(root, info[0].filename), '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app, stdio: 'pipe', timeout: 600_000 });
  const pkg = path.join(app, 'node_modules', 'vilm');
  const launch = await import(pathToFileURL(path.join(pkg, 'bin', 'launch.js')).href) as { compiledIsCurrent: () => boolean };
  assert.equal(launch.compiledIsCurrent(), true, 'the installed package would transpile its sources at each launch');

  const vilm = path.join(app, 'node_modules', '.bin', 'vilm');
  const env = { ...process.env, VILM_CACHE_DIR: path.join(root, 'cache') };
  const version = execFileSync(vilm, ['--version'], { cwd: app, encoding: 'utf8', env }).trim();
  assert.equal(version, (JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string }).version);

  const s = spawnSync(vilm, ['start', '--steps', '4', '--test-sequences', '8', '--max-tokens', '5', '--out', 'first-run'], { cwd: app, encoding: 'utf8', env, timeout: 400_000 });
  assert.equal(s.status, 0, s.stderr.slice(-3000));
  const final = JSON.parse(readFileSync(path.join(app, 'first-run', 'final.json'), 'utf8')) as { step: number; testLoss: number };
  assert.equal(final.step, 4);
  assert.ok(final.testLoss > 0 && Number.isFinite(final.testLoss));
  assert.ok(existsSync(path.join(app, 'first-run', 'report.html')));

  const p = spawnSync(vilm, ['predict', '--prompt', 'Hà Nội là', '--max-tokens', '8', '--seed', '1'], { cwd: app, encoding: 'utf8', env, timeout: 120_000 });
  assert.equal(p.status, 0, p.stderr.slice(-3000));
  assert.ok(p.stdout.startsWith('Hà Nội là') && p.stdout.trim().length > 'Hà Nội là'.length + 3, p.stdout);
  assert.deepEqual(readdirSync(app).sort(), ['first-run', 'node_modules', 'package-lock.json', 'package.json']);
});
