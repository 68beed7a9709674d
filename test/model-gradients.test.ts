/**
 * The model's loss and gradient (src/model/model.ts) against finite differences of the independent
 * float64 reference (src/model/reference.ts), across every config option, on wasm and cpu; plus
 * the properties the distributed trainer relies on: sums split exactly, pads count for nothing,
 * repeat calls are bitwise identical (also in a worker thread), sparse embedding rows are right.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { initBackend } from '../src/backend/index.ts';
import { loadConfig, type ModelConfig } from '../src/config/index.ts';
import { createModel, PASS_TOKENS } from '../src/model/model.ts';
import { ReferenceModel } from '../src/model/reference.ts';
import { initParams } from '../src/model/layout.ts';
import { WeightCache } from '../src/model/weights.ts';
import type { TokenBatch } from '../src/model/types.ts';
import { Rng } from '../src/util/rng.ts';

const TINY: ModelConfig = {
  vocab_size: 13, d_model: 8, n_heads: 2, n_layers: 2, ff_dim: 12, max_len: 16, rope_theta: 10000,
  rope_style: 'rotate_half', norm: 'layernorm', norm_eps: 1e-5, activation: 'gelu_tanh', bias: false, tie_embeddings: false,
};

/** Parameters with O(1) spread so every path (norm gains, biases) has a real gradient. */
function randomParams(cfg: ModelConfig, seed: number, spread = 0.4): Float32Array {
  const m = createModel(cfg);
  const p = initParams(m.layout, cfg, seed);
  const rng = new Rng(seed + 1000);
  for (let i = 0; i < p.length; i++) p[i] += rng.normal() * spread;
  return p;
}

/** Random batch; tokens 1..V-1, with `pads` trailing pad tokens on the last row. */
function randomBatch(cfg: ModelConfig, rows: number, seqLen: number, seed: number, pads = 0): TokenBatch {
  const rng = new Rng(seed);
  const tokens = new Uint16Array(rows * seqLen).map(() => 1 + rng.int(cfg.vocab_size - 1));
  for (let i = 0; i < pads; i++) tokens[rows * seqLen - 1 - i] = 0;
  return { tokens, rows, seqLen };
}

const VARIANTS: [string, Partial<ModelConfig>][] = [
  ['layernorm, gelu_tanh, rotate_half', {}],
  ['rmsnorm, gelu (erf), interleaved rope', { norm: 'rmsnorm', activation: 'gelu', rope_style: 'interleaved' }],
  ['relu, linear biases, tied embeddings', { activation: 'relu', bias: true, tie_embeddings: true }],
];

for (const [name, over] of VARIANTS) {
  test(`gradient = finite differences of the float64 reference (${name}), on wasm and cpu`, async () => {
    const cfg = { ...TINY, ...over };
    const params = randomParams(cfg, 3);
    const batch = randomBatch(cfg, 3, 7, 5, 2);
    const ref = new ReferenceModel(cfg, params).loss(batch);
    // central differences in float64 for every parameter
    const p64 = Float64Array.from(params);
    const fd = new Float64Array(p64.length);
    const h = 1e-5;
    for (let i = 0; i < p64.length; i++) {
      const o = p64[i];
      p64[i] = o + h; const lp = new ReferenceModel(cfg, p64).loss(batch).lossSum;
      p64[i] = o - h; const lm = new ReferenceModel(cfg, p64).loss(batch).lossSum;
      p64[i] = o;
      fd[i] = (lp - lm) / (2 * h);
    }
    const scale = fd.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    assert.ok(scale > 0.1, 'the check must see real gradients');
    for (const backend of ['wasm', 'cpu'] as const) {
      await initBackend(backend);
      const model = createModel(cfg);
      const r = model.computeGradients(params, batch);
      assert.equal(r.tokenCount, ref.tokenCount);
      assert.equal(r.tokenCount, 3 * 6 - 2);
      assert.ok(Math.abs(r.lossSum - ref.lossSum) < 1e-4 * ref.lossSum, `${backend} loss ${r.lossSum} vs reference ${ref.lossSum}`);
      let worst = 0, at = 0;
      for (let i = 0; i < fd.length; i++) {
        const e = Math.abs(r.grad[i] - fd[i]);
        if (e > worst) { worst = e; at = i; }
      }
      const where = model.layout.params.find((p) => p.offset <= at && at < p.offset + p.size)!.name;
      assert.ok(worst < 2e-4 * Math.max(1, scale), `${backend}: max |grad − fd| = ${worst} at ${where} (scale ${scale})`);
      const ev = model.evaluate(params, batch);
      assert.equal(ev.tokenCount, r.tokenCount);
      assert.ok(Math.abs(ev.lossSum - r.lossSum) < 1e-5 * r.lossSum);
      model.dispose();
    }
  });
}

test('wasm gradients agree with the cpu backend on the test config', async () => {
  const cfg = loadConfig('configs/test.yaml').model;
  const params = randomParams(cfg, 9, 0.05);
  const batch = randomBatch(cfg, 4, 33, 2, 5);
  await initBackend('cpu');
  const c = createModel(cfg).computeGradients(params, batch);
  await initBackend('wasm');
  const w = createModel(cfg).computeGradients(params, batch);
  assert.equal(w.tokenCount, c.tokenCount);
  assert.ok(Math.abs(w.lossSum - c.lossSum) < 1e-5 * c.lossSum);
  let scale = 0, worst = 0;
  for (let i = 0; i < c.grad.length; i++) { scale = Math.max(scale, Math.abs(c.grad[i])); worst = Math.max(worst, Math.abs(w.grad[i] - c.grad[i])); }
  assert.ok(worst < 1e-4 * scale, `max difference ${worst}, scale ${scale}`);
});

test('pad targets contribute nothing: a padded row gives the loss and gradient of the unpadded row', async () => {
  await initBackend('wasm');
  const cfg = loadConfig('configs/test.yaml').model;
  const model = createModel(cfg);
  const params = randomParams(cfg, 4, 0.05);
  const short = randomBatch(cfg, 1, 10, 8);
  const padded: TokenBatch = { rows: 1, seqLen: 16, tokens: new Uint16Array(16) };
  padded.tokens.set(short.tokens);
  const a = model.computeGradients(params, short), b = model.computeGradients(params, padded);
  assert.equal(b.tokenCount, 9);
  assert.equal(a.tokenCount, 9);
  assert.ok(Math.abs(a.lossSum - b.lossSum) < 1e-5 * a.lossSum);
  for (let i = 0; i < a.grad.length; i++) assert.ok(Math.abs(a.grad[i] - b.grad[i]) < 1e-6, `grad[${i}]`);
  // an all-pad batch: no tokens, zero loss, zero gradient
  const empty = model.computeGradients(params, { rows: 2, seqLen: 5, tokens: new Uint16Array(10) });
  assert.equal(empty.tokenCount, 0);
  assert.equal(empty.lossSum, 0);
  assert.ok(empty.grad.every((v) => v === 0));
});

test('sums split exactly: gradient of a batch = sum over its halves; multi-pass batches match the reference', async () => {
  await initBackend('wasm');
  const cfg = loadConfig('configs/test.yaml').model;
  const model = createModel(cfg);
  const params = randomParams(cfg, 5, 0.05);
  // 40 rows × 64 positions = 2,560 > PASS_TOKENS: computed in two passes internally
  const batch = randomBatch(cfg, 40, 65, 3, 7);
  assert.ok(batch.rows * (batch.seqLen - 1) > PASS_TOKENS);
  const whole = model.computeGradients(params, batch);
  const half = (r0: number, r1: number): TokenBatch => ({ rows: r1 - r0, seqLen: batch.seqLen, tokens: batch.tokens.slice(r0 * batch.seqLen, r1 * batch.seqLen) });
  const a = model.computeGradients(params, half(0, 13)), b = model.computeGradients(params, half(13, 40));
  assert.equal(a.tokenCount + b.tokenCount, whole.tokenCount);
  assert.ok(Math.abs(a.lossSum + b.lossSum - whole.lossSum) < 1e-6 * whole.lossSum);
  let scale = 0, worst = 0;
  for (let i = 0; i < whole.grad.length; i++) {
    scale = Math.max(scale, Math.abs(whole.grad[i]));
    worst = Math.max(worst, Math.abs(a.grad[i] + b.grad[i] - whole.grad[i]));
  }
  assert.ok(worst < 1e-5 * scale, `split mismatch ${worst} (scale ${scale})`);
  const ref = new ReferenceModel(cfg, params).loss(batch);
  assert.equal(whole.tokenCount, ref.tokenCount);
  assert.ok(Math.abs(whole.lossSum - ref.lossSum) < 1e-5 * ref.lossSum, `${whole.lossSum} vs ${ref.lossSum}`);
});

test('sparse embedding rows: sorted unique input ids, equal to the dense block, zero elsewhere', async () => {
  await initBackend('wasm');
  const cfg = loadConfig('configs/test.yaml').model;
  const model = createModel(cfg);
  const params = randomParams(cfg, 6, 0.05);
  const batch = randomBatch(cfg, 3, 20, 12, 4);
  const r = model.computeGradients(params, batch);
  const d = cfg.d_model;
  const inputs = new Set<number>();
  for (let row = 0; row < batch.rows; row++) for (let t = 0; t < batch.seqLen - 1; t++) inputs.add(batch.tokens[row * batch.seqLen + t]);
  assert.deepEqual(Array.from(r.embedding.rows), [...inputs].sort((x, y) => x - y));
  assert.equal(r.embedding.values.length, r.embedding.rows.length * d);
  const listed = new Set(r.embedding.rows);
  for (let v = 0; v < cfg.vocab_size; v++) {
    const dense = r.grad.subarray(v * d, v * d + d);
    if (listed.has(v)) {
      const k = r.embedding.rows.indexOf(v);
      assert.deepEqual(r.embedding.values.subarray(k * d, k * d + d), dense);
    } else {
      assert.ok(dense.every((x) => x === 0), `row ${v} not listed but non-zero`);
    }
  }
  assert.equal(r.grad.length, model.layout.total);
});

test('deterministic: repeat calls give bitwise identical results, in the main thread and in a worker', async () => {
  await initBackend('wasm');
  const cfg = loadConfig('configs/test.yaml').model;
  const model = createModel(cfg);
  const params = randomParams(cfg, 7, 0.05);
  const batch = randomBatch(cfg, 6, 40, 1, 3);
  const a = model.computeGradients(params, batch), b = model.computeGradients(params, batch);
  assert.equal(a.lossSum, b.lossSum);
  assert.deepEqual(Buffer.from(a.grad.buffer), Buffer.from(b.grad.buffer));
  assert.deepEqual(Buffer.from(a.embedding.values.buffer), Buffer.from(b.embedding.values.buffer));

  const url = (p: string) => JSON.stringify(new URL(p, import.meta.url).href);
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      const { register } = await import('tsx/esm/api');
      register();
      const { initBackend } = await import(${url('../src/backend/index.ts')});
      const { createModel } = await import(${url('../src/model/model.ts')});
      await initBackend('wasm'); // pinned: with tfjs-node installed 'auto' would pick it
      const r = createModel(workerData.cfg).computeGradients(workerData.params, workerData.batch);
      parentPort.postMessage({ lossSum: r.lossSum, grad: r.grad });
    })().catch((e) => parentPort.postMessage({ error: String(e) }));`;
  const w = new Worker(code, { eval: true, workerData: { cfg, params, batch } });
  const msg = await new Promise<{ lossSum?: number; grad?: Float32Array; error?: string }>((res, rej) => { w.once('message', res); w.once('error', rej); });
  await w.terminate();
  assert.equal(msg.error, undefined);
  assert.equal(msg.lossSum, a.lossSum);
  assert.deepEqual(Buffer.from(msg.grad!.buffer, msg.grad!.byteOffset, msg.grad!.byteLength), Buffer.from(a.grad.buffer));
});

test('the weight cache: a call on the same bits reuses the upload; a change made in place is seen', async () => {
  await initBackend('wasm');
  for (const [name, over] of [['untied', {}], ['tied embeddings', { tie_embeddings: true }]] as const) {
    const cfg = { ...TINY, ...over };
    const model = createModel(cfg);
    const params = randomParams(cfg, 11);
    const batch = randomBatch(cfg, 3, 9, 4);
    const bytes = (r: { grad: Float32Array }) => Buffer.from(r.grad.buffer, r.grad.byteOffset, r.grad.byteLength);
    // every parameter the model uploads (a matrix, a norm gain; with tied embeddings the
    // embedding is the head too), changed in place in the SAME array the cache last saw
    const out = model.layout.byName.get('output.weight') ?? model.layout.embedding;
    for (const p of [out, model.layout.params.find((q) => q.kind !== 'matrix' && q.kind !== 'embedding')!]) {
      const before = bytes(model.computeGradients(params, batch));
      params[p.offset + 1] += 0.25;
      const cached = model.computeGradients(params, batch);
      const fresh = createModel(cfg).computeGradients(params, batch);
      assert.notDeepEqual(bytes(cached), before, `${name}: changing ${p.name} in place changed nothing`);
      assert.deepEqual(bytes(cached), bytes(fresh), `${name}: after ${p.name} changed, the model computed with stale weights`);
    }
    model.dispose();
  }
  // the cache itself: the same Weights object while the bits stay, a new upload (and the old one
  // freed) when one float changes
  const cfg = TINY;
  const model = createModel(cfg);
  const params = randomParams(cfg, 12);
  const cache = new WeightCache(model.layout, cfg);
  const a = cache.get(params);
  assert.equal(cache.get(Float32Array.from(params)), a, 'a copy with the same bits reuses the upload');
  const head = a.get('output.weight');
  params[model.layout.total - 1] += 1;
  const b = cache.get(params);
  assert.notEqual(b, a);
  assert.equal(head.isDisposed, true, 'the replaced upload is freed');
  cache.dispose();
  assert.equal(b.get('output.weight').isDisposed, true);
});

test('computeGradientsEach: several batches in one pass, each result the bytes computeGradients gives it alone', async () => {
  const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const check = (cfg: ModelConfig, batches: TokenBatch[], label: string) => {
    const model = createModel(cfg);
    const params = randomParams(cfg, 11, 0.05);
    const each = model.computeGradientsEach(params, batches);
    assert.equal(each.length, batches.length);
    batches.forEach((b, i) => {
      const alone = model.computeGradients(params, b);
      assert.ok(alone.tokenCount > 0 && alone.grad.some((v) => v !== 0), `${label} batch ${i}: a real gradient`);
      assert.equal(each[i].lossSum, alone.lossSum, `${label} batch ${i} loss`);
      assert.equal(each[i].tokenCount, alone.tokenCount, `${label} batch ${i} tokens`);
      assert.ok(bytes(each[i].grad).equals(bytes(alone.grad)), `${label} batch ${i}: gradient bytes differ`);
      assert.deepEqual(each[i].embedding.rows, alone.embedding.rows);
      assert.ok(bytes(each[i].embedding.values).equals(bytes(alone.embedding.values)), `${label} batch ${i}: embedding bytes differ`);
    });
    // the batches are different: results that all matched one another would prove nothing
    assert.ok(!bytes(each[0].grad).equals(bytes(each[1].grad)));
    // into caller buffers (dirty ones: they are zeroed first): the same bytes, in those buffers
    const into = batches.map(() => new Float32Array(model.layout.total).fill(7));
    const reused = model.computeGradientsEach(params, batches, into);
    reused.forEach((r, i) => {
      assert.equal(r.grad, into[i], `${label} batch ${i}: written into the caller's buffer`);
      assert.ok(bytes(r.grad).equals(bytes(each[i].grad)), `${label} batch ${i}: bytes differ with caller buffers`);
    });
    assert.throws(() => model.computeGradientsEach(params, batches, into.slice(1)), /buffers for/);
    assert.throws(() => model.computeGradientsEach(params, batches, [new Float32Array(3), ...into.slice(1)]), /buffer 0 has 3 floats/);
    model.dispose();
  };
  for (const backend of ['wasm', 'cpu'] as const) {
    await initBackend(backend);
    for (const [name, over] of VARIANTS) {
      const cfg = { ...TINY, ...over };
      // 1-, 2- and 3-row batches of one length share passes; a length change starts a new pass
      check(cfg, [randomBatch(cfg, 1, 9, 1), randomBatch(cfg, 2, 9, 2, 3), randomBatch(cfg, 3, 9, 3), randomBatch(cfg, 2, 5, 4), randomBatch(cfg, 1, 9, 5)], `${backend} ${name}`);
    }
  }
  // the real model's shapes on wasm: leaves of 1–3 rows of the 250 bucket packed into 2,048-position
  // passes (bigger matmuls than each alone), and a batch over PASS_TOKENS that is cut in passes itself
  await initBackend('wasm');
  const seed = loadConfig('configs/tiny.yaml').model;
  const rows = Math.ceil((PASS_TOKENS + 1) / 250);
  check(seed, [randomBatch(seed, 1, 251, 1), randomBatch(seed, 3, 251, 2, 40), randomBatch(seed, 2, 251, 3), randomBatch(seed, 2, 101, 4), randomBatch(seed, rows, 251, 5)], 'seed model');
});

test('bad input throws with a clear message', async () => {
  await initBackend('wasm');
  const cfg = loadConfig('configs/test.yaml').model;
  const model = createModel(cfg);
  const params = randomParams(cfg, 1, 0);
  assert.throws(() => model.computeGradients(params.subarray(1), randomBatch(cfg, 1, 5, 1)), /params has/);
  assert.throws(() => model.computeGradients(params, { rows: 1, seqLen: 3, tokens: Uint16Array.from([1, 2, 9999]) }), /outside the vocabulary/);
  assert.throws(() => model.computeGradients(params, { rows: 2, seqLen: 3, tokens: Uint16Array.from([1, 2, 3]) }), /expected rows·seqLen/);
});
