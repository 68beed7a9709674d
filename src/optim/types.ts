import type { OptimizerName } from '../config/index.js';

/**
 * A first-order optimizer over the flat parameter vector (implemented in `src/optim/index.ts`,
 * `createOptimizer(cfg.train, total)`). `step` updates `params` in place from the already averaged
 * (and clipped) gradient. The state is plain typed arrays, serialisable into a checkpoint.
 */
export interface OptimizerState {
  name: OptimizerName;
  step: number;
  /** named moment buffers, each `total` floats (e.g. { m, v } for Adam) */
  buffers: Record<string, Float32Array>;
}

export interface Optimizer {
  readonly name: OptimizerName;
  step(params: Float32Array, grad: Float32Array, lr: number): void;
  getState(): OptimizerState;
  setState(state: OptimizerState): void;
}
