/**
 * First-order optimizers over the flat parameter vector (the contract is `./types.ts`).
 *
 *   import { createOptimizer, decayMaskFor } from '../optim/index.js';
 *   const opt = createOptimizer(cfg.train, layout.total, { decayMask: decayMaskFor(layout) });
 *   clipGlobalNorm(grad, cfg.train.clip_norm);           // ../optim/clip.js, grad already averaged
 *   opt.step(params, grad, learningRate(step, cfg.train)); // ../optim/schedule.js
 *   checkpoint.optimizer = opt.getState();                // copies; opt.setState(s) on resume
 *
 * Update rules (g = gradient, w = weight, lr = learning rate, t = 1-based step count):
 *   sgd       w −= lr·g
 *   momentum  v = β·v + (1−β)·g;            w −= lr·v            (β = train.momentum; the spec's form)
 *   rmsprop   s = ρ·s + (1−ρ)·g²;           w −= lr·g/(√s + eps) (ρ = train.rms_decay)
 *   adam      m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²
 *             w −= lr·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + eps)         (bias corrected)
 * Decoupled weight decay (AdamW style, any optimizer): w −= lr·wd·w, using the weight before the
 * update, only where `decayMask` is 1 (default: everywhere when no mask is given).
 *
 * Each step is ONE pass over the arrays with no allocation: per element the arithmetic is done in
 * float64 (JS numbers) and rounded to float32 when stored, so results are deterministic and equal
 * across runs and machines.
 */
import type { OptimizerName, TrainConfig } from '../config/index.js';
import type { Layout } from '../model/layout.js';
import type { Optimizer, OptimizerState } from './types.js';

export type { Optimizer, OptimizerState } from './types.js';
export { learningRate } from './schedule.js';
export { clipGlobalNorm, globalNorm } from './clip.js';

export interface OptimizerOptions {
  /** 1 where decoupled weight decay applies (see `decayMaskFor`); length `total`. */
  decayMask?: Uint8Array;
}

/** Moment buffers each optimizer keeps (names used in the serialised state). */
const BUFFERS: Record<OptimizerName, readonly string[]> = {
  sgd: [],
  momentum: ['v'],
  rmsprop: ['s'],
  adam: ['m', 'v'],
};

/**
 * Weight-decay mask: 1 for weight matrices and the token embedding, 0 for norm weights and biases
 * (decaying a norm gain toward 0 or a bias has no regularising meaning).
 */
export function decayMaskFor(layout: Layout): Uint8Array {
  const mask = new Uint8Array(layout.total);
  for (const p of layout.params) {
    if (p.kind === 'matrix' || p.kind === 'embedding') mask.fill(1, p.offset, p.offset + p.size);
  }
  return mask;
}

class FlatOptimizer implements Optimizer {
  private t = 0;
  private readonly buf: Record<string, Float32Array> = {};

  constructor(
    readonly name: OptimizerName,
    private readonly train: TrainConfig,
    private readonly total: number,
    private readonly decayMask: Uint8Array | undefined,
  ) {
    if (!Number.isInteger(total) || total < 0) throw new Error(`createOptimizer: bad total ${total}`);
    if (decayMask && decayMask.length !== total) {
      throw new Error(`createOptimizer: decayMask has ${decayMask.length} entries, expected ${total}`);
    }
    for (const b of BUFFERS[name]) this.buf[b] = new Float32Array(total);
  }

  step(w: Float32Array, g: Float32Array, lr: number): void {
    const n = this.total;
    if (w.length !== n || g.length !== n) {
      throw new Error(`optimizer.step: params ${w.length} / grad ${g.length} floats, expected ${n}`);
    }
    this.t++;
    const wd = this.train.weight_decay;
    const mask = this.decayMask;
    const decay = wd > 0 ? lr * wd : 0;
    // Decoupled decay first, from the pre-update weight: w' = w − lr·wd·w − lr·update.
    // Folded into the same loop as the update below (one pass).
    switch (this.name) {
      case 'sgd': {
        for (let i = 0; i < n; i++) {
          const wi = w[i];
          const d = decay !== 0 && (!mask || mask[i] === 1) ? decay * wi : 0;
          w[i] = wi - d - lr * g[i];
        }
        return;
      }
      case 'momentum': {
        const v = this.buf.v, beta = this.train.momentum, c = 1 - beta;
        for (let i = 0; i < n; i++) {
          const vi = beta * v[i] + c * g[i];
          v[i] = vi;
          const wi = w[i];
          const d = decay !== 0 && (!mask || mask[i] === 1) ? decay * wi : 0;
          w[i] = wi - d - lr * vi;
        }
        return;
      }
      case 'rmsprop': {
        const s = this.buf.s, rho = this.train.rms_decay, c = 1 - rho, eps = this.train.eps;
        for (let i = 0; i < n; i++) {
          const gi = g[i];
          const si = rho * s[i] + c * gi * gi;
          s[i] = si;
          const wi = w[i];
          const d = decay !== 0 && (!mask || mask[i] === 1) ? decay * wi : 0;
          w[i] = wi - d - (lr * gi) / (Math.sqrt(si) + eps);
        }
        return;
      }
      case 'adam': {
        const m = this.buf.m, v = this.buf.v;
        const b1 = this.train.beta1, b2 = this.train.beta2, eps = this.train.eps;
        const c1 = 1 - b1, c2 = 1 - b2;
        const bc1 = 1 - Math.pow(b1, this.t), bc2 = 1 - Math.pow(b2, this.t);
        for (let i = 0; i < n; i++) {
          const gi = g[i];
          const mi = b1 * m[i] + c1 * gi;
          const vi = b2 * v[i] + c2 * gi * gi;
          m[i] = mi;
          v[i] = vi;
          const wi = w[i];
          const d = decay !== 0 && (!mask || mask[i] === 1) ? decay * wi : 0;
          w[i] = wi - d - (lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + eps);
        }
        return;
      }
    }
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
    for (const k of BUFFERS[this.name]) {
      const b = state.buffers[k];
      if (!b) throw new Error(`optimizer state for '${this.name}' lacks buffer '${k}'`);
      if (b.length !== this.total) throw new Error(`optimizer state buffer '${k}' has ${b.length} floats, expected ${this.total}`);
    }
    for (const k of BUFFERS[this.name]) this.buf[k].set(state.buffers[k]);
    this.t = state.step;
  }
}

/**
 * The optimizer named by `train.optimizer` over `total` parameters. `train` supplies the
 * hyper-parameters (beta1, beta2, eps, momentum, rms_decay, weight_decay); the learning rate is
 * passed to each `step` (see `learningRate`).
 */
export function createOptimizer(train: TrainConfig, total: number, opts: OptimizerOptions = {}): Optimizer {
  if (!(train.optimizer in BUFFERS)) throw new Error(`unknown optimizer '${String(train.optimizer)}'`);
  return new FlatOptimizer(train.optimizer, train, total, opts.decayMask);
}

/** Names of the moment buffers an optimizer keeps (for checkpoint validation). */
export function optimizerBufferNames(name: OptimizerName): readonly string[] {
  return BUFFERS[name];
}
