import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { initBackend } from '../src/backend/index.ts';
import { createModel } from '../src/model/model.ts';
import { buildLayout } from '../src/model/layout.ts';
import { generate, generateIds, argmax } from '../src/train/generate.ts';
import { makeTestRun, type TestRun } from './support/eval-fixtures.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'vilm-predict-'));
let run: TestRun;

test.before(async () => {
  await initBackend('wasm');
  run = await makeTestRun(dir);
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const p of it) out.push(p);
  return out;
}

test('greedy generation with the KV-cached decoder equals argmax of a full recompute at every step', () => {
  const model = createModel(run.cfg.model);
  const { tokenizer: tok, ck } = run;
  const prompt = [tok.bosId, ...tok.encode('Việt Nam là')];
  const gen = [...generateIds(model, ck.weights, tok, prompt, { temperature: 0, maxTokens: 12 })];
  assert.equal(gen.length, 12); // a random-init model rarely picks <eos> greedily; if it did, length < 12 and the check below still holds
  const seq = prompt.slice();
  const V = run.cfg.model.vocab_size;
  for (const id of gen) {
    const logits = model.forwardLogits(ck.weights, seq, 1, seq.length);
    assert.equal(id, argmax(logits.subarray((seq.length - 1) * V, seq.length * V), tok.padId));
    seq.push(id);
  }
  model.dispose();
});

test('seeded sampling is deterministic; pieces are complete characters that concatenate to the decoded ids', async () => {
  const model = createModel(run.cfg.model);
  const { tokenizer: tok, ck } = run;
  const opts = { temperature: 1.0, topK: 0, topP: 1, maxTokens: 40 };
  const a = await collect(generate(model, ck.weights, tok, 'Hà Nội', { ...opts, seed: 5 }));
  const b = await collect(generate(model, ck.weights, tok, 'Hà Nội', { ...opts, seed: 5 }));
  const c = await collect(generate(model, ck.weights, tok, 'Hà Nội', { ...opts, seed: 6 }));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const prompt = [tok.bosId, ...tok.encode('Hà Nội')];
  const ids = [...generateIds(model, ck.weights, tok, prompt, { ...opts, seed: 5 })];
  const full = tok.decode([...prompt, ...ids]);
  assert.equal(a.join(''), full.slice(tok.decode(prompt).length));
  for (const [i, p] of a.entries()) {
    assert.ok(p.length > 0);
    if (i < a.length - 1) assert.ok(!p.endsWith('\ufffd'), `piece ${i} ends in a cut character`);
  }
  model.dispose();
});

test('generation stops at max_len tokens (bos + prompt + generated) and at <eos>', () => {
  const model = createModel(run.cfg.model);
  const { tokenizer: tok, ck, cfg } = run;
  const maxLen = cfg.model.max_len;
  const prompt = [tok.bosId, ...Array.from({ length: maxLen - 6 }, (_, i) => 3 + (i % 200))];
  const gen = [...generateIds(model, ck.weights, tok, prompt, { temperature: 0, maxTokens: 100 })];
  assert.ok(prompt.length + gen.length <= maxLen);
  assert.equal(prompt.length + gen.length, maxLen);
  model.dispose();

  // weights whose head always prefers <eos>: final norm output = its bias = e_0, Wout[0, eos] = 10
  const layout = buildLayout(cfg.model);
  const w = ck.weights.slice();
  const nw = layout.byName.get('norm.weight')!, nb = layout.byName.get('norm.bias')!, out = layout.byName.get('output.weight')!;
  w.fill(0, nw.offset, nw.offset + nw.size);
  w.fill(0, nb.offset, nb.offset + nb.size); w[nb.offset] = 1;
  w.fill(0, out.offset, out.offset + out.size); w[out.offset + tok.eosId] = 10; // row 0 of [d, V]
  const m2 = createModel(cfg.model);
  assert.deepEqual([...generateIds(m2, w, tok, [tok.bosId, 5, 6], { temperature: 0, maxTokens: 10 })], []);
  m2.dispose();
});

test('vilm predict streams the same text for the same seed; bad flags are one-line errors', () => {
  const args = ['--import', 'tsx', 'src/cli/main.ts', 'predict', '--checkpoint', run.runDir, '--prompt', 'Việt Nam là', '--max-tokens', '10', '--seed', '3', '--backend', 'wasm'];
  const a = execFileSync('node', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const b = execFileSync('node', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(a, b);
  assert.ok(a.startsWith('Việt Nam là'), a);
  assert.ok(a.length > 'Việt Nam là\n'.length);
  const bad = spawnSync('node', [...args, '--top-p', '1.5'], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr.trim(), /^vilm: --top-p must be in \(0, 1\], got 1\.5$/);
});
