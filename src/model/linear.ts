/**
 * Linear layer y = x·W (+ b), W stored [in, out] so the forward product is a plain x·W and the
 * backward product a plain dy·Wᵀ with the uploaded transpose (./weights.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { setGrad, type Pass, type T2 } from './weights.js';

/** y = x·W (+ b):  x [N, in] → y [N, out] */
export function linearForward(P: Pass, x: T2, name: string): T2 {
  const y = tf.matMul(x, P.W.get(`${name}.weight`));
  return P.cfg.bias ? tf.add(y, P.W.vec(`${name}.bias`)) : y;
}

/** Backward of y = x·W + b: dW = xᵀ·dy [in, out], db = Σ dy [out] (per segment), returns dx = dy·Wᵀ [N, in]. */
export function linearBackward(P: Pass, dy: T2, x: T2, name: string): T2 {
  setGrad(P, `${name}.weight`, (cut) => tf.matMul(tf.transpose(cut(x)), cut(dy)));
  if (P.cfg.bias) setGrad(P, `${name}.bias`, (cut) => tf.sum(cut(dy), 0));
  return tf.matMul(dy, P.W.getT(`${name}.weight`));
}
