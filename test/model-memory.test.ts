/**
 * Memory: no tensor leaks across many steps, and the seed model's 8,192-token micro-batch fits the
 * wasm heap (the model splits it into passes of PASS_TOKENS positions).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/index.ts';
import { loadConfig } from '../src/config/index.ts';
import { createModel } from '../src/model/model.ts';
import { initParams } from '../src/model/layout.ts';
import type { TokenBatch } from '../src/model/types.ts';
import { Rng } from '../src/util/rng.ts';

function batch(vocab: number, rows: number, seqLen: number, seed: number): TokenBatch {
  const rng = new Rng(seed);
  return { rows, seqLen, tokens: new Uint16Array(rows * seqLen).map(() => 1 + rng.int(vocab - 1)) };
}

/** Bytes of the wasm module's linear memory (it grows to its peak and never shrinks). */
function wasmHeapBytes(): number {
  return (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
}

test('tf.memory().numTensors stays flat over 50 training steps (and evaluate/forwardLogits)', async () => {
  await initBackend('wasm');
  const cfg = loadConfig('configs/test.yaml').model;
  const model = createModel(cfg);
  const params = initParams(model.layout, cfg, 1);
  const b = batch(cfg.vocab_size, 4, 17, 2);
  model.computeGradients(params, b); // the first call builds the cached RoPE/mask tables
  const before = tf.memory().numTensors;
  for (let i = 0; i < 50; i++) {
    // varying shapes, as the length buckets give
    const r = model.computeGradients(params, i % 5 === 0 ? b : batch(cfg.vocab_size, 1 + (i % 7), 5 + 11 * (i % 11), i));
    params[i] -= 0.01 * r.grad[i];
  }
  model.evaluate(params, b);
  model.forwardLogits(params, b.tokens, b.rows, b.seqLen);
  assert.equal(tf.memory().numTensors, before);
  model.dispose();
  assert.ok(tf.memory().numTensors < before, 'dispose frees the cached tables');
});

test('an 8,192-token micro-batch of the seed model runs in a bounded wasm heap', async () => {
  await initBackend('wasm');
  const cfg = loadConfig('configs/tiny.yaml').model;
  const model = createModel(cfg);
  const params = initParams(model.layout, cfg, 1);
  const tensorsBefore = tf.memory().numTensors;
  const r = model.computeGradients(params, batch(cfg.vocab_size, 32, 257, 3)); // 32 × 256 = 8,192 positions
  assert.equal(r.tokenCount, 8192);
  // at init the loss is ≈ ln(vocab)
  assert.ok(Math.abs(r.lossSum / r.tokenCount - Math.log(cfg.vocab_size)) < 0.1, `mean loss ${r.lossSum / r.tokenCount}`);
  assert.ok(r.grad.every(Number.isFinite));
  const heap = wasmHeapBytes();
  assert.ok(heap < 1.5 * 2 ** 30, `wasm heap grew to ${(heap / 2 ** 20).toFixed(0)} MiB`);
  model.dispose();
  assert.equal(tf.memory().numTensors, tensorsBefore);
});
