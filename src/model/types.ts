/**
 * The contract between the data pipeline, the model, the optimizer and the distributed trainer.
 */

/**
 * A padded token batch, row-major [rows, seqLen]. Id 0 is `<pad>`. The model reads positions
 * 0..seqLen-2 as input and predicts positions 1..seqLen-1; a target equal to `<pad>` is masked
 * (contributes nothing to loss or gradient).
 */
export interface TokenBatch {
  tokens: Uint16Array;
  rows: number;
  seqLen: number;
}

/** Embedding gradient rows: `values` is [rows.length, d_model], rows sorted ascending, unique. */
export interface SparseRows {
  rows: Int32Array;
  values: Float32Array;
}

/**
 * Gradient of the summed (not averaged) next-token cross-entropy over a batch: any split of a
 * batch reduces exactly by adding. `grad` has `layout.total` floats (embedding block included);
 * `embedding` holds the same embedding gradient as sparse rows.
 */
export interface GradResult {
  lossSum: number;
  tokenCount: number;
  grad: Float32Array;
  embedding: SparseRows;
}

export interface LossResult {
  lossSum: number;
  tokenCount: number;
}
