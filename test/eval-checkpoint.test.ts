import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { initBackend } from '../src/backend/index.ts';
import { cleanText } from '../src/data/clean/index.ts';
import { createModel } from '../src/model/model.ts';
import { evaluateDocuments, evaluateIds, documentWindows } from '../src/train/eval.ts';
import { makeTestRun, VI_TEXTS, type TestRun } from './support/eval-fixtures.ts';
import { checkpointTokenizer } from '../src/train/open-model.ts';
import { UserError } from '../src/util/errors.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'vilm-eval-'));
let run: TestRun;
test.before(async () => {
  await initBackend('wasm');
  run = await makeTestRun(dir);
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** −log softmax(logits)[target] in float64. */
function nll(logits: Float32Array, target: number): number {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let z = 0;
  for (const v of logits) z += Math.exp(v - max);
  return Math.log(z) + max - logits[target];
}

test('evaluateIds is the mean next-token loss of exactly that sequence (checked against full logits)', () => {
  const model = createModel(run.cfg.model);
  const ids = [7, 300, 42, 42, 511, 3, 100];
  const r = evaluateIds(model, run.ck.weights, ids);
  const V = run.cfg.model.vocab_size;
  const logits = model.forwardLogits(run.ck.weights, ids, 1, ids.length);
  let sum = 0;
  for (let t = 0; t < ids.length - 1; t++) sum += nll(logits.subarray(t * V, (t + 1) * V), ids[t + 1]);
  assert.equal(r.tokens, ids.length - 1);
  assert.ok(Math.abs(r.loss - sum / (ids.length - 1)) < 1e-4, `${r.loss} vs ${sum / (ids.length - 1)}`);
  assert.ok(Math.abs(r.ppl - Math.exp(r.loss)) < 1e-9);
  // a random-init model is close to uniform: loss ≈ ln V
  assert.ok(Math.abs(r.loss - Math.log(V)) < 0.5);
  model.dispose();
});

test('evaluateDocuments: sums over windows regardless of batching; bits per byte of the cleaned text', async () => {
  const model = createModel(run.cfg.model);
  const tok = run.tokenizer;
  // long enough for several windows per document at max_len 128
  const docs = [VI_TEXTS.join('\n'), VI_TEXTS[1], VI_TEXTS.slice(3).join(' ')];
  const small = await evaluateDocuments(model, run.ck.weights, tok, docs, { maxBatchTokens: 128 });
  const big = await evaluateDocuments(model, run.ck.weights, tok, docs, { maxBatchTokens: 4096 });
  // reference: each window alone, through the full-logits path
  let sum = 0, n = 0;
  const V = run.cfg.model.vocab_size;
  for (const d of docs) {
    const windows = documentWindows(tok.encode(d), run.cfg.model.max_len, tok.bosId, tok.eosId);
    for (const w of windows) {
      const logits = model.forwardLogits(run.ck.weights, w, 1, w.length);
      for (let t = 0; t < w.length - 1; t++) { sum += nll(logits.subarray(t * V, (t + 1) * V), w[t + 1]); n++; }
    }
  }
  const bytes = docs.reduce((b, d) => b + Buffer.byteLength(d, 'utf8'), 0);
  for (const r of [small, big]) {
    assert.equal(r.tokens, n);
    assert.equal(r.tokens, docs.reduce((k, d) => k + tok.encode(d).length + 1, 0)); // every text token + one <eos> per doc
    assert.equal(r.bytes, bytes);
    assert.ok(Math.abs(r.loss - sum / n) < 1e-4, `${r.loss} vs ${sum / n}`);
    assert.ok(Math.abs(r.bitsPerByte - (r.loss * r.tokens) / Math.LN2 / bytes) < 1e-12);
  }
  assert.ok(Math.abs(small.loss - big.loss) < 1e-5);
  await assert.rejects(evaluateDocuments(model, run.ck.weights, tok, ['', '']), /no text to score/);
  model.dispose();
});

test('vilm eval --in cleans the raw text; --ids scores exact ids; errors are one line', async () => {
  const file = path.join(dir, 'docs.jsonl');
  // raw text with things the cleaner removes (emoji, a references section, extra spaces)
  const raw = [
    { id: 'a', title: 'A', text: `${VI_TEXTS[0]}  😀\n\n${VI_TEXTS[2]}\n\n== Tham khảo ==\n* Sách tham khảo số 1`, source: 'test' },
    { id: 'b', title: 'B', text: VI_TEXTS[4], source: 'test' },
  ];
  writeFileSync(file, raw.map((d) => JSON.stringify(d)).join('\n') + '\n');
  const cli = (...a: string[]) => execFileSync('node', ['--import', 'tsx', 'src/cli/main.ts', 'eval', '--checkpoint', run.runDir, '--backend', 'wasm', '--json', ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const out = JSON.parse(cli('--in', file)) as { loss: number; ppl: number; bitsPerByte: number; tokens: number; bytes: number };
  const cleaned = raw.map((d) => cleanText(d.text).text);
  assert.ok(!cleaned[0].includes('😀') && !cleaned[0].includes('Tham khảo'), 'the cleaner should drop these');
  const model = createModel(run.cfg.model);
  const ref = await evaluateDocuments(model, run.ck.weights, run.tokenizer, cleaned, { maxBatchTokens: run.cfg.train.max_micro_batch_tokens });
  model.dispose();
  assert.equal(out.bytes, cleaned.reduce((b, t) => b + Buffer.byteLength(t), 0));
  assert.equal(out.tokens, ref.tokens);
  assert.ok(Math.abs(out.loss - ref.loss) < 1e-9);
  assert.ok(Math.abs(out.bitsPerByte - ref.bitsPerByte) < 1e-9);
  assert.ok(Math.abs(out.ppl - Math.exp(out.loss)) < 1e-9);

  const ids = JSON.parse(cli('--ids', '[1, 259, 300, 42, 2]')) as { loss: number; tokens: number; bitsPerByte: null };
  assert.equal(ids.tokens, 4);
  assert.equal(ids.bitsPerByte, null);
  assert.ok(Math.abs(ids.loss - Math.log(run.cfg.model.vocab_size)) < 0.5);

  const bad = spawnSync('node', ['--import', 'tsx', 'src/cli/main.ts', 'eval', '--checkpoint', run.runDir, '--ids', '[1, 99999]'], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr.trim(), /^vilm: --ids: element 1 \(99999\) is not a token id in \[0, 512\)$/);
});

test('a checkpoint without a tokenizer needs --tokenizer (one-line hint); a too-large tokenizer is refused', () => {
  const bare = { ...run.ck, tokenizerJson: '' };
  assert.throws(() => checkpointTokenizer(bare, 'RUN'), (e: unknown) => e instanceof UserError && /^RUN: the checkpoint holds no tokenizer .*pass --tokenizer FILE$/.test(e.message));
  const file = path.join(dir, 'tok.json');
  writeFileSync(file, run.ck.tokenizerJson);
  const tok = checkpointTokenizer(bare, 'RUN', file);
  assert.deepEqual(tok.encode('Việt Nam'), run.tokenizer.encode('Việt Nam'));
  const small = { ...run.ck, config: { ...run.ck.config, model: { ...run.ck.config.model, vocab_size: 300 } } };
  assert.throws(() => checkpointTokenizer(small, 'RUN'), /tokenizer has 512 tokens but the checkpoint's model\.vocab_size is 300/);
});
