/**
 * The RoPE decoder-only transformer on TensorFlow.js, with an explicit (hand-written) backward pass.
 *
 *   createModel(cfg: ModelConfig): TransformerModel            (TransformerModel implements LanguageModel, ./api.ts)
 *   model.computeGradients(params: Float32Array, batch: TokenBatch): GradResult
 *   model.computeGradientsEach(params, batches: TokenBatch[]): GradResult[]   (each its own bytes; passes shared)
 *   model.evaluate(params: Float32Array, batch: TokenBatch): LossResult
 *   model.decoder(params: Float32Array): IncrementalDecoder   (KV cache, for generation)
 *   model.forwardLogits(params, tokens, rows, seqLen): Float32Array   ([rows·seqLen, vocab], for tests/cross-checks)
 *
 * Call `await initBackend()` (src/backend/index.ts) once per thread first. The model owns no weights:
 * every call takes the flat parameter vector laid out by buildLayout(cfg) (./layout.ts).
 *
 * Architecture (nanoGPT-like, pre-norm), one component per file, each with its forward and backward
 * side by side:
 *   x = embedding(ids)                                   ./embedding.ts  (lookup; scatter-add backward)
 *   per block:  x = x + attn(ln_1(x))                    ./block.ts, ./attention.ts (+ ./rope.ts), ./norm.ts
 *               x = x + mlp(ln_2(x))                     ./feed-forward.ts (activation), ./linear.ts
 *   logits = norm(x) · Wout, loss = Σ cross-entropy      ./head.ts  (Wout = Eᵀ when embeddings are tied)
 * Attn: q = rope(h·Wq), k = rope(h·Wk), v = h·Wv, per head softmax(q·kᵀ/√dk + causal)·v, then ·Wo.
 * Matrices are stored [in, out], so every forward product is a plain x·W (./weights.ts uploads them).
 *
 * Why a hand-written backward pass instead of tf.grad: on wasm, autodiff emits transposed matmuls
 * (slow), batched attention matmuls (~1 GFLOP/s), a V-wide one-hot and a gather gradient the
 * backend lacks. Written out, every product is a plain 2-D matmul with an explicit transpose of
 * the small operand, attention runs as per-(row, head) 2-D matmuls (≈5× the batched kernel), and
 * the loss uses the fused softmax-cross-entropy kernel (src/backend/kernels.ts); the head's weight
 * gradient is gradᵀ·h (compute-bound) rather than hᵀ·grad (memory-bound in XNNPACK: the [n, V]
 * right operand is re-streamed per 4 output rows), see ./head.ts.
 * Gradients are checked against finite differences of the float64 reference (./reference.ts).
 *
 * Threads: one model object per thread (piscina workers each call initBackend + createModel);
 * the model holds only the RoPE/mask tables, created on first use, and its last call's uploaded
 * weights, reused while the parameters hold the same bits (./weights.ts WeightCache); dispose()
 * frees both.
 *
 * Loss: SUM over non-pad targets of next-token cross-entropy; inputs are positions 0..L−2 of each
 * row, targets positions 1..L−1; a target id 0 (<pad>) is masked. Large batches are split into
 * passes of ≤ PASS_TOKENS input positions (whole rows); the gradients of the passes are added,
 * so the result is the exact sum over the batch (up to float32 addition order).
 *
 * Deterministic: the wasm backend is single-threaded and every reduction here runs in a fixed
 * order, so the same inputs give bitwise the same outputs (in any thread).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../config/index.js';
import type { IncrementalDecoder, LanguageModel } from './api.js';
import { readFloats } from '../backend/kernels.js';
import { AttentionTables } from './attention.js';
import { blockBackward, blockForward, type BlockCache } from './block.js';
import { EMBED_GRAD, embeddingBackward, embeddingForward, sparseEmbeddingRows } from './embedding.js';
import { headGrads, headLogits, headLoss } from './head.js';
import { buildLayout, type Layout } from './layout.js';
import { normBackward, normForward, type NormCache } from './norm.js';
import { ReferenceModel } from './reference.js';
import type { GradResult, LossResult, TokenBatch } from './types.js';
import { setGrad, WeightCache, type Pass, type Segment, type T2, type Weights } from './weights.js';

export { HEAD_CHUNK } from './head.js';

/** Max input positions in one forward/backward pass: bounds the wasm heap (logits are [tokens, vocab]). */
export const PASS_TOKENS = 2048;
/** Rows of logits per pass in `forwardLogits` (evaluation output, no gradient). */
export const LOGITS_CHUNK = 2048;

/** One pass of a batch: whole rows, inputs/labels [rows·T]. */
interface PassBatch { inputs: Int32Array; labels: Int32Array; rows: number; T: number }

export class TransformerModel implements LanguageModel {
  readonly layout: Layout;
  /** RoPE tables and causal mask for max_len positions, built on first use; calls slice [T, ·] views. */
  private readonly tables: AttentionTables;
  /** the last call's uploaded weights, reused by the next call with the same parameter bits */
  private readonly weights: WeightCache;

  constructor(readonly config: ModelConfig) {
    this.layout = buildLayout(config);
    this.tables = new AttentionTables(config);
    this.weights = new WeightCache(this.layout, config);
  }

  // ------------------------------------------------------------------------------------------
  // Public API

  computeGradients(params: Float32Array, batch: TokenBatch): GradResult {
    return this.computeGradientsEach(params, [batch])[0];
  }

  /**
   * See LanguageModel.computeGradientsEach. Each batch is cut into its passes exactly as
   * computeGradients cuts it, and runs of consecutive passes with the same length are computed
   * together, as segments of one pass of ≤ PASS_TOKENS positions (bigger matmuls, one upload of the
   * weights): each segment gets its own parameter gradients, added into its batch's in order.
   */
  computeGradientsEach(params: Float32Array, batches: readonly TokenBatch[], into?: readonly Float32Array[]): GradResult[] {
    this.checkParams(params);
    if (into && into.length < batches.length) throw new Error(`computeGradientsEach: ${into.length} buffers for ${batches.length} batches`);
    const grads = batches.map((_, i) => {
      if (!into) return new Float32Array(this.layout.total);
      if (into[i].length !== this.layout.total) throw new Error(`computeGradientsEach: buffer ${i} has ${into[i].length} floats, layout needs ${this.layout.total}`);
      return into[i].fill(0);
    });
    const sums = batches.map(() => ({ lossSum: 0, tokenCount: 0 }));
    const W = this.weights.get(params);
    const parts = batches.flatMap((b, i) => [...this.passes(b)].map((pass) => ({ pass, i })));
    for (const group of packPasses(parts)) {
      const rs = this.runPass(W, params, group.map((g) => g.pass), group.map((g) => grads[g.i]));
      group.forEach((g, k) => { sums[g.i].lossSum += rs[k].lossSum; sums[g.i].tokenCount += rs[k].tokenCount; });
    }
    return batches.map((b, i) => ({ ...sums[i], grad: grads[i], embedding: sparseEmbeddingRows(this.config, grads[i], b) }));
  }

  evaluate(params: Float32Array, batch: TokenBatch): LossResult {
    this.checkParams(params);
    let lossSum = 0, tokenCount = 0;
    const W = this.weights.get(params);
    for (const pass of this.passes(batch)) {
      const [r] = this.runPass(W, params, [pass], null);
      lossSum += r.lossSum; tokenCount += r.tokenCount;
    }
    return { lossSum, tokenCount };
  }

  /**
   * See LanguageModel.evaluateEach: the weights are uploaded once for all the sequences, and
   * sequences of one length share passes of ≤ PASS_TOKENS positions, each a segment with its own
   * loss (the same numbers as alone).
   */
  evaluateEach(params: Float32Array, sequences: readonly Uint16Array[]): { nats: Float64Array; tokens: Float64Array } {
    this.checkParams(params);
    const nats = new Float64Array(sequences.length), tokens = new Float64Array(sequences.length);
    const W = this.weights.get(params);
    const parts = sequences.flatMap((seq, i) => [...this.passes({ tokens: seq, rows: 1, seqLen: seq.length })].map((pass) => ({ pass, i })));
    parts.sort((a, b) => a.pass.T - b.pass.T); // stable: one length's sequences stay in order
    for (const group of packPasses(parts)) {
      const rs = this.runPass(W, params, group.map((g) => g.pass), null);
      group.forEach((g, k) => { nats[g.i] += rs[k].lossSum; tokens[g.i] += rs[k].tokenCount; });
    }
    return { nats, tokens };
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
    const W = this.weights.get(params);
    for (let r0 = 0; r0 < rows; r0 += per) {
      const n = Math.min(per, rows - r0);
      const logits = tf.tidy(() => {
        const P = this.pass(W, n, seqLen, [{ start: 0, size: n * seqLen }]);
        const { hf } = this.forward(P, params, ids.subarray(r0 * seqLen, (r0 + n) * seqLen));
        return headLogits(P, hf);                                   // [n·seqLen, V]
      });
      out.set(logits.dataSync() as Float32Array, r0 * seqLen * V);
      logits.dispose();
    }
    return out;
  }

  /** KV-cached decoder; runs in plain JS (float64) on a copy of the weights — see ./reference.ts. */
  decoder(params: Float32Array): IncrementalDecoder {
    this.checkParams(params);
    return new ReferenceModel(this.config, params).decoder();
  }

  dispose(): void {
    this.tables.dispose();
    this.weights.dispose();
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
  private *passes(batch: TokenBatch): Generator<PassBatch> {
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

  // ------------------------------------------------------------------------------------------
  // Forward and backward

  /** The context of one pass over B rows of T positions (call inside tidy: the table slices are temporaries). */
  private pass(W: Weights, B: number, T: number, segments: readonly Segment[]): Pass {
    return { cfg: this.config, W, B, T, rope: this.tables.rope(T), mask: this.tables.causalMask(T), segments, grads: new Map() };
  }

  /** Embedding, the blocks and the final norm: ids [N] → hf [N, d], with the caches. Call inside tidy. */
  private forward(P: Pass, params: Float32Array, ids: Int32Array): { hf: T2; blocks: BlockCache[]; nf: NormCache } {
    let x = embeddingForward(this.config, params, ids);               // [N, d]
    const blocks: BlockCache[] = [];
    for (let l = 0; l < this.config.n_layers; l++) {
      const b = blockForward(P, x, l);                                 // [N, d]
      blocks.push(b.cache);
      x = b.y;
    }
    const { y: hf, cache: nf } = normForward(P, x, 'norm');           // [N, d]
    return { hf, blocks, nf };
  }

  /**
   * One pass over the rows of `segs` (same T), each a segment: forward, loss over the head in
   * chunks, and (with `grads`, one flat gradient per segment) the backward pass, with each
   * segment's gradients ADDED into its own flat gradient. Returns each segment's loss.
   */
  private runPass(W: Weights, params: Float32Array, segs: readonly PassBatch[], grads: readonly Float32Array[] | null): LossResult[] {
    const T = segs[0].T, B = segs.reduce((a, g) => a + g.rows, 0), N = B * T;
    const inputs = segs.length === 1 ? segs[0].inputs : concatInt32(segs.map((g) => g.inputs));
    const labels = segs.length === 1 ? segs[0].labels : concatInt32(segs.map((g) => g.labels));
    const segments: Segment[] = [];
    for (let start = 0, k = 0; k < segs.length; start += segs[k].rows * T, k++) segments.push({ start, size: segs[k].rows * T });
    const maskArr = new Float32Array(N);
    for (let i = 0; i < N; i++) if (labels[i] !== 0) maskArr[i] = 1;
    let lossParts: tf.Tensor[][] = [];
    const out = tf.tidy((): Record<string, tf.Tensor[]> => {
      const P = this.pass(W, B, T, segments);
      const { hf, blocks, nf } = this.forward(P, params, inputs);
      const head = headLoss(P, hf, labels, maskArr, grads !== null);
      lossParts = head.losses;
      if (!grads) return {};
      // Backward, in reverse: head, final norm, blocks from last to first, embedding.
      // The order of P.grads is the order of the write-back below.
      P.grads.set(...headGrads(this.config, head.dWoutT));             // dWout [d, V] (tied: dE [V, d]) per segment
      let dx = normBackward(P, head.dhf!, nf, 'norm');                  // [N, d]
      for (let l = this.config.n_layers - 1; l >= 0; l--) dx = blockBackward(P, dx, blocks[l], l);
      setGrad(P, EMBED_GRAD, (cut) => cut(dx));                        // dL/dx0 [N, d], cut per segment
      // a plain object: tidy keeps the tensors it finds in arrays/objects, not in Maps
      return Object.fromEntries(P.grads);
    });
    // Read results outside tidy (tidy walks returned values; big reads inside it throw).
    const results = segments.map((seg, k): LossResult => {
      let lossSum = 0, tokenCount = 0;
      for (const t of lossParts[k]) {
        const v = t.dataSync();
        for (let i = 0; i < v.length; i++) lossSum += v[i];
        t.dispose();
      }
      for (let i = seg.start; i < seg.start + seg.size; i++) tokenCount += maskArr[i];
      return { lossSum, tokenCount };
    });
    if (grads) {
      segments.forEach((seg, k) => {
        const grad = grads[k];
        for (const [name, ts] of Object.entries(out)) {
          const v = readFloats(ts[k]);                                   // no copy on wasm: used at once
          if (name === EMBED_GRAD) embeddingBackward(this.config, v, inputs.subarray(seg.start, seg.start + seg.size), grad);
          else addInto(grad, this.layout.byName.get(name)!.offset, v);
          ts[k].dispose();
        }
      });
    }
    return results;
  }
}

/** Runs of consecutive passes with the same T, each run ≤ PASS_TOKENS positions (a pass alone may be that big). */
function packPasses<P extends { pass: PassBatch }>(parts: readonly P[]): P[][] {
  const groups: P[][] = [];
  let cur: P[] = [], size = 0;
  for (const p of parts) {
    const n = p.pass.rows * p.pass.T;
    if (cur.length > 0 && (p.pass.T !== cur[0].pass.T || size + n > PASS_TOKENS)) { groups.push(cur); cur = []; size = 0; }
    cur.push(p); size += n;
  }
  if (cur.length > 0) groups.push(cur);
  return groups;
}

/** dst[offset + i] += v[i]: its own small function, so V8 optimises the loop for these two array types. */
function addInto(dst: Float32Array, offset: number, v: Float32Array): void {
  for (let i = 0; i < v.length; i++) dst[offset + i] += v[i];
}

function concatInt32(parts: readonly Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** Create the model for a config (see the file comment; call initBackend() first). */
export function createModel(cfg: ModelConfig): TransformerModel {
  return new TransformerModel(cfg);
}
