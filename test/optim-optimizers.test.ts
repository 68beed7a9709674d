import test from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_TRAIN, type TrainConfig, loadConfig } from '../src/config/index.ts';
import { createOptimizer, decayMaskFor, learningRate, lrGroupsFor, clipGlobalNorm, globalNorm } from '../src/optim/index.ts';
import { buildLayout } from '../src/model/layout.ts';

const cfg = (o: Partial<TrainConfig>): TrainConfig => ({ ...DEFAULT_TRAIN, weight_decay: 0, ...o });

/** float32 result vs a float64 hand value: equal up to float32 rounding of the intermediate states. */
function close(actual: ArrayLike<number>, expected: number[], rel = 2e-6): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const tol = rel * Math.max(1, Math.abs(expected[i]));
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `[${i}] got ${actual[i]}, expected ${expected[i]}`);
  }
}

test('sgd: w −= lr·g, two steps', () => {
  const opt = createOptimizer(cfg({ optimizer: 'sgd' }), 2);
  const w = Float32Array.from([1, -2]);
  opt.step(w, Float32Array.from([0.5, -1]), 0.1);
  close(w, [0.95, -1.9]);
  opt.step(w, Float32Array.from([-1, 3]), 0.2);
  close(w, [1.15, -2.5]);
  assert.equal(opt.getState().step, 2);
  assert.deepEqual(Object.keys(opt.getState().buffers), []);
});

test('momentum (spec form v = βv + (1−β)g; w −= lr·v), three steps', () => {
  const opt = createOptimizer(cfg({ optimizer: 'momentum', momentum: 0.9 }), 2);
  const w = new Float32Array(2);
  const g = Float32Array.from([1, -2]);
  opt.step(w, g, 0.5);          // v = [0.1, −0.2];  w = [−0.05, 0.1]
  close(w, [-0.05, 0.1]);
  opt.step(w, g, 0.5);          // v = [0.19, −0.38]; w = [−0.145, 0.29]
  close(w, [-0.145, 0.29]);
  close(opt.getState().buffers.v, [0.19, -0.38]);
  opt.step(w, Float32Array.from([0, 0]), 1); // v = [0.171, −0.342]; w = [−0.316, 0.632]
  close(w, [-0.316, 0.632]);
});

test('rmsprop: s = ρs + (1−ρ)g²; w −= lr·g/(√s+eps), two steps', () => {
  const opt = createOptimizer(cfg({ optimizer: 'rmsprop', rms_decay: 0.99, eps: 1e-8 }), 2);
  const w = Float32Array.from([1, 1]);
  const g = Float32Array.from([2, -0.5]);
  // step 1: s = [0.04, 0.0025], √s = [0.2, 0.05], update = 0.01·g/√s = [0.1, −0.1]
  opt.step(w, g, 0.01);
  close(w, [0.9, 1.1]);
  // step 2: s = 0.99·s + 0.01·g² = [0.0796, 0.004975]
  opt.step(w, g, 0.01);
  const s2 = [0.0796, 0.004975];
  close(opt.getState().buffers.s, s2);
  close(w, [0.9 - 0.02 / (Math.sqrt(s2[0]) + 1e-8), 1.1 + 0.005 / (Math.sqrt(s2[1]) + 1e-8)]);
});

test('adam with bias correction, three steps', () => {
  const b1 = 0.9, b2 = 0.95, eps = 1e-8, lr = 0.1;
  const opt = createOptimizer(cfg({ optimizer: 'adam', beta1: b1, beta2: b2, eps }), 3);
  const w = Float32Array.from([0.5, -0.5, 0]);
  const grads = [[1, -4, 0], [3, 2, 0.5], [-1, 0, 0.25]];
  // step 1: m̂ = g, v̂ = g², so the update is lr·sign(g) (lr·g/(|g|+eps)); 0 where g = 0
  opt.step(w, Float32Array.from(grads[0]), lr);
  close(w, [0.4, -0.4, 0]);
  // steps 2 and 3 by the textbook formula in float64
  const ref = [0.4, -0.4, 0];
  const m = grads[0].map((g) => (1 - b1) * g), v = grads[0].map((g) => (1 - b2) * g * g);
  for (let t = 2; t <= 3; t++) {
    const g = grads[t - 1];
    opt.step(w, Float32Array.from(g), lr);
    for (let i = 0; i < 3; i++) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const mh = m[i] / (1 - b1 ** t), vh = v[i] / (1 - b2 ** t);
      ref[i] -= (lr * mh) / (Math.sqrt(vh) + eps);
    }
    close(w, ref);
  }
  close(opt.getState().buffers.m, m);
  close(opt.getState().buffers.v, v);
});

test('adam step 2 equals the hand-computed value', () => {
  const opt = createOptimizer(cfg({ optimizer: 'adam', beta1: 0.9, beta2: 0.95, eps: 1e-8 }), 1);
  const w = Float32Array.from([0.5]);
  opt.step(w, Float32Array.from([1]), 0.1);   // → 0.4
  // m = 0.9·0.1 + 0.1·3 = 0.39;  v = 0.95·0.05 + 0.05·9 = 0.4975
  // m̂ = 0.39/0.19 = 2.0526316;  v̂ = 0.4975/0.0975 = 5.1025641, √v̂ = 2.2588856
  // w = 0.4 − 0.1 · 2.0526316 / 2.2588856 = 0.4 − 0.0908692 = 0.3091308
  opt.step(w, Float32Array.from([3]), 0.1);
  close(w, [0.3091308], 1e-6);
});

test('decoupled weight decay applies only where the mask is 1, from the pre-update weight', () => {
  const opt = createOptimizer(cfg({ optimizer: 'sgd', weight_decay: 0.5 }), 3, { decayMask: Uint8Array.from([1, 0, 1]) });
  const w = Float32Array.from([2, 2, -4]);
  opt.step(w, Float32Array.from([0, 0, 1]), 0.1);
  // w −= lr·wd·w + lr·g: [2 − 0.1, 2, −4 + 0.2 − 0.1]
  close(w, [1.9, 2, -3.9]);
  const adam = createOptimizer(cfg({ optimizer: 'adam', weight_decay: 0.1 }), 2, { decayMask: Uint8Array.from([0, 1]) });
  const w2 = Float32Array.from([1, 1]);
  adam.step(w2, Float32Array.from([1, 1]), 0.1);
  close(w2, [0.9, 1 - 0.01 - 0.1]);
  assert.throws(() => createOptimizer(cfg({ optimizer: 'sgd' }), 3, { decayMask: new Uint8Array(2) }), /decayMask/);
});

test('decayMaskFor masks matrices and the embedding, not norms or biases', () => {
  const c = loadConfig('configs/test.yaml');
  const L = buildLayout({ ...c.model, bias: true });
  const mask = decayMaskFor(L);
  for (const p of L.params) {
    const want = p.kind === 'matrix' || p.kind === 'embedding' ? 1 : 0;
    const view = mask.subarray(p.offset, p.offset + p.size);
    assert.ok(view.every((x) => x === want), `${p.name} (${p.kind}) should be ${want}`);
  }
});

test('lr groups: a range steps exactly like an optimizer at lr × scale, the rest like one at lr; state and decay follow', () => {
  const n = 7, a = 2, b = 5, scale = 10;
  const rngVals = (k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.7 + k) * (i + 1));
  for (const name of ['sgd', 'momentum', 'rmsprop', 'adam'] as const) {
    const c = cfg({ optimizer: name, weight_decay: 0.1 });
    const mask = Uint8Array.from([1, 1, 1, 0, 1, 1, 0]);
    const grouped = createOptimizer(c, n, { decayMask: mask, lrGroups: [{ offset: a, size: b - a, scale }] });
    const plain = createOptimizer(c, n, { decayMask: mask });
    const fast = createOptimizer(c, n, { decayMask: mask });
    const w = rngVals(0), wPlain = w.slice(), wFast = w.slice();
    for (let step = 1; step <= 3; step++) {
      const g = rngVals(step), lr = 0.01 * step;
      grouped.step(w, g, lr);
      plain.step(wPlain, g, lr);
      fast.step(wFast, g, lr * scale);
    }
    const want = [...wPlain.subarray(0, a), ...wFast.subarray(a, b), ...wPlain.subarray(b)];
    assert.deepEqual(Array.from(w), want, `${name}: grouped result is the plain result outside the range and lr×scale inside`);
    assert.notDeepEqual(Array.from(w.subarray(a, b)), Array.from(wPlain.subarray(a, b)), `${name}: the scale changed something`);
    for (const [k, buf] of Object.entries(grouped.getState().buffers)) {
      const pb = plain.getState().buffers[k], fb = fast.getState().buffers[k];
      assert.deepEqual(Array.from(buf), [...pb.subarray(0, a), ...fb.subarray(a, b), ...pb.subarray(b)], `${name}: buffer ${k}`);
    }
  }
  assert.throws(() => createOptimizer(cfg({}), 4, { lrGroups: [{ offset: 2, size: 3, scale: 2 }] }), /outside/);
  assert.throws(() => createOptimizer(cfg({}), 4, { lrGroups: [{ offset: 0, size: 2, scale: 2 }, { offset: 1, size: 2, scale: 2 }] }), /overlaps/);
  assert.throws(() => createOptimizer(cfg({}), 4, { lrGroups: [{ offset: 0, size: 2, scale: 0 }] }), /positive/);
});

test('lrGroupsFor: the token embedding at embedding_lr_scale, nothing when the scale is 1', () => {
  const c = loadConfig('configs/test.yaml');
  const L = buildLayout(c.model);
  assert.deepEqual(lrGroupsFor(L, { embedding_lr_scale: 1 }), []);
  const e = L.byName.get('tok_embeddings.weight')!;
  assert.deepEqual(lrGroupsFor(L, { embedding_lr_scale: 10 }), [{ offset: e.offset, size: e.size, scale: 10 }]);
});

test('state round trip: a restored optimizer continues bit-exactly; getState is a copy', () => {
  for (const name of ['sgd', 'momentum', 'rmsprop', 'adam'] as const) {
    const a = createOptimizer(cfg({ optimizer: name }), 4);
    const w = Float32Array.from([0.1, -0.2, 0.3, 0.4]);
    a.step(w, Float32Array.from([1, 2, -3, 0.5]), 0.01);
    a.step(w, Float32Array.from([-1, 0.2, 3, 0.25]), 0.01);
    const st = a.getState();
    const snapshot = JSON.stringify(Object.entries(st.buffers).map(([k, b]) => [k, Array.from(b)]));
    const b = createOptimizer(cfg({ optimizer: name }), 4);
    b.setState(st);
    const wa = w.slice(), wb = w.slice();
    const g = Float32Array.from([0.5, -0.5, 0.25, 2]);
    a.step(wa, g, 0.02);
    b.step(wb, g, 0.02);
    assert.deepEqual(wb, wa, name);
    assert.equal(b.getState().step, 3);
    assert.equal(JSON.stringify(Object.entries(st.buffers).map(([k, v]) => [k, Array.from(v)])), snapshot, `${name}: state must be a copy`);
  }
  const adam = createOptimizer(cfg({ optimizer: 'adam' }), 4);
  assert.throws(() => adam.setState({ name: 'momentum', step: 1, buffers: { v: new Float32Array(4) } }), /momentum/);
  assert.throws(() => adam.setState({ name: 'adam', step: 1, buffers: { m: new Float32Array(4), v: new Float32Array(3) } }), /expected 4/);
});

test('learning rate: linear warmup, cosine to min_lr at the last step', () => {
  const t = { lr: 1e-2, min_lr: 1e-3, warmup_steps: 2, steps: 6 };
  close([learningRate(0, t)], [0.005], 1e-12);
  close([learningRate(1, t)], [0.01], 1e-12);
  close([learningRate(2, t)], [0.01], 1e-12);
  // p = 1/3: 0.001 + 0.0045·(1 + cos(π/3)) = 0.00775
  close([learningRate(3, t)], [0.00775], 1e-12);
  close([learningRate(5, t)], [0.001], 1e-12);
  close([learningRate(50, t)], [0.001], 1e-12);
  let prev = Infinity;
  for (let s = 2; s < 8; s++) { const lr = learningRate(s, t); assert.ok(lr <= prev); prev = lr; }
  // no warmup: starts at lr
  close([learningRate(0, { ...t, warmup_steps: 0 })], [0.01], 1e-12);
  close([learningRate(5, { ...t, warmup_steps: 0 })], [0.001], 1e-12);
});

test('global-norm clipping: returns the pre-clip norm, scales in place, float64 accumulation', () => {
  const g = Float32Array.from([3, 4]);
  assert.equal(clipGlobalNorm(g, 1), 5);
  close(g, [0.6, 0.8], 1e-7);
  const h = Float32Array.from([3, 4]);
  assert.equal(clipGlobalNorm(h, 10), 5);
  assert.deepEqual(h, Float32Array.from([3, 4]));
  assert.equal(clipGlobalNorm(h, 0), 5);
  assert.deepEqual(h, Float32Array.from([3, 4]));
  const bad = Float32Array.from([1, NaN]);
  assert.ok(Number.isNaN(clipGlobalNorm(bad, 1)));
  assert.equal(bad[0], 1);
  // 1e6 entries of 1e-3: float32 accumulation would drift visibly; float64 gives 1 to ~1e-9
  const big = new Float32Array(1_000_000).fill(1e-3);
  const n = globalNorm(big);
  assert.ok(Math.abs(n - Math.fround(1e-3) * 1000) < 1e-9, `norm ${n}`);
});
