/**
 * Attention properties: RoPE makes q·k depend only on the offset, the causal mask hides the
 * future, and the KV-cached decoder reproduces the full (tfjs) recompute.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/index.ts';
import { loadConfig, type ModelConfig } from '../src/config/index.ts';
import { createModel } from '../src/model/model.ts';
import { applyRope, ropeTensors } from '../src/model/rope.ts';
import { initParams } from '../src/model/layout.ts';
import { Rng } from '../src/util/rng.ts';

const base = loadConfig('configs/test.yaml').model;

function params(cfg: ModelConfig, seed: number): Float32Array {
  const p = initParams(createModel(cfg).layout, cfg, seed);
  const rng = new Rng(seed);
  for (let i = 0; i < p.length; i++) p[i] += rng.normal() * 0.1; // sharper attention than at init
  return p;
}

for (const style of ['rotate_half', 'interleaved'] as const) {
  test(`RoPE (${style}): per-head q·k depends only on the position offset`, async () => {
    await initBackend('wasm');
    const cfg = { ...base, rope_style: style };
    const d = cfg.d_model, H = cfg.n_heads, dk = d / H, T = 40;
    const rng = new Rng(2);
    const qv = Float32Array.from({ length: d }, () => rng.normal()), kv = Float32Array.from({ length: d }, () => rng.normal());
    // the same q (and k) vector at every position, rotated by its position
    const rot = (v: Float32Array) => {
      const r = ropeTensors(cfg, T);
      const x = tf.tile(tf.reshape(tf.tensor1d(v), [1, 1, d]), [1, T, 1]);
      const out = applyRope(x, r).dataSync() as Float32Array;
      tf.dispose([r.cos, r.sin, r.perm, x]);
      return out;
    };
    const q = rot(qv), k = rot(kv);
    const dot = (m: number, n: number, h: number) => {
      let s = 0;
      for (let j = h * dk; j < (h + 1) * dk; j++) s += q[m * d + j] * k[n * d + j];
      return s;
    };
    for (let h = 0; h < H; h++) {
      for (const offset of [0, 1, 5, 17]) {
        const at = dot(offset, 0, h);
        for (const m of [offset + 3, offset + 11, T - 1]) assert.ok(Math.abs(dot(m, m - offset, h) - at) < 1e-4, `head ${h} offset ${offset} at ${m}`);
      }
      assert.ok(Math.abs(dot(5, 0, h) - dot(0, 0, h)) > 1e-3, 'different offsets must differ');
    }
    // a rotation: norms are preserved
    let n0 = 0, n1 = 0;
    for (let j = 0; j < d; j++) { n0 += qv[j] ** 2; n1 += q[17 * d + j] ** 2; }
    assert.ok(Math.abs(n0 - n1) < 1e-4 * n0);
  });
}

test('changing a future token never changes an earlier logit', async () => {
  await initBackend('wasm');
  const model = createModel(base);
  const p = params(base, 3);
  const L = 24, V = base.vocab_size, rng = new Rng(5);
  const a = Array.from({ length: 2 * L }, () => 1 + rng.int(V - 1));
  for (const j of [1, 10, L - 1]) {
    const b = a.slice();
    b[j] = b[j] % (V - 1) + 1; // a different token at position j of row 0
    b[L + j] = b[L + j] % (V - 1) + 1; // and of row 1
    const la = model.forwardLogits(p, a, 2, L), lb = model.forwardLogits(p, b, 2, L);
    for (let row = 0; row < 2; row++) {
      const before = (l: Float32Array) => l.subarray(row * L * V, (row * L + j) * V);
      assert.deepEqual(before(lb), before(la), `positions before ${j} changed`);
      const at = (l: Float32Array) => l.subarray((row * L + j) * V, (row * L + j + 1) * V);
      assert.notDeepEqual(at(lb), at(la), `position ${j} itself must change`);
    }
  }
});

const DECODER_VARIANTS: [string, Partial<ModelConfig>][] = [
  ['seed architecture', {}],
  ['interleaved rope, rmsnorm, gelu, biases, tied', { rope_style: 'interleaved', norm: 'rmsnorm', activation: 'gelu', bias: true, tie_embeddings: true }],
];

for (const [name, over] of DECODER_VARIANTS) {
  test(`KV-cached decoder gives the logits of the full recompute (${name})`, async () => {
    await initBackend('wasm');
    const cfg = { ...base, ...over };
    const model = createModel(cfg);
    const p = params(cfg, 8);
    const L = 30, rng = new Rng(1);
    const tokens = Array.from({ length: L }, () => 1 + rng.int(cfg.vocab_size - 1));
    const full = model.forwardLogits(p, tokens, 1, L);
    const dec = model.decoder(p);
    let worst = 0, scale = 0;
    for (let t = 0; t < L; t++) {
      const z = dec.step(tokens[t]);
      assert.equal(dec.position, t + 1);
      assert.equal(z.length, cfg.vocab_size);
      for (let v = 0; v < z.length; v++) {
        worst = Math.max(worst, Math.abs(z[v] - full[t * cfg.vocab_size + v]));
        scale = Math.max(scale, Math.abs(z[v]));
      }
    }
    assert.ok(scale > 0.1);
    assert.ok(worst < 1e-4 * Math.max(1, scale), `decoder vs recompute: ${worst}`);
    dec.dispose();
    assert.throws(() => model.decoder(p).step(cfg.vocab_size), /outside the vocabulary/);
  });
}
