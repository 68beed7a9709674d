/**
 * A plain-JS, float64 implementation of the same decoder, one token at a time with a KV cache.
 *
 *   new ReferenceModel(cfg: ModelConfig, params: Float32Array | Float64Array)
 *   .decoder(): IncrementalDecoder        — generation (what `model.decoder()` returns)
 *   .sequenceLogits(tokens): Float64Array[] — logits at every position of one sequence
 *   .loss(batch): LossResult               — summed next-token CE (pad targets masked), in float64
 *
 * Why a second implementation: generation feeds one token at a time, where tfjs kernel-launch
 * overhead dominates and plain JS is faster; and a float64 reference, written independently of the
 * tfjs code, is what the tests use for finite-difference gradient checks and to cross-check the
 * tfjs forward pass.
 */
import type { ModelConfig } from '../config/index.js';
import type { IncrementalDecoder } from './api.js';
import { buildLayout, type Layout } from './layout.js';
import { ropePair } from './rope.js';
import type { LossResult, TokenBatch } from './types.js';

type Vec = Float64Array;

export class ReferenceModel {
  readonly layout: Layout;
  /** the parameters as float64 (a copy) */
  readonly w: Float64Array;
  /** per head-dimension j in [0, dk): pair mate, frequency ω, sign of the sin term */
  private readonly pairs: { mate: number; omega: number; sign: number }[];

  constructor(readonly cfg: ModelConfig, params: Float32Array | Float64Array) {
    this.layout = buildLayout(cfg);
    if (params.length !== this.layout.total) throw new Error(`reference: params has ${params.length} floats, layout needs ${this.layout.total}`);
    this.w = Float64Array.from(params);
    const dk = cfg.d_model / cfg.n_heads;
    this.pairs = [];
    for (let j = 0; j < dk; j++) {
      const { mate, freq, first } = ropePair(j, dk, cfg.rope_style);
      this.pairs.push({ mate, omega: Math.pow(cfg.rope_theta, (-2 * freq) / dk), sign: first ? -1 : 1 });
    }
  }

  private p(name: string): Vec {
    const s = this.layout.byName.get(name);
    if (!s) throw new Error(`reference: no parameter ${name}`);
    return this.w.subarray(s.offset, s.offset + s.size);
  }

  /** y = x·W (+b), W stored [in, out] row-major. */
  linear(x: Vec, name: string, nOut: number): Vec {
    const W = this.p(`${name}.weight`), nIn = x.length;
    const y = new Float64Array(nOut);
    for (let i = 0; i < nIn; i++) {
      const xi = x[i], row = i * nOut;
      for (let o = 0; o < nOut; o++) y[o] += xi * W[row + o];
    }
    if (this.cfg.bias && this.layout.byName.has(`${name}.bias`)) {
      const b = this.p(`${name}.bias`);
      for (let o = 0; o < nOut; o++) y[o] += b[o];
    }
    return y;
  }

  norm(x: Vec, prefix: string): Vec {
    const d = x.length, g = this.p(`${prefix}.weight`), y = new Float64Array(d);
    let mean = 0;
    if (this.cfg.norm === 'layernorm') { for (let i = 0; i < d; i++) mean += x[i]; mean /= d; }
    let ms = 0;
    for (let i = 0; i < d; i++) ms += (x[i] - mean) ** 2;
    const rstd = 1 / Math.sqrt(ms / d + this.cfg.norm_eps);
    for (let i = 0; i < d; i++) y[i] = (x[i] - mean) * rstd * g[i];
    if (this.cfg.norm === 'layernorm') { const b = this.p(`${prefix}.bias`); for (let i = 0; i < d; i++) y[i] += b[i]; }
    return y;
  }

  act(u: number): number {
    switch (this.cfg.activation) {
      case 'relu': return u > 0 ? u : 0;
      case 'gelu': return 0.5 * u * (1 + erf(u / Math.SQRT2));
      case 'gelu_tanh': return 0.5 * u * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (u + 0.044715 * u * u * u)));
    }
  }

  /** RoPE at position `pos` on a [d] vector (all heads). */
  rope(x: Vec, pos: number): Vec {
    const d = x.length, dk = d / this.cfg.n_heads, y = new Float64Array(d);
    for (let h = 0; h < d; h += dk) {
      for (let j = 0; j < dk; j++) {
        const { mate, omega, sign } = this.pairs[j];
        y[h + j] = x[h + j] * Math.cos(pos * omega) + sign * x[h + mate] * Math.sin(pos * omega);
      }
    }
    return y;
  }

  decoder(): ReferenceDecoder {
    return new ReferenceDecoder(this);
  }

  /** Logits [V] at every position of one sequence (a fresh decoder fed every token). */
  sequenceLogits(tokens: ArrayLike<number>): Float64Array[] {
    const dec = this.decoder();
    const out: Float64Array[] = [];
    for (let i = 0; i < tokens.length; i++) out.push(dec.step64(tokens[i]));
    return out;
  }

  /** Summed next-token cross-entropy over a batch, pad targets (id 0) masked; float64. */
  loss(batch: TokenBatch): LossResult {
    let lossSum = 0, tokenCount = 0;
    for (let r = 0; r < batch.rows; r++) {
      const row = batch.tokens.subarray(r * batch.seqLen, (r + 1) * batch.seqLen);
      const logits = this.sequenceLogits(row.subarray(0, batch.seqLen - 1));
      for (let t = 0; t + 1 < batch.seqLen; t++) {
        const target = row[t + 1];
        if (target === 0) continue;
        const z = logits[t];
        let m = -Infinity;
        for (let i = 0; i < z.length; i++) m = Math.max(m, z[i]);
        let s = 0;
        for (let i = 0; i < z.length; i++) s += Math.exp(z[i] - m);
        lossSum += m + Math.log(s) - z[target];
        tokenCount++;
      }
    }
    return { lossSum, tokenCount };
  }
}

export class ReferenceDecoder implements IncrementalDecoder {
  private pos = 0;
  /** per layer: cached rope(k) and v, one [d] vector per position */
  private readonly kCache: Vec[][];
  private readonly vCache: Vec[][];

  constructor(private readonly m: ReferenceModel) {
    this.kCache = Array.from({ length: m.cfg.n_layers }, () => []);
    this.vCache = Array.from({ length: m.cfg.n_layers }, () => []);
  }

  get position(): number { return this.pos; }

  step(token: number): Float32Array {
    return Float32Array.from(this.step64(token));
  }

  /** Feed `token` at the next position; logits [V] for the token after it, in float64. */
  step64(token: number): Float64Array {
    const m = this.m, cfg = m.cfg, d = cfg.d_model, H = cfg.n_heads, dk = d / H, V = cfg.vocab_size;
    if (!Number.isInteger(token) || token < 0 || token >= V) throw new Error(`decoder: token ${token} outside the vocabulary [0, ${V})`);
    if (this.pos >= cfg.max_len) throw new Error(`decoder: position ${this.pos} reaches max_len ${cfg.max_len}`);
    const E = m.layout.embedding;
    const wAll = m.w;
    const x: Vec = Float64Array.from(wAll.subarray(E.offset + token * d, E.offset + token * d + d));
    const scale = 1 / Math.sqrt(dk);
    for (let l = 0; l < cfg.n_layers; l++) {
      const p = `layers.${l}`;
      const h1 = m.norm(x, `${p}.attention_norm`);
      const q = m.rope(m.linear(h1, `${p}.attention.wq`, d), this.pos);
      this.kCache[l].push(m.rope(m.linear(h1, `${p}.attention.wk`, d), this.pos));
      this.vCache[l].push(m.linear(h1, `${p}.attention.wv`, d));
      const keys = this.kCache[l], vals = this.vCache[l], n = keys.length;
      const o = new Float64Array(d), s = new Float64Array(n);
      for (let h = 0; h < d; h += dk) {
        let mx = -Infinity;
        for (let t = 0; t < n; t++) {
          let dot = 0;
          for (let j = 0; j < dk; j++) dot += q[h + j] * keys[t][h + j];
          s[t] = dot * scale;
          mx = Math.max(mx, s[t]);
        }
        let z = 0;
        for (let t = 0; t < n; t++) { s[t] = Math.exp(s[t] - mx); z += s[t]; }
        for (let t = 0; t < n; t++) for (let j = 0; j < dk; j++) o[h + j] += (s[t] / z) * vals[t][h + j];
      }
      const a = m.linear(o, `${p}.attention.wo`, d);
      for (let i = 0; i < d; i++) x[i] += a[i];
      const h2 = m.norm(x, `${p}.ffn_norm`);
      const u = m.linear(h2, `${p}.feed_forward.w1`, cfg.ff_dim);
      for (let i = 0; i < u.length; i++) u[i] = m.act(u[i]);
      const f = m.linear(u, `${p}.feed_forward.w2`, d);
      for (let i = 0; i < d; i++) x[i] += f[i];
    }
    const hf = m.norm(x, 'norm');
    this.pos++;
    if (!cfg.tie_embeddings) return m.linear(hf, 'output', V);
    // tied head: logits[v] = Σ_j hf[j]·E[v, j]
    const logits = new Float64Array(V);
    for (let v = 0; v < V; v++) {
      let s = 0;
      const row = E.offset + v * d;
      for (let j = 0; j < d; j++) s += hf[j] * wAll[row + j];
      logits[v] = s;
    }
    return logits;
  }

  dispose(): void {
    for (const c of this.kCache) c.length = 0;
    for (const c of this.vCache) c.length = 0;
  }
}

/**
 * erf(x) to ~1e-15 (float64): Maclaurin series for |x| < 3, continued fraction beyond. Math has no
 * erf and the reference must not depend on tfjs.
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  let r: number;
  if (ax < 3) {
    // erf(x) = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1))
    let term = ax, sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= -ax * ax / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // erfc(x) = exp(−x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + 2/(x + ...)))))
    let f = ax;
    for (let k = 60; k >= 1; k--) f = ax + (k / 2) / f;
    r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  }
  return x < 0 ? -r : r;
}
