import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { UserError } from '../util/errors.js';
import { log } from '../util/log.js';
import { OPTIMIZER_NAMES } from '../optim/registry.js';
import type { OptimizerConfig, ScheduleConfig } from '../optim/types.js';

export type { OptimizerName } from '../optim/registry.js';

/**
 * The run configuration: one YAML file in `configs/` sizes the model and the training run.
 * Every field is validated with a one-line error naming the file and the field.
 */
export interface ModelConfig {
  vocab_size: number;
  d_model: number;
  n_heads: number;
  n_layers: number;
  ff_dim: number;
  max_len: number;
  rope_theta: number;
  rope_style: 'rotate_half' | 'interleaved';
  norm: 'layernorm' | 'rmsnorm';
  norm_eps: number;
  activation: 'gelu_tanh' | 'gelu' | 'relu';
  /** biases on the linear layers (attention projections, FFN); norms have their own bias for layernorm */
  bias: boolean;
  tie_embeddings: boolean;
}

/**
 * The `train:` section. The optimizer's fields (optimizer, beta1, beta2, eps, momentum, rms_decay,
 * weight_decay) and the schedule's (lr, min_lr, warmup_steps, steps) are declared once, by
 * src/optim (OptimizerConfig, ScheduleConfig), which reads them.
 */
export interface TrainConfig extends OptimizerConfig, ScheduleConfig {
  clip_norm: number;
  /** tokens (padded positions) in one global batch; a batch comes from one bucket */
  batch_tokens: number;
  /** fixed number of micro-shards a global batch is cut into (the unit of distributed work) */
  micro_shards: number;
  /** cap on tokens in one forward pass inside a worker (wasm heap bound) */
  max_micro_batch_tokens: number;
  eval_every: number;
  /**
   * validation sequences scored at each evaluation: a fixed random sample spread over the whole
   * split, seeded by `seed` (the same sample every time); 0 = the whole split
   */
  eval_sequences: number;
  checkpoint_every: number;
  log_every: number;
  seed: number;
}

export interface RunConfig {
  model: ModelConfig;
  train: TrainConfig;
}

export const DEFAULT_MODEL: ModelConfig = {
  vocab_size: 10000, d_model: 64, n_heads: 4, n_layers: 3, ff_dim: 256, max_len: 256,
  rope_theta: 10000, rope_style: 'rotate_half', norm: 'layernorm', norm_eps: 1e-5,
  activation: 'gelu_tanh', bias: false, tie_embeddings: false,
};

export const DEFAULT_TRAIN: TrainConfig = {
  optimizer: 'adam', lr: 3e-3, min_lr: 3e-4, warmup_steps: 20, steps: 200,
  beta1: 0.9, beta2: 0.95, eps: 1e-8, momentum: 0.9, rms_decay: 0.99, weight_decay: 0.0,
  clip_norm: 1.0, batch_tokens: 4096, micro_shards: 8, max_micro_batch_tokens: 2048,
  eval_every: 50, eval_sequences: 256, checkpoint_every: 50, log_every: 10, seed: 42,
};

type Spec = Record<string, 'int' | 'pos' | 'num' | 'bool' | readonly string[]>;

const MODEL_SPEC: Spec = {
  vocab_size: 'int', d_model: 'int', n_heads: 'int', n_layers: 'int', ff_dim: 'int', max_len: 'int',
  rope_theta: 'pos', rope_style: ['rotate_half', 'interleaved'], norm: ['layernorm', 'rmsnorm'],
  norm_eps: 'pos', activation: ['gelu_tanh', 'gelu', 'relu'], bias: 'bool', tie_embeddings: 'bool',
};
const TRAIN_SPEC: Spec = {
  optimizer: OPTIMIZER_NAMES, lr: 'pos', min_lr: 'num', warmup_steps: 'num',
  steps: 'num', beta1: 'num', beta2: 'num', eps: 'pos', momentum: 'num', rms_decay: 'num',
  weight_decay: 'num', clip_norm: 'num', batch_tokens: 'int', micro_shards: 'int',
  max_micro_batch_tokens: 'int', eval_every: 'num', eval_sequences: 'num', checkpoint_every: 'num',
  log_every: 'int', seed: 'num',
};

let warnedEvalBatches = false;

function check<T extends object>(where: string, section: string, raw: unknown, spec: Spec, defaults: T): T {
  if (raw === undefined || raw === null) return { ...defaults };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new UserError(`${where}: '${section}' must be a mapping`);
  const out: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (section === 'train' && k === 'eval_batches') {
      // before 0.2 validation scored a prefix of batches; checkpoints written then still load
      if (!warnedEvalBatches) log.warn(`${where}: 'train.eval_batches' is obsolete and ignored (validation is a random sample of train.eval_sequences sequences)`);
      warnedEvalBatches = true;
      continue;
    }
    const kind = spec[k];
    const field = `${section}.${k}`;
    if (kind === undefined) throw new UserError(`${where}: unknown field '${field}' (known: ${Object.keys(spec).join(', ')})`);
    if (Array.isArray(kind)) {
      if (typeof v !== 'string' || !kind.includes(v)) throw new UserError(`${where}: field '${field}' must be one of ${kind.join('|')}, got ${JSON.stringify(v)}`);
    } else if (kind === 'bool') {
      if (typeof v !== 'boolean') throw new UserError(`${where}: field '${field}' must be true or false, got ${JSON.stringify(v)}`);
    } else {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new UserError(`${where}: field '${field}' must be a number, got ${JSON.stringify(v)}`);
      if (kind === 'int' && (!Number.isInteger(v) || v <= 0)) throw new UserError(`${where}: field '${field}' must be a positive integer, got ${v}`);
      if (kind === 'pos' && v <= 0) throw new UserError(`${where}: field '${field}' must be positive, got ${v}`);
      if (kind === 'num' && v < 0) throw new UserError(`${where}: field '${field}' must be ≥ 0, got ${v}`);
    }
    out[k] = v;
  }
  return out as T;
}

/** Validate a parsed config object (from YAML or a checkpoint). `where` names the source in errors. */
export function validateConfig(raw: unknown, where: string): RunConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new UserError(`${where}: config must be a YAML mapping with 'model' and 'train'`);
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) if (k !== 'model' && k !== 'train') throw new UserError(`${where}: unknown section '${k}' (known: model, train)`);
  const model = check(where, 'model', r.model, MODEL_SPEC, DEFAULT_MODEL);
  const train = check(where, 'train', r.train, TRAIN_SPEC, DEFAULT_TRAIN);
  if (model.d_model % model.n_heads !== 0) throw new UserError(`${where}: model.d_model (${model.d_model}) must be divisible by model.n_heads (${model.n_heads})`);
  if ((model.d_model / model.n_heads) % 2 !== 0) throw new UserError(`${where}: head size d_model/n_heads must be even for RoPE`);
  if (model.vocab_size > 65536) throw new UserError(`${where}: model.vocab_size must be ≤ 65536 (token files store 16-bit ids)`);
  return { model, train };
}

export function loadConfig(file: string): RunConfig {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) {
    throw new UserError(`${file}: cannot read config (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let raw: unknown;
  try { raw = parseYaml(text); } catch (e) {
    throw new UserError(`${file}: invalid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  return validateConfig(raw, file);
}

/**
 * Apply `section.field=value` overrides from the command line (e.g. `--set train.lr=1e-3`).
 */
export function applyOverrides(cfg: RunConfig, overrides: string[], where = '--set'): RunConfig {
  const raw: Record<string, Record<string, unknown>> = { model: { ...cfg.model }, train: { ...cfg.train } };
  for (const o of overrides) {
    const m = /^(model|train)\.([a-z_0-9]+)=(.*)$/.exec(o);
    if (!m) throw new UserError(`${where}: expected section.field=value (section model|train), got '${o}'`);
    const [, section, field, value] = m;
    let v: unknown = value;
    if (value === 'true' || value === 'false') v = value === 'true';
    else if (value !== '' && !Number.isNaN(Number(value))) v = Number(value);
    raw[section][field] = v;
  }
  return validateConfig(raw, where);
}
