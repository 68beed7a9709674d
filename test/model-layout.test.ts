import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { loadConfig } from '../src/config/index.ts';
import { buildLayout, summarize, initParams } from '../src/model/layout.ts';

test('the seed config has exactly 1,427,456 weight-matrix parameters', () => {
  const cfg = loadConfig('configs/tiny.yaml');
  const s = summarize(buildLayout(cfg.model));
  assert.equal(s.weightMatrices, 640_000 + 3 * (16_384 + 32_768) + 640_000);
  assert.equal(s.weightMatrices, 1_427_456);
  // layernorm weight+bias: 2 per block ×3 blocks + final = 7 norms × 128
  assert.equal(s.other, 7 * 2 * 64);
  assert.equal(s.total, s.weightMatrices + s.other);
});

test('layout is contiguous, embedding first, offsets unique', () => {
  const cfg = loadConfig('configs/tiny.yaml');
  const L = buildLayout(cfg.model);
  assert.equal(L.embedding.offset, 0);
  let off = 0;
  for (const p of L.params) { assert.equal(p.offset, off); off += p.size; }
  assert.equal(off, L.total);
  assert.equal(new Set(L.params.map((p) => p.name)).size, L.params.length);
});

test('tied embeddings drop the output head; init is deterministic in the seed', () => {
  const cfg = loadConfig('configs/test.yaml');
  const tied = buildLayout({ ...cfg.model, tie_embeddings: true });
  assert.equal(tied.byName.has('output.weight'), false);
  const L = buildLayout(cfg.model);
  const a = initParams(L, cfg.model, 1), b = initParams(L, cfg.model, 1), c = initParams(L, cfg.model, 2);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const norm = L.byName.get('norm.weight')!;
  assert.ok(a.subarray(norm.offset, norm.offset + norm.size).every((v) => v === 1));
});

test('vilm model summary --json reports the breakdown; bad config gives a one-line error', () => {
  const out = execFileSync('node', ['--import', 'tsx', 'src/cli/main.ts', 'model', 'summary', '--json'], { encoding: 'utf8' });
  const j = JSON.parse(out) as { weightMatrices: number; other: number; total: number; breakdown: unknown[] };
  assert.equal(j.weightMatrices, 1_427_456);
  assert.equal(j.total, j.weightMatrices + j.other);
  assert.ok(j.breakdown.length > 10);
  try {
    execFileSync('node', ['--import', 'tsx', 'src/cli/main.ts', 'model', 'summary', '--config', 'configs/missing.yaml'], { encoding: 'utf8', stdio: 'pipe' });
    assert.fail('expected non-zero exit');
  } catch (e) {
    const err = e as { status: number; stderr: string };
    assert.equal(err.status, 1);
    assert.match(err.stderr.trim(), /^vilm: configs\/missing\.yaml: cannot read config/);
    assert.equal(err.stderr.trim().split('\n').length, 1);
  }
});
