/**
 * The optimizer registry, derived from the one list of rules (./rules/index.ts: a new optimizer is
 * one file there plus one line). Everything else (config validation, `OptimizerName`, the CLI's
 * `--optimizer` choices, checkpoint buffer names, createOptimizer) comes from this object.
 *
 * Light on purpose (no tfjs, no config): the CLI and src/config import it.
 */
import type { OptimizerRule } from './rule.js';
import * as rules from './rules/index.js';

export const OPTIMIZERS = { ...rules } as const;

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
