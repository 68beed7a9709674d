/**
 * A tiny deterministic pure-JS language model over the real flat layout, used as a test double for
 * the distribution machinery (reduction, scheduling, protocol) where the real RoPE decoder would be
 * slow. It is a "bigram" model: h = E[x] ⊙ g (g = `norm.weight`), logits = h · W (W = the output
 * head [d, V], or Eᵀ when tied), summed cross-entropy over non-pad targets. Its gradients are exact
 * for that function; every other parameter gets a zero gradient. Not used in production paths.
 */
import type { ModelConfig } from '../../src/config/index.ts';
import { buildLayout, type Layout } from '../../src/model/layout.ts';
import type { IncrementalDecoder, LanguageModel } from '../../src/model/api.ts';
import type { GradResult, LossResult, TokenBatch } from '../../src/model/types.ts';

export function createToyModel(config: ModelConfig): LanguageModel {
  const layout: Layout = buildLayout(config);
  const V = config.vocab_size, d = config.d_model;
  const g = layout.byName.get('norm.weight')!;
  const head = layout.byName.get('output.weight');

  function headAt(w: Float32Array, c: number, v: number): number {
    return head ? w[head.offset + c * V + v] : w[v * d + c];
  }

  /** loss and (optionally) gradient, accumulated in float64 per position then stored as float32 */
  function run(w: Float32Array, b: TokenBatch, grad: Float32Array | null): LossResult {
    const h = new Float64Array(d);
    const logits = new Float64Array(V);
    let lossSum = 0, tokenCount = 0;
    for (let r = 0; r < b.rows; r++) {
      for (let t = 0; t + 1 < b.seqLen; t++) {
        const x = b.tokens[r * b.seqLen + t], y = b.tokens[r * b.seqLen + t + 1];
        if (y === 0) continue;
        for (let c = 0; c < d; c++) h[c] = w[x * d + c] * w[g.offset + c];
        let max = -Infinity;
        for (let v = 0; v < V; v++) {
          let s = 0;
          for (let c = 0; c < d; c++) s += h[c] * headAt(w, c, v);
          logits[v] = s;
          if (s > max) max = s;
        }
        let z = 0;
        for (let v = 0; v < V; v++) { logits[v] = Math.exp(logits[v] - max); z += logits[v]; }
        lossSum += Math.log(z) - Math.log(logits[y]);
        tokenCount++;
        if (!grad) continue;
        // dL/dlogit_v = p_v − [v = y]
        for (let v = 0; v < V; v++) {
          const dl = logits[v] / z - (v === y ? 1 : 0);
          for (let c = 0; c < d; c++) {
            const dh = dl * headAt(w, c, v);
            // d/dE[x,c] and d/dg[c] through h = E[x] ⊙ g
            grad[x * d + c] += dh * w[g.offset + c];
            grad[g.offset + c] += dh * w[x * d + c];
            if (head) grad[head.offset + c * V + v] += dl * h[c];
            else grad[v * d + c] += dl * h[c];
          }
        }
      }
    }
    return { lossSum, tokenCount };
  }

  return {
    config,
    layout,
    computeGradients(params: Float32Array, batch: TokenBatch): GradResult {
      const grad = new Float32Array(layout.total);
      const { lossSum, tokenCount } = run(params, batch, grad);
      // sparse rows: the input ids (and every row when tied, since the head touches all)
      const seen = new Uint8Array(V);
      if (!head) seen.fill(1);
      for (let r = 0; r < batch.rows; r++) {
        for (let t = 0; t + 1 < batch.seqLen; t++) if (batch.tokens[r * batch.seqLen + t + 1] !== 0) seen[batch.tokens[r * batch.seqLen + t]] = 1;
      }
      const ids: number[] = [];
      for (let v = 0; v < V; v++) if (seen[v]) ids.push(v);
      const rows = Int32Array.from(ids);
      const values = new Float32Array(rows.length * d);
      for (let i = 0; i < rows.length; i++) values.set(grad.subarray(rows[i] * d, rows[i] * d + d), i * d);
      return { lossSum, tokenCount, grad, embedding: { rows, values } };
    },
    evaluate(params: Float32Array, batch: TokenBatch): LossResult {
      return run(params, batch, null);
    },
    decoder(): IncrementalDecoder {
      throw new Error('toy model: no decoder');
    },
    dispose(): void { /* nothing held */ },
  };
}
