/**
 * The user's own words run as typed (issue 12): `vilm train` / `vilm coordinator --workers N`
 * without --data, --out or --config, from a directory that is not the repository. Checked: the
 * built-in sample is prepared once into the cache (VILM_CACHE_DIR here) and reused, the run goes
 * to runs/<command>-<time>/ under the current directory and the log says so, the package's own
 * configs/ is found from elsewhere, and the two runs (threads vs in-process) train to the same bytes.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../bin/vilm.js', import.meta.url));
const root = mkdtempSync(path.join(tmpdir(), 'vilm-defaults-'));
const cwd = path.join(root, 'elsewhere');
const cache = path.join(root, 'cache');
test.after(() => rmSync(root, { recursive: true, force: true }));

function vilm(args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], {
    cwd, encoding: 'utf8', timeout: 300_000, env: { ...process.env, VILM_CACHE_DIR: cache },
  });
}

interface Final { step: number; weightsSha256: string; trainLoss: number; testLoss: number | null }

test('train and coordinator without --data/--out/--config: the sample, prepared once, runs/<command>-<time>', { timeout: 600_000 }, () => {
  mkdirSync(cwd, { recursive: true });
  const flags = ['--steps', '4', '--test-sequences', '8', '--set', 'train.eval_every=2', '--set', 'train.eval_sequences=8'];
  const a = vilm(['train', ...flags]);
  assert.equal(a.status, 0, a.stderr);
  assert.match(a.stderr, /no --data: preparing the built-in sample once into .*cache\/sample-[0-9a-f]{16}\/prepared/);
  assert.match(a.stderr, /no --out: writing the run to runs\/train-\d{8}-\d{6}/);
  const samples = readdirSync(cache);
  assert.equal(samples.length, 1, `cache holds ${samples.join(', ')} (a temp folder left behind?)`);
  const manifest = path.join(cache, samples[0], 'prepared', 'manifest.json');
  const built = statSync(manifest).mtimeMs;
  const fa = JSON.parse(a.stdout.trim().split('\n').at(-1)!) as Final;
  assert.equal(fa.step, 4);
  assert.ok(fa.testLoss !== null && fa.testLoss > 0);
  // the sample config's vocabulary (configs/sample.yaml, found in the package from elsewhere)
  const tok = JSON.parse(readFileSync(path.join(cache, samples[0], 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
  assert.equal(Object.keys(tok.model.vocab).length, 2000);

  const b = vilm(['coordinator', '--workers', '2', '--local-only', ...flags]);
  assert.equal(b.status, 0, b.stderr);
  assert.match(b.stderr, /no --data: the built-in sample, prepared in /);
  assert.match(b.stderr, /no --out: writing the run to runs\/coordinator-\d{8}-\d{6}/);
  assert.equal(statSync(manifest).mtimeMs, built, 'the cached sample was prepared again');
  const fb = JSON.parse(b.stdout.trim().split('\n').at(-1)!) as Final;
  assert.equal(fb.weightsSha256, fa.weightsSha256, 'same config and data: same bytes whatever the fleet');

  const runs = readdirSync(path.join(cwd, 'runs')).sort();
  assert.equal(runs.length, 2);
  assert.match(runs[0], /^coordinator-/);
  assert.match(runs[1], /^train-/);
  for (const r of runs) statSync(path.join(cwd, 'runs', r, 'checkpoint.vilm'));
});
