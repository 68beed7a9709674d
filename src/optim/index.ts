/**
 * First-order optimizers over the flat parameter vector (the contract is `./types.ts`).
 *
 *   import { createOptimizer, decayMaskFor, lrGroupsFor } from '../optim/index.js';
 *   const opt = createOptimizer(cfg.train, layout.total, { decayMask: decayMaskFor(layout), lrGroups: lrGroupsFor(layout, cfg.train) });
 *   clipGlobalNorm(grad, cfg.train.clip_norm);           // ../optim/clip.js, grad already averaged
 *   opt.step(params, grad, learningRate(step, cfg.train)); // ../optim/schedule.js
 *   checkpoint.optimizer = opt.getState();                // copies; opt.setState(s) on resume
 *
 * The optimizers are registered in ./registry.ts (one rule per file under ./rules/); their update
 * rules (g = gradient, w = weight, lr = learning rate, t = 1-based step count):
 *   sgd       w −= lr·g
 *   momentum  v = β·v + (1−β)·g;            w −= lr·v            (β = train.momentum; the spec's form)
 *   rmsprop   s = ρ·s + (1−ρ)·g²;           w −= lr·g/(√s + eps) (ρ = train.rms_decay)
 *   adam      m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²
 *             w −= lr·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + eps)         (bias corrected)
 * Decoupled weight decay (AdamW style, any optimizer): w −= lr·wd·w, using the weight before the
 * update, only where `decayMask` is 1 (default: everywhere when no mask is given).
 * Learning-rate groups (`lrGroups`, see `lrGroupsFor`): a parameter range whose lr (and with it its
 * decay lr·wd) is the scheduled lr times a scale; the rule runs once per range on views of the
 * arrays, so a range's elements get exactly the arithmetic of an optimizer run at lr·scale.
 *
 * Each step (a rule's `step`, see RuleStep in ./types.ts) is ONE pass over the arrays with no
 * allocation: per element the arithmetic is done in float64 (JS numbers) and rounded to float32
 * when stored, so results are deterministic and equal across runs and machines.
 */
import { isOptimizerName, optimizerRule, type OptimizerName } from './registry.js';
import type { Optimizer, OptimizerConfig, OptimizerHyperparams, OptimizerRule, OptimizerState } from './types.js';

export type { Optimizer, OptimizerConfig, OptimizerHyperparams, OptimizerRule, OptimizerState, RuleStep, ScheduleConfig } from './types.js';
export { OPTIMIZERS, OPTIMIZER_NAMES, isOptimizerName, type OptimizerName } from './registry.js';
export { learningRate } from './schedule.js';
export { clipGlobalNorm, globalNorm } from './clip.js';

export interface OptimizerOptions {
  /** 1 where decoupled weight decay applies (see `decayMaskFor`); length `total`. */
  decayMask?: Uint8Array;
  /** ranges whose learning rate is scaled (see `lrGroupsFor`); disjoint; elsewhere scale 1 */
  lrGroups?: readonly LrGroup[];
}

/** A parameter range [offset, offset + size) stepped at the scheduled lr × `scale`. */
export interface LrGroup {
  offset: number;
  size: number;
  scale: number;
}

/**
 * The parameter table the decay mask and the lr groups read (src/model/layout.ts's Layout satisfies
 * it; declared here so that optim depends on no other folder).
 */
export interface ParamTable {
  total: number;
  params: readonly { kind: string; offset: number; size: number }[];
}

/**
 * Weight-decay mask: 1 for weight matrices and the token embedding, 0 for norm weights and biases
 * (decaying a norm gain toward 0 or a bias has no regularising meaning).
 */
export function decayMaskFor(layout: ParamTable): Uint8Array {
  const mask = new Uint8Array(layout.total);
  for (const p of layout.params) {
    if (p.kind === 'matrix' || p.kind === 'embedding') mask.fill(1, p.offset, p.offset + p.size);
  }
  return mask;
}

/**
 * The lr groups a config asks for: the token embedding (kind 'embedding'; with tied embeddings it is
 * also the output head) at `embedding_lr_scale` × lr. None when the scale is 1.
 *
 * Why: Adam moves a weight by about lr a step wherever its gradient is consistent, but an embedding
 * row has a gradient only in steps whose batch holds its token, so a rare token's row gets few
 * steps; a larger rate for the embedding alone lets those rows catch up (measured in the README,
 * "The 30-minute recipe").
 */
export function lrGroupsFor(layout: ParamTable, train: { embedding_lr_scale: number }): LrGroup[] {
  const scale = train.embedding_lr_scale;
  if (scale === 1) return [];
  return layout.params.filter((p) => p.kind === 'embedding').map((p) => ({ offset: p.offset, size: p.size, scale }));
}

/** [start, end, scale) ranges covering [0, total) in order: the groups plus scale-1 gaps. */
function lrRanges(groups: readonly LrGroup[], total: number): [number, number, number][] {
  const sorted = [...groups].sort((a, b) => a.offset - b.offset);
  const out: [number, number, number][] = [];
  let at = 0;
  for (const g of sorted) {
    if (!Number.isInteger(g.offset) || !Number.isInteger(g.size) || g.offset < at || g.size < 0 || g.offset + g.size > total) {
      throw new Error(`createOptimizer: lr group [${g.offset}, +${g.size}) overlaps another or lies outside ${total} parameters`);
    }
    if (!(g.scale > 0) || !Number.isFinite(g.scale)) throw new Error(`createOptimizer: lr group scale ${g.scale} must be a positive number`);
    if (g.offset > at) out.push([at, g.offset, 1]);
    if (g.size > 0) out.push([g.offset, g.offset + g.size, g.scale]);
    at = g.offset + g.size;
  }
  if (at < total) out.push([at, total, 1]);
  return out;
}

class FlatOptimizer implements Optimizer {
  private t = 0;
  private readonly buf: Record<string, Float32Array> = {};
  private readonly rule: OptimizerRule;
  /** [start, end, scale) ranges covering the parameters (one, [0, total) at scale 1, without lr groups) */
  private readonly ranges: [number, number, number][];
  /** each range's views of the state buffers (the buffers are never replaced: setState copies in) */
  private readonly rangeBufs: Record<string, Float32Array>[];

  constructor(
    readonly name: OptimizerName,
    private readonly train: OptimizerHyperparams,
    private readonly total: number,
    private readonly decayMask: Uint8Array | undefined,
    lrGroups: readonly LrGroup[],
  ) {
    if (!Number.isInteger(total) || total < 0) throw new Error(`createOptimizer: bad total ${total}`);
    if (decayMask && decayMask.length !== total) {
      throw new Error(`createOptimizer: decayMask has ${decayMask.length} entries, expected ${total}`);
    }
    this.rule = optimizerRule(name);
    for (const b of this.rule.buffers) this.buf[b] = new Float32Array(total);
    this.ranges = lrRanges(lrGroups, total);
    this.rangeBufs = this.ranges.map(([a, b]) => Object.fromEntries(this.rule.buffers.map((k) => [k, this.buf[k].subarray(a, b)])));
  }

  step(w: Float32Array, g: Float32Array, lr: number): void {
    const n = this.total;
    if (w.length !== n || g.length !== n) {
      throw new Error(`optimizer.step: params ${w.length} / grad ${g.length} floats, expected ${n}`);
    }
    this.t++;
    const wd = this.train.weight_decay;
    // One pass per range (without lr groups: one, over everything), on views: the rule loops to
    // its view's length (see RuleStep.w). Decoupled decay from the pre-update weight,
    // w' = w − lr·wd·w − lr·update, is folded by the rule into that pass (see RuleStep in ./types.ts).
    this.ranges.forEach(([a, b, scale], r) => {
      const lrs = lr * scale;
      this.rule.step({
        w: w.subarray(a, b), g: g.subarray(a, b), lr: lrs, decay: wd > 0 ? lrs * wd : 0,
        mask: this.decayMask?.subarray(a, b), t: this.t, hp: this.train, buf: this.rangeBufs[r],
      });
    });
  }

  /** A copy of the state (safe to serialise while training continues). */
  getState(): OptimizerState {
    const buffers: Record<string, Float32Array> = {};
    for (const [k, b] of Object.entries(this.buf)) buffers[k] = b.slice();
    return { name: this.name, step: this.t, buffers };
  }

  /** Restore a state from `getState` (copied in); throws on a different optimizer or size. */
  setState(state: OptimizerState): void {
    if (state.name !== this.name) throw new Error(`optimizer state is for '${state.name}', this optimizer is '${this.name}'`);
    if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`optimizer state: bad step ${state.step}`);
    for (const k of this.rule.buffers) {
      const b = state.buffers[k];
      if (!b) throw new Error(`optimizer state for '${this.name}' lacks buffer '${k}'`);
      if (b.length !== this.total) throw new Error(`optimizer state buffer '${k}' has ${b.length} floats, expected ${this.total}`);
    }
    for (const k of this.rule.buffers) this.buf[k].set(state.buffers[k]);
    this.t = state.step;
  }
}

/**
 * The optimizer named by `train.optimizer` over `total` parameters. `train` supplies the
 * hyper-parameters (beta1, beta2, eps, momentum, rms_decay, weight_decay); the learning rate is
 * passed to each `step` (see `learningRate`).
 */
export function createOptimizer(train: OptimizerConfig, total: number, opts: OptimizerOptions = {}): Optimizer {
  if (!isOptimizerName(train.optimizer)) throw new Error(`unknown optimizer '${String(train.optimizer)}'`);
  return new FlatOptimizer(train.optimizer, train, total, opts.decayMask, opts.lrGroups ?? []);
}

/** Names of the moment buffers an optimizer keeps (for checkpoint validation). */
export function optimizerBufferNames(name: OptimizerName): readonly string[] {
  return optimizerRule(name).buffers;
}
