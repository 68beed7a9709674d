/**
 * The feed-forward network of a block: y = act(x·W1 (+ b1))·W2 (+ b2), F = ff_dim.
 *   x [N, d] → u [N, F] → a = act(u) [N, F] → y [N, d]
 * Activations: relu, gelu (exact, erf), gelu_tanh (the tanh approximation, computed through a
 * sigmoid: see activationForward).
 */
import * as tf from '@tensorflow/tfjs-core';
import { linearBackward, linearForward } from './linear.js';
import type { Pass, T2 } from './weights.js';

// ------------------------------------------------------------------------------------------
// Activation

/** a = act(u), elementwise [N, F]; `aux` is what the backward pass needs besides u (σ(2z) for gelu_tanh). */
export function activationForward(P: Pass, u: T2): { a: T2; aux: T2 | null } {
  switch (P.cfg.activation) {
    case 'relu': return { a: tf.relu(u), aux: null };
    case 'gelu': return { a: tf.mul(tf.mul(u, 0.5), tf.add(tf.erf(tf.mul(u, Math.SQRT1_2)), 1)), aux: null };
    case 'gelu_tanh': {
      // 0.5·u·(1 + tanh(z)), z = √(2/π)·(u + 0.044715·u³), computed as u·σ(2z) (the same function:
      // 1 + tanh(z) = 2σ(2z)) because wasm's Sigmoid is vectorised and ~14× faster than its Tanh.
      // Keep s = σ(2z) for the backward pass.
      const z2 = tf.mul(tf.add(u, tf.mul(tf.mul(tf.square(u), u), 0.044715)), 2 * Math.sqrt(2 / Math.PI));
      const s = tf.sigmoid(z2);
      return { a: tf.mul(u, s), aux: s };
    }
  }
}

/** du = da ⊙ act'(u), elementwise [N, F]. */
export function activationBackward(P: Pass, da: T2, u: T2, aux: T2 | null): T2 {
  switch (P.cfg.activation) {
    case 'relu': return tf.mul(da, tf.step(u, 0));
    case 'gelu': {
      // d/du = Φ(u) + u·φ(u)
      const cdf = tf.mul(tf.add(tf.erf(tf.mul(u, Math.SQRT1_2)), 1), 0.5);
      const pdf = tf.mul(tf.exp(tf.mul(tf.square(u), -0.5)), 1 / Math.sqrt(2 * Math.PI));
      return tf.mul(da, tf.add(cdf, tf.mul(u, pdf)));
    }
    case 'gelu_tanh': {
      // d/du = 0.5·(1+t) + 0.5·u·(1−t²)·z'  with t = tanh(z) = 2s − 1, z' = √(2/π)·(1 + 3·0.044715·u²)
      //      = s + 2·u·s·(1−s)·z'
      const s = aux!;
      const dz = tf.mul(tf.add(tf.mul(tf.square(u), 3 * 0.044715), 1), Math.sqrt(2 / Math.PI));
      const d = tf.add(s, tf.mul(tf.mul(tf.mul(u, 2), tf.mul(s, tf.sub(1, s))), dz));
      return tf.mul(da, d);
    }
  }
}

// ------------------------------------------------------------------------------------------
// FFN

/** What the forward pass keeps for the backward pass. */
export interface FeedForwardCache {
  /** input [N, d] */
  x: T2;
  /** pre-activation x·W1 [N, F] */
  u: T2;
  /** act(u) [N, F] */
  a: T2;
  /** the activation's extra saved tensor [N, F] (gelu_tanh), else null */
  aux: T2 | null;
}

/** y = act(x·W1)·W2:  x [N, d] → y [N, d]  (parameters `${prefix}.w1`, `${prefix}.w2`) */
export function feedForward(P: Pass, x: T2, prefix: string): { y: T2; cache: FeedForwardCache } {
  const u = linearForward(P, x, `${prefix}.w1`);                   // [N, F]
  const { a, aux } = activationForward(P, u);                       // [N, F]
  const y = linearForward(P, a, `${prefix}.w2`);                   // [N, d]
  return { y, cache: { x, u, a, aux } };
}

/** dy [N, d] → dx [N, d]; gradients of w2 then w1. */
export function feedForwardBackward(P: Pass, dy: T2, c: FeedForwardCache, prefix: string): T2 {
  const da = linearBackward(P, dy, c.a, `${prefix}.w2`);          // [N, F]
  const du = activationBackward(P, da, c.u, c.aux);                 // [N, F]
  return linearBackward(P, du, c.x, `${prefix}.w1`);              // [N, d]
}
