/**
 * Normalisation over the feature axis, per position: layernorm (x − mean, then scale and bias) or
 * rmsnorm (no centring, no bias), both as y = x̂·g (+ b) with x̂ = (x − μ)·rstd.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setGrad, type Pass, type T2 } from './weights.js';

/** What the forward pass keeps for the backward pass. */
export interface NormCache {
  /** normalised input [N, d] */
  xhat: T2;
  /** 1/√(var + eps) [N, 1] */
  rstd: T2;
}

/** y = x̂·g (+ b):  x [N, d] → y [N, d]  (parameters `${prefix}.weight`, `${prefix}.bias`) */
export function normForward(P: Pass, x: T2, prefix: string): { y: T2; cache: NormCache } {
  const eps = P.cfg.norm_eps;
  const g = P.W.vec(`${prefix}.weight`);
  let xhat: T2, rstd: T2;
  if (P.cfg.norm === 'layernorm') {
    const xc = tf.sub(x, tf.mean(x, 1, true));                       // [N, d]
    rstd = tf.rsqrt(tf.add(tf.mean(tf.square(xc), 1, true), eps));  // [N, 1]
    xhat = tf.mul(xc, rstd);
  } else {
    rstd = tf.rsqrt(tf.add(tf.mean(tf.square(x), 1, true), eps));   // [N, 1]
    xhat = tf.mul(x, rstd);
  }
  let y: T2 = tf.mul(xhat, g);
  if (P.cfg.norm === 'layernorm') y = tf.add(y, P.W.vec(`${prefix}.bias`));
  return { y, cache: { xhat, rstd } };
}

/**
 * dy [N, d] → dx [N, d]; dg = Σ dy·x̂ [d], db = Σ dy [d] (per segment).
 * dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) for layernorm (no mean(dx̂) term for rmsnorm).
 */
export function normBackward(P: Pass, dy: T2, c: NormCache, prefix: string): T2 {
  setGrad(P, `${prefix}.weight`, (cut) => tf.sum(cut(tf.mul(dy, c.xhat)), 0));
  if (P.cfg.norm === 'layernorm') setGrad(P, `${prefix}.bias`, (cut) => tf.sum(cut(dy), 0));
  const dxhat = tf.mul(dy, P.W.vec(`${prefix}.weight`));                                  // [N, d]
  let inner = tf.sub(dxhat, tf.mul(c.xhat, tf.mean(tf.mul(dxhat, c.xhat), 1, true)));
  if (P.cfg.norm === 'layernorm') inner = tf.sub(inner, tf.mean(dxhat, 1, true));
  return tf.mul(inner, c.rstd);
}
