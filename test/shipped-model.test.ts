/**
 * The model that ships with vilm (models/viwiki-tiny): usable right after `npm install`, with no
 * checkpoint and no training — `vilm predict` and `vilm eval` default to it — and really trained:
 * it compresses Vietnamese text it never saw far better than an untrained model could.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadExported } from '../src/export/index.ts';
import { SHIPPED_MODEL_DIR } from '../src/export/model-source.ts';
import { buildLayout } from '../src/model/layout.ts';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-shipped-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

// run from another directory, through the package's launcher: the shipped model is found from the package, not the cwd
const vilm = (...args: string[]) => spawnSync(process.execPath, [path.resolve('bin/vilm.js'), ...args], {
  encoding: 'utf8', cwd: root, timeout: 240_000,
});

test('the shipped model is the seed architecture: 10k vocabulary, 1,427,456 weight-matrix parameters, with its tokenizer and card', () => {
  const m = loadExported(SHIPPED_MODEL_DIR);
  assert.equal(m.model.vocab_size, 10000);
  const layout = buildLayout(m.model);
  const matrices = layout.params.filter((p) => p.kind === 'matrix' || p.kind === 'embedding').reduce((a, p) => a + p.size, 0);
  assert.equal(matrices, 1_427_456);
  assert.ok(m.step > 0, 'trained for some steps');
  assert.ok(JSON.parse(m.tokenizerJson).model.type === 'BPE');
  const card = readFileSync(path.join(SHIPPED_MODEL_DIR, 'README.md'), 'utf8');
  for (const must of ['CC BY-SA', 'bits per byte', 'vilm coordinator', 'Limitations']) assert.ok(card.includes(must), `model card mentions ${must}`);
});

test('vilm predict with no checkpoint uses the shipped model and writes Vietnamese text', { timeout: 300_000 }, () => {
  const r = vilm('predict', '--prompt', 'Hà Nội là', '--max-tokens', '24', '--temperature', '0');
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdout.startsWith('Hà Nội là'), r.stdout);
  const more = r.stdout.slice('Hà Nội là'.length).trim();
  assert.ok(more.length >= 20, `a continuation: ${JSON.stringify(more)}`);
  assert.match(more, /[ăâđêôơưáàảãạấầẩẫậắằẳẵặéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ]/i, 'Vietnamese letters');
  assert.ok(!more.includes('\ufffd'), 'no broken character');
});

test('vilm eval with no checkpoint scores held-out text with the shipped model far below an untrained one', { timeout: 300_000 }, () => {
  // the built-in sample corpus: original Vietnamese text, never part of the training data
  const sample = path.resolve('data/sample');
  const file = path.join(sample, readdirSync(sample).filter((f) => f.endsWith('.jsonl')).sort()[0]);
  const r = vilm('eval', '--in', file, '--json');
  assert.equal(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { loss: number; bitsPerByte: number; tokens: number; bytes: number };
  assert.ok(res.tokens > 1000 && res.bytes > res.tokens);
  // an untrained model predicts ~uniformly: ln(10000) = 9.2 nats a token, ≈ 2.7 bits per byte here;
  // gzip -9 manages ~2.5 on Vietnamese text. The trained model must do far better than both.
  assert.ok(res.bitsPerByte < 2.0, `bits per byte ${res.bitsPerByte}`);
  assert.ok(res.loss < 6.5, `loss ${res.loss}`);
  writeFileSync(path.join(root, 'eval.json'), r.stdout);
});
