/**
 * What an update rule is (one file per rule under ./rules/, registered in ./registry.ts). This file
 * imports nothing, so the rules and the registry depend on it and on nothing else.
 */

/** The hyper-parameters the update rules read (a structural subset of config's `TrainConfig`). */
export interface OptimizerHyperparams {
  beta1: number;
  beta2: number;
  eps: number;
  /** β of `momentum` */
  momentum: number;
  /** ρ of `rmsprop` */
  rms_decay: number;
  /** decoupled weight decay coefficient (0 = off) */
  weight_decay: number;
}

/**
 * One optimizer step as handed to a rule. The rule updates `w` in place, in ONE pass over the
 * arrays with no allocation, doing the per-element arithmetic in float64 (JS numbers) and rounding
 * to float32 only when storing. Decoupled weight decay is part of the same pass, from the weight
 * before the update, so every rule's loop computes, per element i:
 *
 *   const wi = w[i];
 *   const d = decay !== 0 && (!mask || mask[i] === 1) ? decay * wi : 0;
 *   w[i] = wi - d - <update_i>;
 */
export interface RuleStep<B extends string = string> {
  /**
   * parameters, updated in place (n = w.length floats). Rules loop to `w.length`, read from the
   * array itself: with a bound taken from this object instead, V8's fully optimised code kept
   * its bounds checks and ran the Adam loop at ~220 ms instead of ~20 ms per step for the seed
   * model (measured: steps 3+ of every run, after the on-stack-replacement code was replaced).
   */
  w: Float32Array;
  /** the averaged, clipped gradient (w.length floats) */
  g: Float32Array;
  lr: number;
  /** lr·weight_decay, or exactly 0 when weight decay is off */
  decay: number;
  /** 1 where decay applies; undefined = everywhere */
  mask: Uint8Array | undefined;
  /** 1-based count of steps taken, including this one */
  t: number;
  hp: OptimizerHyperparams;
  /** the rule's state buffers (its `buffers`, each w.length floats, zero at step 1), updated in place */
  buf: Readonly<Record<B, Float32Array>>;
}

/**
 * An update rule (one file per rule under ./rules/, registered in ./registry.ts). `buffers` names
 * the state it keeps (the keys of `OptimizerState.buffers`, in serialisation order).
 */
export interface OptimizerRule<N extends string = string, B extends string = string> {
  readonly name: N;
  readonly buffers: readonly B[];
  step(s: RuleStep<B>): void;
}

/** Declare a rule with its name and buffer names kept as literal types (used by ./rules/*). */
export function defineRule<N extends string, B extends string = never>(rule: OptimizerRule<N, B>): OptimizerRule<N, B> {
  return rule;
}
