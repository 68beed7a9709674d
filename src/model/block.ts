/**
 * One transformer block (pre-norm, nanoGPT-like):
 *   x = x + attn(ln_1(x))
 *   x = x + mlp(ln_2(x))
 * with ln_1 = `layers.{l}.attention_norm`, attn = `layers.{l}.attention` (./attention.ts),
 * ln_2 = `layers.{l}.ffn_norm`, mlp = `layers.{l}.feed_forward` (./feed-forward.ts).
 * The backward pass runs the same two lines in reverse; the residual passes dy through unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import { attentionBackward, attentionForward, type AttentionCache } from './attention.js';
import { feedForward, feedForwardBackward, type FeedForwardCache } from './feed-forward.js';
import { normBackward, normForward, type NormCache } from './norm.js';
import type { Pass, T2 } from './weights.js';

/** What the forward pass keeps for the backward pass, per block. */
export interface BlockCache { ln1: NormCache; attn: AttentionCache; ln2: NormCache; mlp: FeedForwardCache }

/** x [N, d] → [N, d] */
export function blockForward(P: Pass, x: T2, l: number): { y: T2; cache: BlockCache } {
  const p = `layers.${l}`;
  const ln1 = normForward(P, x, `${p}.attention_norm`);
  const attn = attentionForward(P, ln1.y, `${p}.attention`);
  const x2 = tf.add(x, attn.y);                                       // x = x + attn(ln_1(x))
  const ln2 = normForward(P, x2, `${p}.ffn_norm`);
  const mlp = feedForward(P, ln2.y, `${p}.feed_forward`);
  const x3 = tf.add(x2, mlp.y);                                       // x = x + mlp(ln_2(x))
  return { y: x3, cache: { ln1: ln1.cache, attn: attn.cache, ln2: ln2.cache, mlp: mlp.cache } };
}

/** dy [N, d] → dx [N, d]; gradients in the order w2, w1, ffn_norm, wo, wq, wk, wv, attention_norm. */
export function blockBackward(P: Pass, dy: T2, c: BlockCache, l: number): T2 {
  const p = `layers.${l}`;
  // x3 = x2 + mlp(ln_2(x2))
  const dh2 = feedForwardBackward(P, dy, c.mlp, `${p}.feed_forward`);
  const dx2 = tf.add(dy, normBackward(P, dh2, c.ln2, `${p}.ffn_norm`));
  // x2 = x + attn(ln_1(x))
  const dh1 = attentionBackward(P, dx2, c.attn, `${p}.attention`);
  return tf.add(dx2, normBackward(P, dh1, c.ln1, `${p}.attention_norm`));
}
