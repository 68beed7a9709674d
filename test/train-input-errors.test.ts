/**
 * Bad training input through the real CLI: one line on stderr naming the file, a non-zero exit,
 * and nothing written that looks like a run (no checkpoint, no final.json).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeSyntheticData } from './support/synthetic-data.ts';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-train-input-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

function train(data: string, out: string, extra: string[] = []) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'train', '--config', 'configs/test.yaml',
    '--data', data, '--out', out, '--backend', 'wasm', '--steps', '2', ...extra], { encoding: 'utf8', timeout: 120_000 });
}

function expectOneLine(r: ReturnType<typeof train>, out: string, re: RegExp): void {
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('vilm: '));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], re);
  assert.ok(!existsSync(path.join(out, 'checkpoint.vilm')) && !existsSync(path.join(out, 'final.json')), 'nothing that looks like a run');
}

test('token ids beyond the model vocabulary: refused before the first step, naming the split file', { timeout: 150_000 }, () => {
  // configs/test.yaml has vocab 512; this data uses ids up to 899
  const data = writeSyntheticData(path.join(root, 'big-vocab'), { vocab: 900, buckets: [16, 32], rowsPerBucket: 8, seed: 3 });
  const out = path.join(root, 'run-big');
  expectOneLine(train(data, out), out, /^vilm: .*big-vocab\/train\.bin: token id \d+ is outside the model's vocabulary \(model\.vocab_size 512\)/);
});

test('a data set with an empty test split: refused before training, naming the manifest', { timeout: 150_000 }, () => {
  const data = writeSyntheticData(path.join(root, 'no-test'), { vocab: 500, buckets: [16, 32], rowsPerBucket: 8, seed: 4, splitRows: { test: 0 } });
  const out = path.join(root, 'run-no-test');
  expectOneLine(train(data, out), out, /^vilm: .*no-test\/manifest\.json: the test split is empty/);
});

test('a corrupt checkpoint in OUT (and no previous one): one line naming it; eval, predict and export name it too', { timeout: 200_000 }, () => {
  const data = writeSyntheticData(path.join(root, 'ok'), { vocab: 500, buckets: [16, 32], rowsPerBucket: 8, seed: 5 });
  const out = path.join(root, 'run-corrupt');
  const ck = path.join(out, 'checkpoint.vilm');
  spawnSync('mkdir', ['-p', out]);
  writeFileSync(ck, 'VILMCKP1 not really');
  const r = train(data, out);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr.trim(), /^vilm: .*run-corrupt\/checkpoint\.vilm: (truncated|corrupt) checkpoint/m);
  for (const cmd of [['eval', '--checkpoint', out, '--ids', '[1,2,3]'], ['predict', '--checkpoint', out, '--prompt', 'Hà Nội'],
    ['export', 'safetensors', '--checkpoint', out, '--out', path.join(root, 'export-corrupt')]]) {
    const e = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...cmd], { encoding: 'utf8', timeout: 100_000 });
    assert.equal(e.status, 1, e.stderr);
    assert.equal(e.stderr.trim().split('\n').length, 1, e.stderr);
    assert.match(e.stderr.trim(), /^vilm: .*run-corrupt\/checkpoint\.vilm: (truncated|corrupt) checkpoint/);
  }
});
