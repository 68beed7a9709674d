/**
 * The head and the loss: logits = h·Wout [N, V] (Wout [d, V]; Wout = Eᵀ when embeddings are tied),
 * loss = Σ over non-pad targets of cross-entropy(softmax(logits), label).
 *
 * Forward and backward are fused: the softmax-cross-entropy kernel (src/backend/kernels.ts) returns
 * the loss and its gradient g = softmax − onehot [n, V] at once. The head's weight gradient is
 * gᵀ·h (compute-bound) rather than hᵀ·g (memory-bound in XNNPACK: the [n, V] right operand is
 * packed afresh and re-streamed per 4 output rows; measured 15 against 7 ms a 128-row chunk), with
 * gᵀ [V, n] from the backend's Transpose (XNNPACK: ~2 ms a 120-row chunk in a training step,
 * where a JS copy inside the kernel took ~7 ms at 128 rows). It is accumulated as dWoutᵀ [V, d] and handed
 * back in the shape of the parameter it lands in (headGrads).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../config/index.js';
import { softmaxCrossEntropyWithGrad } from '../backend/kernels.js';
import type { Pass, T2 } from './weights.js';

/**
 * Rows of the [tokens, vocab] logits computed at once by the training head. Small on purpose: a
 * [120, 10000] block (4.8 MB) stays in cache, and two replicas computing at once no longer fight
 * over memory bandwidth. Measured (bench-scaling, median of 3): 2 threads vs 1 went 1.35× → 1.55×
 * from 2048 to 128 rows, with single-thread speed unchanged (bench-step 674 → 641 ms); 64 was slower.
 * Not a power of two: gᵀ [V, n] with n = 128 or 256 has a 512-byte (1 KB) row stride, and XNNPACK's
 * transpose writing it ran ~2× slower than at the other sizes from 96 to 144 rows (cache-set
 * conflicts). On 8 × 251 positions the head's transposes took 68 ms at 128 rows against 34 ms at
 * 120 (tf.profile, 2026-12-03).
 */
export const HEAD_CHUNK = 120;


/** logits = h·Wout:  h [n, d] → [n, V]  (evaluation output, no loss). */
export function headLogits(P: Pass, h: T2): T2 {
  return tf.matMul(h, P.W.get('output.weight'));
}

/**
 * Loss (and, with `withGrad`, its backward) over the final hidden states hf [N, d], in row chunks
 * so at most [HEAD_CHUNK, V] logits are alive; chunks start afresh at every segment of the pass,
 * so a segment's chunks are the ones it would have alone. `labels` [N] are target ids, `mask` [N]
 * is 1 for non-pad targets. Returns per segment its chunks' losses (kept: read them outside tidy
 * and dispose) and with `withGrad` its dWoutᵀ = Σ gᵀ·h [V, d] (summed over its chunks in order),
 * and dhf [N, d].
 */
export function headLoss(P: Pass, hf: T2, labels: Int32Array, mask: Float32Array, withGrad: boolean): { losses: tf.Tensor[][]; dhf: T2 | null; dWoutT: T2[] } {
  const N = P.B * P.T;
  const losses: tf.Tensor[][] = [];
  const dhfParts: T2[] = [];
  const dWoutT: T2[] = [];
  const Wout = P.W.get('output.weight');
  for (const seg of P.segments) {
    const segLosses: tf.Tensor[] = [];
    let dW: T2 | null = null;                                      // [V, d] = Σ gᵀ·h over the segment
    for (let r0 = seg.start; r0 < seg.start + seg.size; r0 += HEAD_CHUNK) {
      const n = Math.min(HEAD_CHUNK, seg.start + seg.size - r0);
      const hc = n === N ? hf : tf.slice(hf, [r0, 0], [n, -1]);   // [n, d]
      const logits = tf.matMul(hc, Wout);                         // [n, V]
      const { loss, grad: g } = softmaxCrossEntropyWithGrad(logits as tf.Tensor2D,
        tf.tensor1d(labels.subarray(r0, r0 + n), 'int32'), tf.tensor1d(mask.subarray(r0, r0 + n)));
      logits.dispose();
      segLosses.push(tf.keep(loss));
      if (withGrad) {
        dhfParts.push(tf.matMul(g, P.W.getT('output.weight')));   // g·Woutᵀ  [n, d]
        const gT = tf.transpose(g);                               // gᵀ       [V, n]
        const dWT: T2 = tf.matMul(gT, hc);                        // gᵀ·h     [V, d]
        gT.dispose();
        if (dW) { const s: T2 = tf.add(dW, dWT); dW.dispose(); dWT.dispose(); dW = s; } else dW = dWT;
      }
      g.dispose();
    }
    losses.push(segLosses);
    if (dW) dWoutT.push(dW);
  }
  if (!withGrad) return { losses, dhf: null, dWoutT };
  return { losses, dhf: dhfParts.length === 1 ? dhfParts[0] : tf.concat(dhfParts, 0), dWoutT };
}

/**
 * Where the head's weight gradients (dWoutᵀ [V, d], one per segment) land, and in what shape:
 * `output.weight` [d, V] (transposed by the backend), or with tied embeddings the embedding [V, d]
 * (Wout = Eᵀ, so dE += dWoutᵀ as it is). Either way a plain add into the flat gradient.
 */
export function headGrads(cfg: ModelConfig, dWoutT: T2[]): [string, T2[]] {
  return cfg.tie_embeddings ? ['tok_embeddings.weight', dWoutT] : ['output.weight', dWoutT.map((t) => tf.transpose(t))];
}
