/**
 * `vilm export safetensors`: turn a checkpoint into files that load outside vilm
 * (Python/NumPy, PyTorch): DIR/model.safetensors, DIR/config.json, DIR/tokenizer.json.
 *
 *   import { exportSafetensors } from '../export/index.js';
 *   await exportSafetensors(loadCheckpoint(run), outDir);
 *
 * Tensor names are the layout's (Llama convention). Our layout stores matrices [in, out] (so the
 * forward pass is x·W); safetensors gets them in the usual PyTorch nn.Linear order [out, in], i.e.
 * transposed: `layers.{i}.attention.{wq,wk,wv,wo}.weight` [d, d], `feed_forward.w1.weight`
 * [ff, d], `w2.weight` [d, ff], `output.weight` [vocab, d]. The embedding stays [vocab, d];
 * norm weights/biases and linear biases are 1-D and unchanged.
 *
 * Tied embeddings: our layout has no `output.weight` then (the head reuses the embedding). The
 * export still writes `output.weight` [vocab, d] as a copy of `tok_embeddings.weight`, so every
 * loader finds the head under the same name; `config.json` says `tie_embeddings: true`.
 */
import path from 'node:path';
import type { ModelConfig } from '../config/index.js';
import { buildLayout, type Layout } from '../model/layout.js';
import type { Checkpoint } from '../train/checkpoint.js';
import { writeFileAtomic } from '../util/atomic.js';
import { encodeSafetensors, type F32Tensor } from './safetensors.js';

/** Transpose a row-major [rows, cols] matrix into a new [cols, rows] array. */
export function transpose2d(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[base + c];
  }
  return out;
}

/** The exported tensors, in layout order, converted to [out, in] where needed. */
export function exportTensors(layout: Layout, cfg: ModelConfig, weights: Float32Array): F32Tensor[] {
  if (weights.length !== layout.total) throw new Error(`export: weights have ${weights.length} floats, layout needs ${layout.total}`);
  const tensors: F32Tensor[] = [];
  for (const p of layout.params) {
    const view = weights.subarray(p.offset, p.offset + p.size);
    if (p.kind === 'matrix') {
      const [rowsIn, colsOut] = p.shape; // stored [in, out]
      tensors.push({ name: p.name, shape: [colsOut, rowsIn], data: transpose2d(view, rowsIn, colsOut) });
    } else {
      tensors.push({ name: p.name, shape: [...p.shape], data: view.slice() });
    }
  }
  if (cfg.tie_embeddings) {
    const e = layout.embedding;
    tensors.push({ name: 'output.weight', shape: [...e.shape], data: weights.slice(e.offset, e.offset + e.size) });
  }
  return tensors;
}

/** config.json: exactly the model keys of the issue, values from the checkpoint's config. */
export function exportConfigJson(cfg: ModelConfig): Record<string, string | number | boolean> {
  return {
    vocab_size: cfg.vocab_size, d_model: cfg.d_model, n_heads: cfg.n_heads, n_layers: cfg.n_layers,
    ff_dim: cfg.ff_dim, max_len: cfg.max_len, norm: cfg.norm, norm_eps: cfg.norm_eps,
    activation: cfg.activation, rope_theta: cfg.rope_theta, rope_style: cfg.rope_style,
    bias: cfg.bias, tie_embeddings: cfg.tie_embeddings,
  };
}

export interface ExportResult {
  files: string[];
  tensors: number;
  bytes: number;
}

/** Write DIR/model.safetensors, DIR/config.json, DIR/tokenizer.json (each atomically). */
export async function exportSafetensors(ck: Checkpoint, outDir: string): Promise<ExportResult> {
  const cfg = ck.config.model;
  const layout = buildLayout(cfg);
  const tensors = exportTensors(layout, cfg, ck.weights);
  const st = encodeSafetensors(tensors, { format: 'pt', source: 'vilm', step: String(ck.step) });
  const files = [path.join(outDir, 'model.safetensors'), path.join(outDir, 'config.json'), path.join(outDir, 'tokenizer.json')];
  await writeFileAtomic(files[0], st);
  await writeFileAtomic(files[1], JSON.stringify(exportConfigJson(cfg), null, 2) + '\n');
  await writeFileAtomic(files[2], ck.tokenizerJson);
  return { files, tensors: tensors.length, bytes: st.length };
}
