import type { ModelConfig } from '../config/index.js';
import { Rng } from '../util/rng.js';

/**
 * The flat parameter layout. Every parameter of the model lives in ONE Float32Array; this table
 * says where. Workers, the optimizer, checkpoints and the wire all use the same layout, so a
 * gradient or a weight vector is just a Float32Array of `layout.total` floats.
 *
 * Names follow the Llama/safetensors convention used by `vilm export safetensors`, but matrices
 * are stored here as [in, out] so the forward pass is a plain `x · W` (no transposed matmul, which
 * is ~10× slow on the wasm backend). The exporter transposes to [out, in].
 *
 * The token embedding comes first (offset 0) so the embedding block [0, vocab·d) is contiguous and
 * everything after it is the dense rest — the wire sends the embedding gradient as sparse rows and
 * the rest as one slice.
 */
export type ParamKind = 'embedding' | 'matrix' | 'norm' | 'bias';

export interface ParamSpec {
  name: string;
  /** stored shape, [in, out] for matrices, [vocab, d_model] for the embedding */
  shape: number[];
  offset: number;
  size: number;
  kind: ParamKind;
  init: 'normal' | 'normal_residual' | 'ones' | 'zeros';
}

export interface Layout {
  params: ParamSpec[];
  total: number;
  byName: Map<string, ParamSpec>;
  /** `tok_embeddings.weight`, always at offset 0 */
  embedding: ParamSpec;
}

export function buildLayout(cfg: ModelConfig): Layout {
  const params: ParamSpec[] = [];
  let offset = 0;
  const add = (name: string, shape: number[], kind: ParamKind, init: ParamSpec['init']) => {
    const size = shape.reduce((a, b) => a * b, 1);
    params.push({ name, shape, offset, size, kind, init });
    offset += size;
  };
  const d = cfg.d_model, f = cfg.ff_dim, V = cfg.vocab_size;
  const norm = (prefix: string) => {
    add(`${prefix}.weight`, [d], 'norm', 'ones');
    if (cfg.norm === 'layernorm') add(`${prefix}.bias`, [d], 'bias', 'zeros');
  };
  add('tok_embeddings.weight', [V, d], 'embedding', 'normal');
  for (let i = 0; i < cfg.n_layers; i++) {
    const p = `layers.${i}`;
    norm(`${p}.attention_norm`);
    for (const w of ['wq', 'wk', 'wv', 'wo'] as const) {
      add(`${p}.attention.${w}.weight`, [d, d], 'matrix', w === 'wo' ? 'normal_residual' : 'normal');
      if (cfg.bias) add(`${p}.attention.${w}.bias`, [d], 'bias', 'zeros');
    }
    norm(`${p}.ffn_norm`);
    add(`${p}.feed_forward.w1.weight`, [d, f], 'matrix', 'normal');
    if (cfg.bias) add(`${p}.feed_forward.w1.bias`, [f], 'bias', 'zeros');
    add(`${p}.feed_forward.w2.weight`, [f, d], 'matrix', 'normal_residual');
    if (cfg.bias) add(`${p}.feed_forward.w2.bias`, [d], 'bias', 'zeros');
  }
  norm('norm');
  if (!cfg.tie_embeddings) add('output.weight', [d, V], 'matrix', 'normal');
  const byName = new Map(params.map((p) => [p.name, p]));
  return { params, total: offset, byName, embedding: byName.get('tok_embeddings.weight')! };
}

export interface ParamSummary {
  weightMatrices: number;
  other: number;
  total: number;
  breakdown: { name: string; shape: number[]; count: number; kind: ParamKind }[];
}

/** Weight matrices (embedding, projections, FFN, head) vs everything else (norms, biases). */
export function summarize(layout: Layout): ParamSummary {
  let weightMatrices = 0, other = 0;
  for (const p of layout.params) {
    if (p.kind === 'embedding' || p.kind === 'matrix') weightMatrices += p.size; else other += p.size;
  }
  return {
    weightMatrices, other, total: weightMatrices + other,
    breakdown: layout.params.map((p) => ({ name: p.name, shape: p.shape, count: p.size, kind: p.kind })),
  };
}

/**
 * GPT-2 style init: N(0, 0.02) for matrices and the embedding, residual output projections
 * (wo, w2) scaled by 1/sqrt(2·n_layers), norm weights 1, biases 0. Deterministic in `seed`.
 */
export function initParams(layout: Layout, cfg: ModelConfig, seed: number): Float32Array {
  const w = new Float32Array(layout.total);
  const rng = new Rng(seed);
  const std = 0.02;
  const stdResidual = std / Math.sqrt(2 * cfg.n_layers);
  for (const p of layout.params) {
    const view = w.subarray(p.offset, p.offset + p.size);
    switch (p.init) {
      case 'normal': for (let i = 0; i < view.length; i++) view[i] = rng.normal() * std; break;
      case 'normal_residual': for (let i = 0; i < view.length; i++) view[i] = rng.normal() * stdResidual; break;
      case 'ones': view.fill(1); break;
      case 'zeros': break;
    }
  }
  return w;
}
