/**
 * The per-call tensors of the model: the flat parameter vector (./layout.ts) uploaded as tensors,
 * the gradient sink the backward passes write into, and the context every component reads.
 *
 * Matrices are stored [in, out] so every forward product is a plain x·W; their transposes
 * [out, in] are uploaded too, so every backward product is a plain dy·Wᵀ (transposed matmuls are
 * slow on wasm). The token embedding is not uploaded: its lookup is done in JS (./embedding.ts).
 */
import { Buffer } from 'node:buffer';
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../config/index.js';
import type { Layout } from './layout.js';
import type { RopeTensors } from './rope.js';

export type T2 = tf.Tensor;

/** The weights of one call as tensors; matrices [in, out] plus their transposes [out, in] for backward. */
export interface Weights {
  get(name: string): T2;
  getT(name: string): T2;
  vec(name: string): tf.Tensor;
  has(name: string): boolean;
  dispose(): void;
}

/**
 * Gradients by parameter name, one tensor per segment of the pass, in the order the backward pass
 * produced them (the write-back into the flat gradient follows this order, which matters when two
 * entries add into one region).
 */
export type Grads = Map<string, tf.Tensor[]>;

/** A segment of a pass: positions [start, start + size) of its N, whole rows. */
export interface Segment { start: number; size: number }

/**
 * One forward/backward pass over B rows of T positions (N = B·T); all activations are 2-D [N, ·].
 * The rows are cut into segments that get parameter gradients of their own (see setGrad): every
 * operation between the weights and the loss works row by row, so a pass over several segments
 * gives each segment the bytes it would get alone (tested in test/model-gradients.test.ts).
 */
export interface Pass {
  cfg: ModelConfig;
  W: Weights;
  B: number;
  T: number;
  /** RoPE tables for positions 0..T−1 (cos/sin [T, d], perm [d, d]) */
  rope: RopeTensors;
  /** additive causal mask [T, T] */
  mask: T2;
  /** the segments, in order, covering [0, N) */
  segments: readonly Segment[];
  /** where the backward functions put their parameter gradients (setGrad) */
  grads: Grads;
}

/**
 * Put a parameter gradient that sums over positions: `sum(cut)` is called once per segment, with
 * `cut` taking that segment's rows of an [N, ·] tensor (the tensor itself for a single segment).
 */
export function setGrad(P: Pass, name: string, sum: (cut: (t: T2) => T2) => tf.Tensor): void {
  const whole = P.segments.length === 1;
  P.grads.set(name, P.segments.map((s) => sum((t) => (whole ? t : tf.slice(t, [s.start, 0], [s.size, -1])))));
}

/** Upload the flat parameter vector (call outside tidy; dispose() frees it). */
export function uploadWeights(layout: Layout, cfg: ModelConfig, params: Float32Array): Weights {
  const mats = new Map<string, T2>(), trans = new Map<string, T2>(), vecs = new Map<string, tf.Tensor>();
  for (const p of layout.params) {
    if (p.kind === 'embedding') continue; // the lookup is done in JS (see ./embedding.ts)
    const data = params.subarray(p.offset, p.offset + p.size);
    if (p.kind === 'matrix') {
      const m = tf.tensor2d(data, [p.shape[0], p.shape[1]]);
      mats.set(p.name, m);
      trans.set(p.name, tf.transpose(m));
    } else {
      vecs.set(p.name, tf.tensor1d(data));
    }
  }
  if (cfg.tie_embeddings) {
    // Wout = Eᵀ [d, V]; its transpose is E itself [V, d].
    const E = tf.tensor2d(params.subarray(0, cfg.vocab_size * cfg.d_model), [cfg.vocab_size, cfg.d_model]);
    trans.set('output.weight', E);
    mats.set('output.weight', tf.transpose(E));
  }
  const missing = (n: string): never => { throw new Error(`model: no parameter ${n}`); };
  return {
    get: (n) => mats.get(n) ?? missing(n),
    getT: (n) => trans.get(n) ?? missing(n),
    vec: (n) => vecs.get(n) ?? missing(n),
    has: (n) => mats.has(n) || vecs.has(n),
    dispose: () => { tf.dispose([...mats.values(), ...trans.values(), ...vecs.values()]); },
  };
}

/**
 * The last upload, kept for the next call with the same weights. Reusing the tensors saves more
 * than the upload: XNNPACK packs a matmul's weight operand once per tensor, so a new tensor is
 * re-packed on first use (measured, 2026-12-03: [1,64]×[64,10000] took 0.10 ms on a tensor it had
 * used before and 3.1 ms on a fresh upload of the same values). A step's second and later calls
 * in a thread — another task, another pass group, validation — get the same weights.
 *
 * The key is the bits themselves, not the caller's array: the trainer updates its parameter array
 * in place, so "same array" would say nothing. The comparison is one native memcmp of the
 * parameter bytes (5.7 MB for the seed model), and stops at the first difference.
 */
export class WeightCache {
  private last: { bits: Float32Array; W: Weights } | null = null;

  constructor(private readonly layout: Layout, private readonly cfg: ModelConfig) {}

  /** The weights for `params` (do not dispose them: the cache owns them). */
  get(params: Float32Array): Weights {
    if (this.last && sameBits(this.last.bits, params)) return this.last.W;
    const bits = this.last?.bits ?? new Float32Array(params.length);
    this.dispose();
    const W = uploadWeights(this.layout, this.cfg, params);
    bits.set(params);
    this.last = { bits, W };
    return W;
  }

  dispose(): void {
    this.last?.W.dispose();
    this.last = null;
  }
}

function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && bytesOf(a).equals(bytesOf(b));
}
