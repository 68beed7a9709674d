/**
 * The RoPE decoder-only transformer on TensorFlow.js, with an explicit (hand-written) backward pass.
 *
 *   createModel(cfg: ModelConfig): TransformerModel            (TransformerModel implements LanguageModel, ./api.ts)
 *   model.computeGradients(params: Float32Array, batch: TokenBatch): GradResult
 *   model.evaluate(params: Float32Array, batch: TokenBatch): LossResult
 *   model.decoder(params: Float32Array): IncrementalDecoder   (KV cache, for generation)
 *   model.forwardLogits(params, tokens, rows, seqLen): Float32Array   ([rows·seqLen, vocab], for tests/cross-checks)
 *
 * Call `await initBackend()` (src/backend/index.ts) once per thread first. The model owns no weights:
 * every call takes the flat parameter vector laid out by buildLayout(cfg) (./layout.ts).
 *
 * Architecture (nanoGPT-like, pre-norm), per block:
 *   h = norm1(x);  x = x + Attn(h) · Wo;   h = norm2(x);  x = x + act(h · W1) · W2
 * Attn: q = rope(h·Wq), k = rope(h·Wk), v = h·Wv, per head softmax(q·kᵀ/√dk + causal)·v.
 * Then final norm and the head: logits = norm(x) · Wout (Wout = Eᵀ when embeddings are tied).
 * Matrices are stored [in, out], so every forward product is a plain x·W.
 *
 * Why a hand-written backward pass instead of tf.grad: on wasm, autodiff emits transposed matmuls
 * (slow), batched attention matmuls (~1 GFLOP/s), a V-wide one-hot and a gather gradient the
 * backend lacks. Written out, every product is a plain 2-D matmul with an explicit transpose of
 * the small operand, attention runs as per-(row, head) 2-D matmuls (≈5× the batched kernel), and
 * the loss uses the fused softmax-cross-entropy kernel (src/backend/kernels.ts), which also hands
 * back gradᵀ [V, n] so the head's weight gradient is gradᵀ·h (compute-bound) rather than hᵀ·grad
 * (memory-bound in XNNPACK: the [n, V] right operand is re-streamed per 4 output rows).
 * Gradients are checked against finite differences of the float64 reference (./reference.ts).
 *
 * Threads: one model object per thread (piscina workers each call initBackend + createModel);
 * the model holds only the RoPE/mask tables, created on first use and freed by dispose().
 *
 * Loss: SUM over non-pad targets of next-token cross-entropy; inputs are positions 0..L−2 of each
 * row, targets positions 1..L−1; a target id 0 (<pad>) is masked. Large batches are split into
 * passes of ≤ PASS_TOKENS input positions (whole rows); the gradients of the passes are added,
 * so the result is the exact sum over the batch (up to float32 addition order).
 *
 * Deterministic: the wasm backend is single-threaded and every reduction here runs in a fixed
 * order, so the same inputs give bitwise the same outputs (in any thread).
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../config/index.js';
import { softmaxCrossEntropyWithGrad } from '../backend/kernels.js';
import type { IncrementalDecoder, LanguageModel } from './api.js';
import { buildLayout, type Layout } from './layout.js';
import { ReferenceModel } from './reference.js';
import { applyRope, applyRopeTranspose, ropeTensors, type RopeTensors } from './rope.js';
import type { GradResult, LossResult, TokenBatch } from './types.js';

/** Max input positions in one forward/backward pass: bounds the wasm heap (logits are [tokens, vocab]). */
export const PASS_TOKENS = 2048;
/**
 * Rows of the [tokens, vocab] logits computed at once by the training head. Small on purpose: a
 * [128, 10000] block (5 MB) stays in cache, and two replicas computing at once no longer fight over
 * memory bandwidth. Measured (bench-scaling, median of 3): 2 threads vs 1 went 1.35× → 1.55× from
 * 2048 to 128 rows, with single-thread speed unchanged (bench-step 674 → 641 ms); 64 was slower.
 */
export const HEAD_CHUNK = 128;
/** Rows of logits per pass in `forwardLogits` (evaluation output, no gradient). */
export const LOGITS_CHUNK = 2048;

type T2 = tf.Tensor;

/** The weights of one call as tensors; matrices [in, out] plus their transposes [out, in] for backward. */
interface Weights {
  get(name: string): T2;
  getT(name: string): T2;
  vec(name: string): tf.Tensor;
  has(name: string): boolean;
  dispose(): void;
}

/** What the forward pass keeps for the backward pass, per block. */
interface BlockCache {
  x: T2; n1: NormCache; h1: T2;
  /** per-(row,head) slices [T, dk] of rope(q)/√dk and rope(k), v */
  qs: tf.Tensor[]; ks: tf.Tensor[]; vs: tf.Tensor[];
  /** v [N, d] (its per-head transposes are built in the backward pass) */
  v: T2;
  /** attention probabilities [B·H, T, T] */
  att: tf.Tensor;
  o: T2; x2: T2; n2: NormCache; h2: T2; u: T2; a: T2; actAux: T2 | null;
}

interface NormCache { xhat: T2; rstd: T2 }

export class TransformerModel implements LanguageModel {
  readonly layout: Layout;
  private readonly dk: number;
  /** RoPE tables and causal mask for max_len positions, built on first use; calls slice [T, ·] views. */
  private tables: { rope: RopeTensors; mask: T2 } | null = null;

  constructor(readonly config: ModelConfig) {
    this.layout = buildLayout(config);
    this.dk = config.d_model / config.n_heads;
  }

  // ------------------------------------------------------------------------------------------
  // Public API

  computeGradients(params: Float32Array, batch: TokenBatch): GradResult {
    this.checkParams(params);
    const grad = new Float32Array(this.layout.total);
    let lossSum = 0, tokenCount = 0;
    const W = this.upload(params);
    try {
      for (const pass of this.passes(batch)) {
        const r = this.runPass(W, params, pass, true, grad);
        lossSum += r.lossSum; tokenCount += r.tokenCount;
      }
    } finally { W.dispose(); }
    return { lossSum, tokenCount, grad, embedding: this.sparseEmbedding(grad, batch) };
  }

  evaluate(params: Float32Array, batch: TokenBatch): LossResult {
    this.checkParams(params);
    let lossSum = 0, tokenCount = 0;
    const W = this.upload(params);
    try {
      for (const pass of this.passes(batch)) {
        const r = this.runPass(W, params, pass, false, null);
        lossSum += r.lossSum; tokenCount += r.tokenCount;
      }
    } finally { W.dispose(); }
    return { lossSum, tokenCount };
  }

  /**
   * Logits at every position of every row (a full recompute, no cache): [rows·seqLen, vocab].
   * `tokens` is row-major [rows, seqLen]; position t sees tokens 0..t of its row.
   */
  forwardLogits(params: Float32Array, tokens: ArrayLike<number>, rows: number, seqLen: number): Float32Array {
    this.checkParams(params);
    if (tokens.length !== rows * seqLen) throw new Error(`forwardLogits: ${tokens.length} tokens, expected rows·seqLen = ${rows}·${seqLen}`);
    if (seqLen > this.config.max_len) throw new Error(`forwardLogits: seqLen ${seqLen} > max_len ${this.config.max_len}`);
    const ids = Int32Array.from(tokens);
    this.checkIds(ids);
    const V = this.config.vocab_size;
    const out = new Float32Array(rows * seqLen * V);
    const per = Math.max(1, Math.floor(LOGITS_CHUNK / seqLen)); // rows per pass: bounded [tokens, V] logits
    const W = this.upload(params);
    try {
      for (let r0 = 0; r0 < rows; r0 += per) {
        const n = Math.min(per, rows - r0);
        const logits = tf.tidy(() => {
          const { hf } = this.forward(W, params, ids.subarray(r0 * seqLen, (r0 + n) * seqLen), n, seqLen);
          return tf.matMul(hf, W.get('output.weight'));
        });
        out.set(logits.dataSync() as Float32Array, r0 * seqLen * V);
        logits.dispose();
      }
      return out;
    } finally { W.dispose(); }
  }

  /** KV-cached decoder; runs in plain JS (float64) on a copy of the weights — see ./reference.ts. */
  decoder(params: Float32Array): IncrementalDecoder {
    this.checkParams(params);
    return new ReferenceModel(this.config, params).decoder();
  }

  dispose(): void {
    if (this.tables) tf.dispose([this.tables.rope.cos, this.tables.rope.sin, this.tables.rope.perm, this.tables.mask]);
    this.tables = null;
  }

  // ------------------------------------------------------------------------------------------
  // Batching

  private checkParams(params: Float32Array): void {
    if (params.length !== this.layout.total) throw new Error(`model: params has ${params.length} floats, layout needs ${this.layout.total}`);
  }

  private checkIds(ids: Int32Array): void {
    const V = this.config.vocab_size;
    for (let i = 0; i < ids.length; i++) if (ids[i] < 0 || ids[i] >= V) throw new Error(`model: token id ${ids[i]} at ${i} is outside the vocabulary [0, ${V})`);
  }

  /** Split a batch into passes of whole rows, ≤ PASS_TOKENS input positions each. */
  private *passes(batch: TokenBatch): Generator<{ inputs: Int32Array; labels: Int32Array; rows: number; T: number }> {
    const { rows, seqLen, tokens } = batch;
    if (tokens.length !== rows * seqLen) throw new Error(`model: batch has ${tokens.length} tokens, expected rows·seqLen = ${rows}·${seqLen}`);
    const T = seqLen - 1;
    if (T <= 0 || rows === 0) return;
    if (T > this.config.max_len) throw new Error(`model: sequence of ${seqLen} tokens needs ${T} positions > max_len ${this.config.max_len}`);
    const ids = Int32Array.from(tokens);
    this.checkIds(ids);
    const per = Math.max(1, Math.floor(PASS_TOKENS / T));
    for (let r0 = 0; r0 < rows; r0 += per) {
      const n = Math.min(per, rows - r0);
      const inputs = new Int32Array(n * T), labels = new Int32Array(n * T);
      for (let r = 0; r < n; r++) {
        const src = (r0 + r) * seqLen;
        inputs.set(ids.subarray(src, src + T), r * T);
        labels.set(ids.subarray(src + 1, src + seqLen), r * T);
      }
      yield { inputs, labels, rows: n, T };
    }
  }

  /** Embedding gradient as sparse rows: the sorted unique rows that can be non-zero. */
  private sparseEmbedding(grad: Float32Array, batch: TokenBatch): GradResult['embedding'] {
    const d = this.config.d_model, V = this.config.vocab_size;
    let rowIds: Int32Array;
    if (this.config.tie_embeddings) {
      rowIds = new Int32Array(V).map((_, i) => i); // the head touches every row
    } else {
      const seen = new Uint8Array(V);
      const { rows, seqLen, tokens } = batch;
      for (let r = 0; r < rows; r++) for (let t = 0; t < seqLen - 1; t++) seen[tokens[r * seqLen + t]] = 1;
      let n = 0;
      for (let i = 0; i < V; i++) n += seen[i];
      rowIds = new Int32Array(n);
      for (let i = 0, k = 0; i < V; i++) if (seen[i]) rowIds[k++] = i;
    }
    const values = new Float32Array(rowIds.length * d);
    for (let k = 0; k < rowIds.length; k++) values.set(grad.subarray(rowIds[k] * d, rowIds[k] * d + d), k * d);
    return { rows: rowIds, values };
  }

  // ------------------------------------------------------------------------------------------
  // Weights and cached tables

  private upload(params: Float32Array): Weights {
    const L = this.layout, cfg = this.config;
    const mats = new Map<string, T2>(), trans = new Map<string, T2>(), vecs = new Map<string, tf.Tensor>();
    for (const p of L.params) {
      if (p.kind === 'embedding') continue; // the lookup is done in JS (see forward)
      const data = params.subarray(p.offset, p.offset + p.size);
      if (p.kind === 'matrix') {
        const m = tf.tensor2d(data, [p.shape[0], p.shape[1]]);
        mats.set(p.name, m);
        trans.set(p.name, tf.transpose(m));
      } else {
        vecs.set(p.name, tf.tensor1d(data));
      }
    }
    if (cfg.tie_embeddings) {
      // Wout = Eᵀ [d, V]; its transpose is E itself [V, d].
      const E = tf.tensor2d(params.subarray(0, cfg.vocab_size * cfg.d_model), [cfg.vocab_size, cfg.d_model]);
      trans.set('output.weight', E);
      mats.set('output.weight', tf.transpose(E));
    }
    const missing = (n: string): never => { throw new Error(`model: no parameter ${n}`); };
    return {
      get: (n) => mats.get(n) ?? missing(n),
      getT: (n) => trans.get(n) ?? missing(n),
      vec: (n) => vecs.get(n) ?? missing(n),
      has: (n) => mats.has(n) || vecs.has(n),
      dispose: () => { tf.dispose([...mats.values(), ...trans.values(), ...vecs.values()]); },
    };
  }

  private fullTables(): { rope: RopeTensors; mask: T2 } {
    if (!this.tables) {
      const L = this.config.max_len;
      const r = ropeTensors(this.config, L);
      // Additive causal mask: 0 where key ≤ query, −1e9 above the diagonal (exp underflows to exactly 0).
      const a = new Float32Array(L * L);
      for (let i = 0; i < L; i++) for (let j = i + 1; j < L; j++) a[i * L + j] = -1e9;
      this.tables = { rope: { cos: tf.keep(r.cos), sin: tf.keep(r.sin), perm: tf.keep(r.perm) }, mask: tf.keep(tf.tensor2d(a, [L, L])) };
    }
    return this.tables;
  }

  /** RoPE tables for positions 0..T−1 (call inside tidy: the slices are temporaries). */
  private rope(T: number): RopeTensors {
    const { rope } = this.fullTables();
    if (T === this.config.max_len) return rope;
    return { cos: tf.slice(rope.cos, [0, 0], [T, -1]), sin: tf.slice(rope.sin, [0, 0], [T, -1]), perm: rope.perm };
  }

  /** Causal mask [T, T] (call inside tidy). */
  private causalMask(T: number): T2 {
    const { mask } = this.fullTables();
    return T === this.config.max_len ? mask : tf.slice(mask, [0, 0], [T, T]);
  }

  // ------------------------------------------------------------------------------------------
  // Building blocks (all 2-D: N = rows·T positions)

  private normFwd(x: T2, prefix: string, W: Weights): { y: T2; cache: NormCache } {
    const eps = this.config.norm_eps;
    const g = W.vec(`${prefix}.weight`);
    let xhat: T2, rstd: T2;
    if (this.config.norm === 'layernorm') {
      const xc = tf.sub(x, tf.mean(x, 1, true));                       // [N, d]
      rstd = tf.rsqrt(tf.add(tf.mean(tf.square(xc), 1, true), eps));  // [N, 1]
      xhat = tf.mul(xc, rstd);
    } else {
      rstd = tf.rsqrt(tf.add(tf.mean(tf.square(x), 1, true), eps));
      xhat = tf.mul(x, rstd);
    }
    let y: T2 = tf.mul(xhat, g);
    if (this.config.norm === 'layernorm') y = tf.add(y, W.vec(`${prefix}.bias`));
    return { y, cache: { xhat, rstd } };
  }

  /** dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) for layernorm (no mean(dx̂) term for rmsnorm). */
  private normBwd(dy: T2, c: NormCache, prefix: string, W: Weights, grads: Map<string, tf.Tensor>): T2 {
    grads.set(`${prefix}.weight`, tf.sum(tf.mul(dy, c.xhat), 0));
    if (this.config.norm === 'layernorm') grads.set(`${prefix}.bias`, tf.sum(dy, 0));
    const dxhat = tf.mul(dy, W.vec(`${prefix}.weight`));
    let inner = tf.sub(dxhat, tf.mul(c.xhat, tf.mean(tf.mul(dxhat, c.xhat), 1, true)));
    if (this.config.norm === 'layernorm') inner = tf.sub(inner, tf.mean(dxhat, 1, true));
    return tf.mul(inner, c.rstd);
  }

  /** y = x·W (+ b) */
  private linear(x: T2, name: string, W: Weights): T2 {
    const y = tf.matMul(x, W.get(`${name}.weight`));
    return this.config.bias ? tf.add(y, W.vec(`${name}.bias`)) : y;
  }

  /** Backward of y = x·W + b: dW = xᵀ·dy, db = Σ dy, returns dx = dy·Wᵀ. */
  private linearBwd(dy: T2, x: T2, name: string, W: Weights, grads: Map<string, tf.Tensor>): T2 {
    grads.set(`${name}.weight`, tf.matMul(tf.transpose(x), dy));
    if (this.config.bias) grads.set(`${name}.bias`, tf.sum(dy, 0));
    return tf.matMul(dy, W.getT(`${name}.weight`));
  }

  private act(u: T2): { a: T2; aux: T2 | null } {
    switch (this.config.activation) {
      case 'relu': return { a: tf.relu(u), aux: null };
      case 'gelu': return { a: tf.mul(tf.mul(u, 0.5), tf.add(tf.erf(tf.mul(u, Math.SQRT1_2)), 1)), aux: null };
      case 'gelu_tanh': {
        // 0.5·u·(1 + tanh(z)), z = √(2/π)·(u + 0.044715·u³), computed as u·σ(2z) (the same function:
        // 1 + tanh(z) = 2σ(2z)) because wasm's Sigmoid is vectorised and ~14× faster than its Tanh.
        // Keep s = σ(2z) for the backward pass.
        const z2 = tf.mul(tf.add(u, tf.mul(tf.mul(tf.square(u), u), 0.044715)), 2 * Math.sqrt(2 / Math.PI));
        const s = tf.sigmoid(z2);
        return { a: tf.mul(u, s), aux: s };
      }
    }
  }

  private actBwd(da: T2, u: T2, aux: T2 | null): T2 {
    switch (this.config.activation) {
      case 'relu': return tf.mul(da, tf.step(u, 0));
      case 'gelu': {
        // d/du = Φ(u) + u·φ(u)
        const cdf = tf.mul(tf.add(tf.erf(tf.mul(u, Math.SQRT1_2)), 1), 0.5);
        const pdf = tf.mul(tf.exp(tf.mul(tf.square(u), -0.5)), 1 / Math.sqrt(2 * Math.PI));
        return tf.mul(da, tf.add(cdf, tf.mul(u, pdf)));
      }
      case 'gelu_tanh': {
        // d/du = 0.5·(1+t) + 0.5·u·(1−t²)·z'  with t = tanh(z) = 2s − 1, z' = √(2/π)·(1 + 3·0.044715·u²)
        //      = s + 2·u·s·(1−s)·z'
        const s = aux!;
        const dz = tf.mul(tf.add(tf.mul(tf.square(u), 3 * 0.044715), 1), Math.sqrt(2 / Math.PI));
        const d = tf.add(s, tf.mul(tf.mul(tf.mul(u, 2), tf.mul(s, tf.sub(1, s))), dz));
        return tf.mul(da, d);
      }
    }
  }

  /** [N, d] → B·H slices [T, dk] (per row, per head). */
  private toHeads(x: T2, B: number, T: number): tf.Tensor[] {
    const H = this.config.n_heads;
    const t = tf.reshape(tf.transpose(tf.reshape(x, [B, T, H, this.dk]), [0, 2, 1, 3]), [B * H, T, this.dk]);
    return tf.unstack(t) as tf.Tensor[];
  }

  /** [N, d] → B·H slices [dk, T] (transposed per head, for plain matmuls). */
  private toHeadsT(x: T2, B: number, T: number): tf.Tensor[] {
    const H = this.config.n_heads;
    const t = tf.reshape(tf.transpose(tf.reshape(x, [B, T, H, this.dk]), [0, 2, 3, 1]), [B * H, this.dk, T]);
    return tf.unstack(t) as tf.Tensor[];
  }

  /** B·H slices [T, dk] → [N, d]. */
  private fromHeads(slices: tf.Tensor[], B: number, T: number): T2 {
    const H = this.config.n_heads;
    const t = tf.reshape(tf.stack(slices), [B, H, T, this.dk]);
    return tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [B * T, this.config.d_model]);
  }

  /** Per-slice plain 2-D matmuls a[i]·b[i] (≈5× faster than the batched kernel on wasm). */
  private pairMatMul(a: tf.Tensor[], b: tf.Tensor[]): tf.Tensor[] {
    return a.map((ai, i) => tf.matMul(ai, b[i]));
  }

  // ------------------------------------------------------------------------------------------
  // Forward and backward

  /** x0 = E[ids] built in JS from the flat params (no gather kernel, no gradient kernel needed). */
  private embed(params: Float32Array, ids: Int32Array): T2 {
    const d = this.config.d_model;
    const x = new Float32Array(ids.length * d);
    for (let i = 0; i < ids.length; i++) x.set(params.subarray(ids[i] * d, ids[i] * d + d), i * d);
    return tf.tensor2d(x, [ids.length, d]);
  }

  /** Forward through the blocks and the final norm. Returns hf [N, d] and the caches. Call inside tidy. */
  private forward(W: Weights, params: Float32Array, ids: Int32Array, B: number, T: number): { hf: T2; blocks: BlockCache[]; nf: NormCache; rope: RopeTensors } {
    const cfg = this.config, d = cfg.d_model, N = B * T;
    const rope = this.rope(T), mask = this.causalMask(T);
    const scale = 1 / Math.sqrt(this.dk);
    let x = this.embed(params, ids);                                   // [N, d]
    const blocks: BlockCache[] = [];
    for (let l = 0; l < cfg.n_layers; l++) {
      const p = `layers.${l}`;
      const { y: h1, cache: n1 } = this.normFwd(x, `${p}.attention_norm`, W);
      const q = this.linear(h1, `${p}.attention.wq`, W);              // [N, d]
      const k = this.linear(h1, `${p}.attention.wk`, W);
      const v = this.linear(h1, `${p}.attention.wv`, W);
      const qr = tf.reshape(tf.mul(applyRope(tf.reshape(q, [B, T, d]), rope), scale), [N, d]) as T2;
      const kr = tf.reshape(applyRope(tf.reshape(k, [B, T, d]), rope), [N, d]) as T2;
      const qs = this.toHeads(qr, B, T), ks = this.toHeads(kr, B, T), vs = this.toHeads(v, B, T);
      const kTs = this.toHeadsT(kr, B, T);
      const scores = tf.add(tf.stack(this.pairMatMul(qs, kTs)), mask) as tf.Tensor;   // [B·H, T, T]
      const att = tf.softmax(scores);                                     // [B·H, T, T]
      const o = this.fromHeads(this.pairMatMul(tf.unstack(att) as tf.Tensor[], vs), B, T); // [N, d]
      const x2 = tf.add(x, this.linear(o, `${p}.attention.wo`, W));
      const { y: h2, cache: n2 } = this.normFwd(x2, `${p}.ffn_norm`, W);
      const u = this.linear(h2, `${p}.feed_forward.w1`, W);             // [N, F]
      const { a, aux } = this.act(u);
      const x3 = tf.add(x2, this.linear(a, `${p}.feed_forward.w2`, W));  // [N, d]
      blocks.push({ x, n1, h1, qs, ks, vs, v, att, o, x2, n2, h2, u, a, actAux: aux });
      x = x3;
    }
    const { y: hf, cache: nf } = this.normFwd(x, 'norm', W);
    return { hf, blocks, nf, rope };
  }

  /**
   * One pass: forward, loss over the head in chunks, and (if `grad`) the backward pass, with the
   * pass's gradients ADDED into `grad`.
   */
  private runPass(W: Weights, params: Float32Array, pass: { inputs: Int32Array; labels: Int32Array; rows: number; T: number }, withGrad: boolean, grad: Float32Array | null): LossResult {
    const { inputs, labels, rows: B, T } = pass;
    const N = B * T;
    const maskArr = new Float32Array(N);
    let tokenCount = 0;
    for (let i = 0; i < N; i++) if (labels[i] !== 0) { maskArr[i] = 1; tokenCount++; }
    const lossParts: tf.Tensor[] = [];
    const out = tf.tidy((): Record<string, tf.Tensor> => {
      const { hf, blocks, nf, rope } = this.forward(W, params, inputs, B, T);
      // Head + loss in row chunks so at most [HEAD_CHUNK, V] logits are alive.
      const dhfParts: T2[] = [];
      let dWoutT: T2 | null = null;                                    // [V, d] = Σ gᵀ·h
      const Wout = W.get('output.weight');
      for (let r0 = 0; r0 < N; r0 += HEAD_CHUNK) {
        const n = Math.min(HEAD_CHUNK, N - r0);
        const hc = n === N ? hf : tf.slice(hf, [r0, 0], [n, -1]);
        const logits = tf.matMul(hc, Wout);                           // [n, V]
        const { loss, grad: g, gradT: gT } = softmaxCrossEntropyWithGrad(logits as tf.Tensor2D,
          tf.tensor1d(labels.subarray(r0, r0 + n), 'int32'), tf.tensor1d(maskArr.subarray(r0, r0 + n)), withGrad);
        logits.dispose();
        lossParts.push(tf.keep(loss));
        if (withGrad) {
          dhfParts.push(tf.matMul(g, W.getT('output.weight')));       // g·Woutᵀ  [n, d]
          const dWT: T2 = tf.matMul(gT!, hc);                         // gᵀ·h     [V, d]
          gT!.dispose();
          if (dWoutT) { const s: T2 = tf.add(dWoutT, dWT); dWoutT.dispose(); dWT.dispose(); dWoutT = s; } else dWoutT = dWT;
        }
        g.dispose();
      }
      if (!withGrad) return {} as Record<string, tf.Tensor>;
      const grads = new Map<string, tf.Tensor>();
      grads.set('__output_transposed__', dWoutT!);
      let dx = this.normBwd(dhfParts.length === 1 ? dhfParts[0] : tf.concat(dhfParts, 0), nf, 'norm', W, grads);
      const d = this.config.d_model, scale = 1 / Math.sqrt(this.dk);
      for (let l = this.config.n_layers - 1; l >= 0; l--) {
        const p = `layers.${l}`, c = blocks[l];
        // FFN: x3 = x2 + act(h2·W1)·W2
        const da = this.linearBwd(dx, c.a, `${p}.feed_forward.w2`, W, grads);
        const du = this.actBwd(da, c.u, c.actAux);
        const dh2 = this.linearBwd(du, c.h2, `${p}.feed_forward.w1`, W, grads);
        const dx2 = tf.add(dx, this.normBwd(dh2, c.n2, `${p}.ffn_norm`, W, grads));
        // Attention: x2 = x + o·Wo
        const dO = this.toHeads(this.linearBwd(dx2, c.o, `${p}.attention.wo`, W, grads), B, T); // slices [T, dk]
        const dA = tf.stack(this.pairMatMul(dO, this.toHeadsT(c.v, B, T))) as tf.Tensor;            // dO·vᵀ  [B·H, T, T]
        const dV = this.pairMatMul(tf.unstack(tf.transpose(c.att, [0, 2, 1])) as tf.Tensor[], dO); // attᵀ·dO [T, dk]
        // softmax backward: dS = att ⊙ (dA − Σ_j dA⊙att)
        const dS = tf.mul(c.att, tf.sub(dA, tf.sum(tf.mul(dA, c.att), 2, true))) as tf.Tensor;
        const dQ = this.pairMatMul(tf.unstack(dS) as tf.Tensor[], c.ks);                           // dS·k    [T, dk]
        const dK = this.pairMatMul(tf.unstack(tf.transpose(dS, [0, 2, 1])) as tf.Tensor[], c.qs);  // dSᵀ·q   [T, dk]
        // q, k are rope(·) (q also scaled by 1/√dk): undo through ropeᵀ
        const dq = tf.reshape(applyRopeTranspose(tf.reshape(tf.mul(this.fromHeads(dQ, B, T), scale), [B, T, d]), rope), [N, d]) as T2;
        const dk = tf.reshape(applyRopeTranspose(tf.reshape(this.fromHeads(dK, B, T), [B, T, d]), rope), [N, d]) as T2;
        const dv = this.fromHeads(dV, B, T);
        const dh1 = tf.addN([
          this.linearBwd(dq, c.h1, `${p}.attention.wq`, W, grads),
          this.linearBwd(dk, c.h1, `${p}.attention.wk`, W, grads),
          this.linearBwd(dv, c.h1, `${p}.attention.wv`, W, grads),
        ]);
        dx = tf.add(dx2, this.normBwd(dh1, c.n1, `${p}.attention_norm`, W, grads));
      }
      grads.set('__embedding_input__', dx);                            // dL/dx0 [N, d]
      // a plain object: tidy keeps the tensors it finds in arrays/objects, not in Maps
      return Object.fromEntries(grads) as Record<string, tf.Tensor>;
    });
    // Read results outside tidy (tidy walks returned values; big reads inside it throw).
    let lossSum = 0;
    for (const t of lossParts) {
      const v = t.dataSync();
      for (let i = 0; i < v.length; i++) lossSum += v[i];
      t.dispose();
    }
    if (grad) {
      for (const [name, t] of Object.entries(out)) {
        const v = t.dataSync() as Float32Array;
        t.dispose();
        if (name === '__embedding_input__') {
          // scatter-add the input-embedding gradient rows: dE[id] += dx0[i]
          const d = this.config.d_model;
          for (let i = 0; i < inputs.length; i++) {
            const dst = inputs[i] * d, src = i * d;
            for (let j = 0; j < d; j++) grad[dst + j] += v[src + j];
          }
        } else if (name === '__output_transposed__') {
          const d = this.config.d_model, V = this.config.vocab_size;
          if (this.config.tie_embeddings) {
            // Wout = Eᵀ, so dE += dWoutᵀ, which is exactly v [V, d]
            for (let i = 0; i < V * d; i++) grad[i] += v[i];
          } else {
            // output.weight is stored [d, V]: dWout[j, r] += v[r, j]
            const off = this.layout.byName.get('output.weight')!.offset;
            for (let r = 0; r < V; r++) for (let j = 0; j < d; j++) grad[off + j * V + r] += v[r * d + j];
          }
        } else {
          const spec = this.layout.byName.get(name)!;
          const dst = grad.subarray(spec.offset, spec.offset + spec.size);
          for (let i = 0; i < dst.length; i++) dst[i] += v[i];
        }
      }
    }
    return { lossSum, tokenCount };
  }
}

/** Create the model for a config (see the file comment; call initBackend() first). */
export function createModel(cfg: ModelConfig): TransformerModel {
  return new TransformerModel(cfg);
}
