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
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { validateConfig, type ModelConfig } from '../config/index.js';
import { buildLayout, type Layout } from '../model/layout.js';
import type { Checkpoint } from '../train/checkpoint.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { decodeSafetensors, encodeSafetensors, type F32Tensor, type StDtype } from './safetensors.js';

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
export async function exportSafetensors(ck: Pick<Checkpoint, 'config' | 'weights' | 'step' | 'tokenizerJson'>, outDir: string, dtype: StDtype = 'F32'): Promise<ExportResult> {
  const cfg = ck.config.model;
  const layout = buildLayout(cfg);
  const tensors = exportTensors(layout, cfg, ck.weights);
  const st = encodeSafetensors(tensors, { format: 'pt', source: 'vilm', step: String(ck.step) }, dtype);
  const files = [path.join(outDir, 'model.safetensors'), path.join(outDir, 'config.json'), path.join(outDir, 'tokenizer.json')];
  await writeFileAtomic(files[0], st);
  await writeFileAtomic(files[1], JSON.stringify(exportConfigJson(cfg), null, 2) + '\n');
  await writeFileAtomic(files[2], ck.tokenizerJson);
  return { files, tensors: tensors.length, bytes: st.length };
}

/** The files of an exported model directory. */
export const EXPORT_FILES = { weights: 'model.safetensors', config: 'config.json', tokenizer: 'tokenizer.json' } as const;

/** True when `dir` looks like an exported model (has model.safetensors and config.json). */
export function isExportDir(dir: string): boolean {
  return existsSync(path.join(dir, EXPORT_FILES.weights)) && existsSync(path.join(dir, EXPORT_FILES.config));
}

export interface ExportedModel {
  model: ModelConfig;
  /** flat weights in the layout's order, matrices back in [in, out] */
  weights: Float32Array;
  tokenizerJson: string;
  /** the training step recorded in the file's metadata (0 when absent) */
  step: number;
  /** F32 or F16: how the weights were stored */
  dtype: StDtype;
}

/**
 * Read an exported directory back (the inverse of exportSafetensors; F16 weights widen to float32).
 * Every tensor of the config's layout must be present with its exported shape; problems are
 * one-line UserErrors naming the file.
 */
export function loadExported(dir: string): ExportedModel {
  const read = (name: string): Buffer => {
    const f = path.join(dir, name);
    try { return readFileSync(f); } catch (e) {
      throw new UserError(`${f}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
  };
  const cfgFile = path.join(dir, EXPORT_FILES.config);
  let rawCfg: unknown;
  try { rawCfg = JSON.parse(read(EXPORT_FILES.config).toString('utf8')); } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${cfgFile}: not valid JSON`);
  }
  const model = validateConfig({ model: rawCfg }, cfgFile).model;
  const stFile = path.join(dir, EXPORT_FILES.weights);
  const { tensors, metadata, dtypes } = decodeSafetensors(read(EXPORT_FILES.weights), stFile);
  const layout = buildLayout(model);
  const weights = new Float32Array(layout.total);
  const dtype: StDtype = dtypes.has('F16') ? 'F16' : 'F32';
  for (const p of layout.params) {
    const t = tensors.get(p.name);
    if (!t) throw new UserError(`${stFile}: tensor '${p.name}' is missing (config.json describes another model?)`);
    const want = p.kind === 'matrix' ? [p.shape[1], p.shape[0]] : [...p.shape];
    if (JSON.stringify(t.shape) !== JSON.stringify(want)) throw new UserError(`${stFile}: tensor '${p.name}' has shape ${JSON.stringify(t.shape)}, config.json needs ${JSON.stringify(want)}`);
    // exported matrices are [out, in]: transpose back to the layout's [in, out]
    weights.set(p.kind === 'matrix' ? transpose2d(t.data, want[0], want[1]) : t.data, p.offset);
  }
  for (let i = 0; i < weights.length; i++) {
    if (!Number.isFinite(weights[i])) throw new UserError(`${stFile}: non-finite weight at flat index ${i}`);
  }
  const tokFile = path.join(dir, EXPORT_FILES.tokenizer);
  const tokenizerJson = existsSync(tokFile) ? read(EXPORT_FILES.tokenizer).toString('utf8') : '';
  const step = Number(metadata.step);
  return { model, weights, tokenizerJson, step: Number.isSafeInteger(step) && step >= 0 ? step : 0, dtype };
}
