import type { ModelConfig } from '../config/index.js';
import type { Layout } from './layout.js';
import type { GradResult, LossResult, TokenBatch } from './types.js';

/**
 * What the trainer needs from the model (implemented in `src/model/model.ts`, `createModel`).
 * A model object owns no weights: every call takes the flat parameter vector, so one replica can
 * follow the coordinator's weights without copies. (It may keep its last upload of them, used
 * again only while the vector holds the same bits: src/model/weights.ts WeightCache.)
 */
export interface LanguageModel {
  readonly config: ModelConfig;
  readonly layout: Layout;
  /** Summed next-token cross-entropy and its gradient over the batch (pad targets masked). */
  computeGradients(params: Float32Array, batch: TokenBatch): GradResult;
  /**
   * computeGradients of each batch, every result the same bytes as computeGradients on that batch
   * alone; a model may compute several batches in one pass (bigger matmuls). With `into`, batch k's
   * flat gradient is written into `into[k]` (`layout.total` floats, zeroed first) and returned as
   * its `grad`, so a caller can reuse its buffers call after call. Optional: a model that
   * lacks it is called through computeGradients (src/fleet/worker/compute.ts).
   */
  computeGradientsEach?(params: Float32Array, batches: readonly TokenBatch[], into?: readonly Float32Array[]): GradResult[];
  /** Summed loss and token count, no gradient. */
  evaluate(params: Float32Array, batch: TokenBatch): LossResult;
  /**
   * Each sequence scored alone (no padding; a model may share passes between them): its loss sum and token count,
   * the same numbers as `evaluate` on that sequence as a one-row batch. Optional: a model that
   * lacks it is called through `evaluate` (src/train/parallel-eval.ts).
   */
  evaluateEach?(params: Float32Array, sequences: readonly Uint16Array[]): { nats: Float64Array; tokens: Float64Array };
  /** Incremental decoder with a KV cache for generation. */
  decoder(params: Float32Array): IncrementalDecoder;
  /** Free any backend memory held (cached tensors). */
  dispose(): void;
}

export interface IncrementalDecoder {
  /** Feed one token at the next position; returns the logits [vocab] for the following token. */
  step(token: number): Float32Array;
  /** Number of positions fed so far. */
  readonly position: number;
  dispose(): void;
}
