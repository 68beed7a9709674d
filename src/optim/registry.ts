/**
 * THE list of optimizers. Adding one = a file under ./rules/ exporting a `defineRule({...})`
 * object, plus its entry here (the import and the key). Everything else (config validation, `OptimizerName`, the CLI's
 * `--optimizer` choices, checkpoint buffer names, createOptimizer) is derived from this object.
 *
 * Light on purpose (no tfjs, no config): the CLI and src/config import it.
 */
import type { OptimizerRule } from './rule.js';
import { sgd } from './rules/sgd.js';
import { momentum } from './rules/momentum.js';
import { rmsprop } from './rules/rmsprop.js';
import { adam } from './rules/adam.js';

export const OPTIMIZERS = {
  sgd,
  momentum,
  rmsprop,
  adam,
} as const;

export type OptimizerName = keyof typeof OPTIMIZERS;

// Build-time check: every key equals its rule's `name` (a mismatch fails `npm run typecheck`).
const _keysMatchNames: { readonly [K in OptimizerName]: OptimizerRule<K> } = OPTIMIZERS;
void _keysMatchNames;

/** Registered optimizer names, in registry order (e.g. for `choices:` and config validation). */
export const OPTIMIZER_NAMES: readonly OptimizerName[] = Object.freeze(Object.keys(OPTIMIZERS) as OptimizerName[]);

export function isOptimizerName(x: unknown): x is OptimizerName {
  return typeof x === 'string' && Object.hasOwn(OPTIMIZERS, x);
}

/** The rule registered under `name` (its `buffers` and `step`). */
export function optimizerRule(name: OptimizerName): OptimizerRule {
  return OPTIMIZERS[name];
}
