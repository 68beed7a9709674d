/**
 * Types of the optimizer family. This folder does not import src/config (config imports the
 * optimizer names from ./registry.ts, so an import back would be a cycle): the hyper-parameters
 * optim reads are declared here structurally, and `TrainConfig` is assignable to them.
 */
import type { OptimizerName } from './registry.js';
import type { OptimizerHyperparams } from './rule.js';

export type { OptimizerHyperparams, OptimizerRule, RuleStep } from './rule.js';

/** What `createOptimizer` takes: the hyper-parameters plus which rule (`train.optimizer`). */
export interface OptimizerConfig extends OptimizerHyperparams {
  optimizer: OptimizerName;
}

/** What the learning-rate schedule reads (see ./schedule.ts). */
export interface ScheduleConfig {
  lr: number;
  min_lr: number;
  warmup_steps: number;
  steps: number;
}

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
