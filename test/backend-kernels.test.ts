/**
 * Backend setup and the wasm kernel fixes (src/backend): each fix is checked against the stock cpu
 * backend or against values computed here in plain JS.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, activeBackend, readFloats, softmaxCrossEntropy, softmaxCrossEntropyWithGrad } from '../src/backend/index.ts';
import { softmaxCrossEntropyComposite } from '../src/backend/kernels.ts';
import { registerStockGradients } from '../src/backend/autodiff.ts';
import { Rng } from '../src/util/rng.ts';

// What production loads (tfjs-core and the backends, never the @tensorflow/tfjs umbrella) has no
// stock gradients; the tests below emit the fixed kernels through autodiff, so they register them.
const gradientsAtImport = tf.getGradient('Sum') !== undefined;
test.before(registerStockGradients);

const rng = new Rng(11);
const randn = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

/** Run f on the given backend and return the result's values as a plain array (tensors disposed). */
async function on(backend: 'wasm' | 'cpu', f: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  await initBackend(backend);
  const out = tf.tidy(f);
  const list = Array.isArray(out) ? out : [out];
  const vals = list.map((t) => Float32Array.from(t.dataSync()));
  tf.dispose(list);
  return vals;
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  assert.ok(worst <= tol, `${what}: max relative difference ${worst} > ${tol}`);
}

/** Whether @tensorflow/tfjs-node is installed here (a user with internet has it; this machine and CI do not). */
function tfjsNodeInstalled(): boolean {
  try { createRequire(import.meta.url).resolve('@tensorflow/tfjs-node'); return true; } catch { return false; }
}

test('auto picks tfjs-node when installed, else wasm; repeat calls are idempotent, explicit names switch', async () => {
  const auto = await initBackend();
  assert.equal(auto, tfjsNodeInstalled() ? 'tensorflow' : 'wasm');
  assert.equal(await initBackend('auto'), auto, 'auto keeps its first choice');
  // from here on the test pins wasm: the kernel fixes below are wasm's
  assert.equal(await initBackend('wasm'), 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  assert.equal(await initBackend('cpu'), 'cpu');
  assert.equal(activeBackend(), 'cpu');
  assert.equal(await initBackend('auto'), 'cpu', 'auto keeps the active backend');
  assert.equal(await initBackend('wasm'), 'wasm');
  if (!tfjsNodeInstalled()) {
    await assert.rejects(initBackend('tensorflow'), /tfjs-node is not usable/);
    assert.equal(tf.getBackend(), 'wasm', 'a failed explicit choice leaves the active backend alone');
  }
});

test('src/backend brings no stock gradients (no umbrella package); registerStockGradients adds them', () => {
  // tfjs-node loads the umbrella itself (its own dependency), so only without it is the registry empty
  if (!tfjsNodeInstalled()) assert.equal(gradientsAtImport, false, 'something under src/backend loaded @tensorflow/tfjs');
  for (const k of ['Sum', 'GatherV2', 'BatchMatMul', 'LogSoftmax']) assert.ok(tf.getGradient(k), `no gradient for ${k}`);
});

test('gather gradient (UnsortedSegmentSum) on wasm and cpu equals a scatter-add computed here', async () => {
  const V = 50, d = 6;
  const table = randn(V * d);
  const ids = Int32Array.from({ length: 200 }, () => rng.int(V));
  const up = randn(ids.length * d);
  const expect = new Float32Array(V * d);
  for (let i = 0; i < ids.length; i++) for (let j = 0; j < d; j++) expect[ids[i] * d + j] += up[i * d + j];
  for (const b of ['wasm', 'cpu'] as const) {
    const [g] = await on(b, () => {
      const x = tf.tensor2d(table, [V, d]);
      const dy = tf.tensor2d(up, [ids.length, d]);
      return tf.grad((e: tf.Tensor) => tf.sum(tf.mul(tf.gather(e, tf.tensor1d(ids, 'int32')), dy)))(x);
    });
    close(g, expect, 1e-5, `gather grad on ${b}`);
  }
  // the direct op, with an out-of-range id dropped as in TensorFlow
  const [s] = await on('wasm', () => tf.unsortedSegmentSum(tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]), tf.tensor1d([2, 0, 2], 'int32'), 3));
  assert.deepEqual(Array.from(s), [3, 4, 0, 0, 6, 8]);
});

test('transposed matmuls on wasm (rewritten as transpose + matmul) equal the cpu backend', async () => {
  const a = randn(7 * 5), b = randn(5 * 9), c = randn(3 * 7 * 5), e = randn(3 * 9 * 5);
  const cases = (): tf.Tensor[] => [
    tf.matMul(tf.tensor2d(a, [5, 7]), tf.tensor2d(b, [5, 9]), true, false),
    tf.matMul(tf.tensor2d(a, [7, 5]), tf.tensor2d(b, [9, 5]), false, true),
    tf.matMul(tf.tensor2d(a, [5, 7]), tf.tensor2d(b, [9, 5]), true, true),
    tf.matMul(tf.tensor3d(c, [3, 7, 5]), tf.tensor3d(e, [3, 9, 5]), false, true),
    tf.matMul(tf.tensor3d(c, [3, 5, 7]), tf.tensor3d(e, [3, 5, 9]), true, false),
  ];
  const w = await on('wasm', cases), p = await on('cpu', cases);
  w.forEach((x, i) => close(x, p[i], 1e-5, `matmul case ${i}`));
  // and the autodiff of a matmul (which emits transposed matmuls)
  const grads = () => tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, y))))([tf.tensor2d(a, [7, 5]), tf.tensor2d(b, [5, 9])]);
  const gw = await on('wasm', grads), gp = await on('cpu', grads);
  gw.forEach((x, i) => close(x, gp[i], 1e-5, `matmul grad ${i}`));
});

test('oneHot(..., float32) on wasm gives 1 and 0 (stock kernel wrote the int bit pattern)', async () => {
  const [o] = await on('wasm', () => tf.oneHot(tf.tensor1d([2, 0, 3], 'int32'), 4, 1, 0, 'float32'));
  assert.deepEqual(Array.from(o), [0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1]);
  const [o2] = await on('wasm', () => tf.oneHot(tf.tensor1d([1], 'int32'), 3, 5, -1, 'float32'));
  assert.deepEqual(Array.from(o2), [-1, 5, -1]);
});

test('Slice and Unpack on wasm (read in place) equal the cpu backend for ranks 1-4', async () => {
  const x = randn(4 * 5 * 6 * 3);
  const cases = (): tf.Tensor[] => {
    const t4 = tf.tensor4d(x, [4, 5, 6, 3]);
    return [
      tf.slice(tf.tensor1d(x), [7], [20]),
      tf.slice(tf.tensor2d(x, [20, 18]), [3, 2], [5, 7]),
      tf.slice(tf.tensor2d(x, [20, 18]), [3, 0], [5, -1]),
      tf.slice(tf.tensor3d(x, [4, 30, 3]), [1, 4, 1], [2, 10, 2]),
      tf.slice(t4, [1, 0, 2, 0], [3, 5, 3, 3]),
      tf.slice(t4, [0, 1, 0, 1], [4, 3, 6, 1]),
      ...tf.unstack(t4, 0), ...tf.unstack(t4, 2), ...tf.split(t4, 2, 0), ...tf.split(t4, [1, 4], 1),
    ];
  };
  const w = await on('wasm', cases), p = await on('cpu', cases);
  assert.equal(w.length, p.length);
  w.forEach((v, i) => assert.deepEqual(v, p[i], `case ${i}`));
});

test('fused softmax cross-entropy: loss and gradient equal the stock formulation on cpu, masked rows give 0', async () => {
  const n = 6, V = 11;
  const logits = randn(n * V).map((v) => v * 3);
  logits[2 * V + 4] = 120; // a row whose other probabilities underflow
  const labels = Int32Array.from([3, 0, 5, 10, 1, 4]);
  const mask = Float32Array.from([1, 1, 1, 0, 1, 1]);
  const stock = (z: tf.Tensor) => tf.mul(tf.neg(tf.sum(tf.mul(tf.logSoftmax(z), tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), V), 'float32')), 1)), tf.tensor1d(mask));
  const dy = Float32Array.from([1, 2, 0.5, 1, -1, 3]);
  const [refLoss, refGrad] = await on('cpu', () => [stock(tf.tensor2d(logits, [n, V])), tf.grad((z: tf.Tensor) => tf.sum(tf.mul(stock(z), tf.tensor1d(dy))))(tf.tensor2d(logits, [n, V]))]);
  for (const b of ['wasm', 'cpu'] as const) {
    const [loss, grad, lossAd, gradAd, lossC, gradC] = await on(b, () => {
      const z = tf.tensor2d(logits, [n, V]), lab = tf.tensor1d(labels, 'int32'), m = tf.tensor1d(mask);
      const r = softmaxCrossEntropyWithGrad(z, lab, m);
      const c = softmaxCrossEntropyComposite(z, lab, m); // the path for backends without the JS kernel
      const f = (zz: tf.Tensor) => tf.sum(tf.mul(softmaxCrossEntropy(zz as tf.Tensor2D, lab, m), tf.tensor1d(dy)));
      return [r.loss, r.grad, softmaxCrossEntropy(z, lab, m), tf.grad(f)(z), c.loss, c.grad];
    });
    close(lossC, loss, 1e-5, `${b} composite loss`);
    close(gradC, grad, 1e-5, `${b} composite grad`);
    close(loss, refLoss, 1e-5, `${b} loss`);
    close(lossAd, refLoss, 1e-5, `${b} op loss`);
    close(gradAd, refGrad, 1e-5, `${b} custom gradient`);
    // grad is d(Σ loss)/d logits, i.e. the stock gradient with dy = 1
    for (let i = 0; i < n; i++) for (let j = 0; j < V; j++) {
      const want = dy[i] === 0 ? 0 : refGrad[i * V + j] / dy[i];
      assert.ok(Math.abs(grad[i * V + j] - want) < 1e-5, `${b} grad[${i},${j}]`);
    }
    assert.ok(grad.subarray(3 * V, 4 * V).every((v) => v === 0), 'masked row has zero gradient');
    assert.equal(loss[3], 0);
  }
});

test('readFloats: the values of a float32 tensor (a heap view on wasm, a copy elsewhere)', async () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    await initBackend(backend);
    const x = tf.tensor2d([[1.5, -2, 3], [4, 5e-8, -6]]);
    const y = tf.mul(x, 2);                             // a kernel output, not an upload
    assert.deepEqual(Array.from(readFloats(y)), [1.5, -2, 3, 4, 5e-8, -6].map((v) => Math.fround(v) * 2), backend);
    tf.dispose([x, y]);
  }
});

test('each worker thread initialises its own wasm backend with the fixes', async () => {
  const url = new URL('../src/backend/index.ts', import.meta.url).href;
  const autodiff = new URL('../src/backend/autodiff.ts', import.meta.url).href;
  const code = `
    const { parentPort } = require('node:worker_threads');
    (async () => {
      // a worker thread does not inherit the tsx loader: register it (as src/fleet/worker/thread-entry.mjs does)
      const { register } = await import('tsx/esm/api');
      register();
      const tf = await import('@tensorflow/tfjs-core');
      const { initBackend } = await import(${JSON.stringify(url)});
      await (await import(${JSON.stringify(autodiff)})).registerStockGradients(); // per thread, like the backend
      const b = await initBackend('wasm'); // pinned: with tfjs-node installed 'auto' would pick it
      const g = tf.grad((e) => tf.sum(tf.gather(e, tf.tensor1d([1, 1, 2], 'int32'))))(tf.ones([3, 2]));
      parentPort.postMessage({ b, g: Array.from(g.dataSync()) });
    })().catch((e) => parentPort.postMessage({ error: String(e) }));`;
  const w = new Worker(code, { eval: true });
  const msg = await new Promise<{ b?: string; g?: number[]; error?: string }>((res, rej) => { w.once('message', res); w.once('error', rej); });
  await w.terminate();
  assert.equal(msg.error, undefined);
  assert.equal(msg.b, 'wasm');
  assert.deepEqual(msg.g, [0, 0, 2, 2, 1, 1]);
});
