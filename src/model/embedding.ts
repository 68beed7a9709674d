/**
 * The token embedding E [V, d] (`tok_embeddings.weight`, offset 0 of the flat parameters), done in
 * plain JS on the flat vectors: the lookup copies rows into a tensor and the backward pass adds rows
 * of dx0 back into the flat gradient, so no gather kernel and no gather-gradient kernel is needed
 * (the wasm backend lacks the latter).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../config/index.js';
import type { GradResult, TokenBatch } from './types.js';
import type { T2 } from './weights.js';

/** Name under which dL/dx0 [N, d] is put in the gradients (see embeddingBackward). */
export const EMBED_GRAD = '__embedding_input__';

/** x0 = E[ids]:  ids [N] → [N, d], built in JS from the flat params. */
export function embeddingForward(cfg: ModelConfig, params: Float32Array, ids: Int32Array): T2 {
  const d = cfg.d_model;
  const x = new Float32Array(ids.length * d);
  for (let i = 0; i < ids.length; i++) x.set(params.subarray(ids[i] * d, ids[i] * d + d), i * d);
  return tf.tensor2d(x, [ids.length, d]);
}

/** Scatter-add dx0 `v` [N, d] (read back from EMBED_GRAD) into the flat gradient: dE[ids[i]] += dx0[i]. */
export function embeddingBackward(cfg: ModelConfig, v: Float32Array, ids: Int32Array, grad: Float32Array): void {
  const d = cfg.d_model;
  for (let i = 0; i < ids.length; i++) {
    const dst = ids[i] * d, src = i * d;
    for (let j = 0; j < d; j++) grad[dst + j] += v[src + j];
  }
}

/** Embedding gradient as sparse rows: the sorted unique rows that can be non-zero. */
export function sparseEmbeddingRows(cfg: ModelConfig, grad: Float32Array, batch: TokenBatch): GradResult['embedding'] {
  const d = cfg.d_model, V = cfg.vocab_size;
  let rowIds: Int32Array;
  if (cfg.tie_embeddings) {
    rowIds = new Int32Array(V).map((_, i) => i); // the head touches every row
  } else {
    const seen = new Uint8Array(V);
    const { rows, seqLen, tokens } = batch;
    for (let r = 0; r < rows; r++) for (let t = 0; t < seqLen - 1; t++) seen[tokens[r * seqLen + t]] = 1;
    let n = 0;
    for (let i = 0; i < V; i++) n += seen[i];
    rowIds = new Int32Array(n);
    for (let i = 0, k = 0; i < V; i++) if (seen[i]) rowIds[k++] = i;
  }
  const values = new Float32Array(rowIds.length * d);
  for (let k = 0; k < rowIds.length; k++) values.set(grad.subarray(rowIds[k] * d, rowIds[k] * d + d), k * d);
  return { rows: rowIds, values };
}
