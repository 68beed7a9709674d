import type { ScheduleConfig } from './types.js';

/**
 * Learning rate for the optimizer step with 0-based index `step` (the step about to be taken):
 *
 *   warmup   step < warmup_steps:        lr · (step + 1) / warmup_steps     (linear, never 0)
 *   cosine   warmup_steps ≤ step < steps: min_lr + ½(lr − min_lr)(1 + cos(π·p)),
 *            p = (step − warmup_steps) / (steps − 1 − warmup_steps)
 *   after    step ≥ steps − 1:             min_lr
 *
 * So the first step after warmup uses exactly `lr` and the last step (`steps − 1`) exactly
 * `min_lr`. With `warmup_steps = 0` the schedule starts at `lr`.
 */
export function learningRate(step: number, train: ScheduleConfig): number {
  const { lr, min_lr: minLr, warmup_steps: warmup, steps } = train;
  if (step < warmup) return (lr * (step + 1)) / warmup;
  const span = steps - 1 - warmup;
  if (span <= 0) return step >= steps ? minLr : lr;
  if (step >= steps - 1) return minLr;
  const p = (step - warmup) / span;
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * p));
}
