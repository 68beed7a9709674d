/**
 * Rotary position embedding (RoPE) tables and the op, shared by the tfjs model and the reference.
 *
 * Within each head of size dk, dimension pairs (a, b) are rotated by angle t·ω_i at position t,
 * ω_i = theta^(−2i/dk), i = 0..dk/2−1:
 *   out[a] = x[a]·cos − x[b]·sin,   out[b] = x[b]·cos + x[a]·sin
 * `rotate_half` (Llama / GPT-NeoX): pairs (i, i + dk/2). `interleaved` (original RoFormer/GPT-J): pairs (2i, 2i+1).
 *
 * Written as an elementwise op over all heads at once ([.., d] with d = H·dk):
 *   rope(x) = x ⊙ C + x[partner] ⊙ S
 * where partner(j) is j's pair mate, C[t, j] = cos(t·ω), S[t, j] = ∓sin(t·ω) (− on the pair's first
 * element). partner is an involution, so the transpose (the backward pass) is
 *   ropeᵀ(dy) = dy ⊙ C + (dy ⊙ S)[partner].
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../config/index.js';

export interface RopeTables {
  /** [T, d] row-major, cos(t·ω) repeated for both pair members and over heads */
  cos: Float32Array;
  /** [T, d] row-major, −sin for a pair's first member, +sin for the second */
  sin: Float32Array;
  /** [d] pair mate of each dimension */
  partner: Int32Array;
}

type RopeCfg = Pick<ModelConfig, 'd_model' | 'n_heads' | 'rope_theta' | 'rope_style'>;

/** Pair structure within a head: for dimension j in [0, dk): its mate, its frequency index, whether it is the first member. */
export function ropePair(j: number, dk: number, style: ModelConfig['rope_style']): { mate: number; freq: number; first: boolean } {
  const half = dk / 2;
  if (style === 'rotate_half') return j < half ? { mate: j + half, freq: j, first: true } : { mate: j - half, freq: j - half, first: false };
  return j % 2 === 0 ? { mate: j + 1, freq: j / 2, first: true } : { mate: j - 1, freq: (j - 1) / 2, first: false };
}

/** Tables for positions 0..T−1 (angles computed in float64, stored as float32). */
export function ropeTables(cfg: RopeCfg, T: number): RopeTables {
  const d = cfg.d_model, dk = d / cfg.n_heads;
  const cos = new Float32Array(T * d), sin = new Float32Array(T * d), partner = new Int32Array(d);
  for (let j = 0; j < d; j++) {
    const h = Math.floor(j / dk), { mate, freq, first } = ropePair(j % dk, dk, cfg.rope_style);
    partner[j] = h * dk + mate;
    const omega = Math.pow(cfg.rope_theta, (-2 * freq) / dk);
    for (let t = 0; t < T; t++) {
      cos[t * d + j] = Math.cos(t * omega);
      sin[t * d + j] = (first ? -1 : 1) * Math.sin(t * omega);
    }
  }
  return { cos, sin, partner };
}

/**
 * The tables as tensors: cos/sin [T, d] and the pair swap as a [d, d] permutation matrix
 * (x·P)[j] = x[partner(j)]; a 64×64 matmul is exact (one 1, zeros elsewhere) and much faster than
 * a gather on wasm. P is symmetric because partner is an involution.
 */
export interface RopeTensors { cos: tf.Tensor2D; sin: tf.Tensor2D; perm: tf.Tensor2D }

export function ropeTensors(cfg: RopeCfg, T: number): RopeTensors {
  const t = ropeTables(cfg, T);
  return {
    cos: tf.tensor2d(t.cos, [T, cfg.d_model]),
    sin: tf.tensor2d(t.sin, [T, cfg.d_model]),
    perm: tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(t.partner, 'int32'), cfg.d_model), 'float32') as tf.Tensor2D),
  };
}

/** x[..., partner] for x [B, T, d] via the permutation matrix. */
function swapPairs(x: tf.Tensor, perm: tf.Tensor2D): tf.Tensor {
  const d = perm.shape[0];
  return tf.reshape(tf.matMul(tf.reshape(x, [-1, d]), perm), x.shape);
}

/** rope(x) for x [B, T, d] (tables broadcast over B). */
export function applyRope(x: tf.Tensor, r: RopeTensors): tf.Tensor {
  return tf.tidy(() => tf.add(tf.mul(x, r.cos), tf.mul(swapPairs(x, r.perm), r.sin)));
}

/** ropeᵀ(dy) for dy [B, T, d]: the gradient of applyRope. */
export function applyRopeTranspose(dy: tf.Tensor, r: RopeTensors): tf.Tensor {
  return tf.tidy(() => tf.add(tf.mul(dy, r.cos), swapPairs(tf.mul(dy, r.sin), r.perm)));
}
