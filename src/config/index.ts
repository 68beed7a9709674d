import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { UserError } from '../util/errors.js';
import { log } from '../util/log.js';
import { z } from 'zod';
import { OPTIMIZER_NAMES, type OptimizerName } from '../optim/registry.js';
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
  /** the token embedding's learning rate (and decay) is the scheduled lr × this (src/optim `lrGroupsFor`) */
  embedding_lr_scale: number;
  /** tokens (padded positions) in one global batch; a batch comes from one bucket */
  batch_tokens: number;
  /**
   * fixed number of micro-shards a global batch is cut into: the unit of distributed work, so at
   * most this many workers compute at once; the weights depend on it (README, "The rule for how many")
   */
  micro_shards: number;
  /** cap on tokens in one forward pass inside a worker (wasm heap bound) */
  max_micro_batch_tokens: number;
  /**
   * gradient codec: fp32, or fp16 = every reduction-tree node rounded to scaled half precision, so
   * WebSocket workers send half the bytes; exact either way, but a different run (src/fleet/grad-codec.ts)
   */
  grad_codec: GradCodecName;
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

/** `train.grad_codec`: how gradient sums are formed and sent (src/fleet/grad-codec.ts implements fp16). */
export const GRAD_CODECS = ['fp32', 'fp16'] as const;
export type GradCodecName = (typeof GRAD_CODECS)[number];

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
  embedding_lr_scale: 1, clip_norm: 1.0, batch_tokens: 4096, micro_shards: 8, max_micro_batch_tokens: 2048, grad_codec: 'fp32',
  eval_every: 50, eval_sequences: 256, checkpoint_every: 50, log_every: 10, seed: 42,
};

/**
 * The schema of a config file (zod): types, ranges, no unknown fields. `configs/schema.json` is its
 * JSON Schema (`npm run schema` writes it; a test keeps it in step), so editors complete and check
 * the YAML files. Every field is optional in a file; missing ones take the defaults above.
 */
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.number().int().min(min).max(max);
const fraction = () => z.number().min(0).lt(1); // [0, 1): decay rates, β
const d = <K extends keyof ModelConfig>(k: K) => DEFAULT_MODEL[k];
const t = <K extends keyof TrainConfig>(k: K) => DEFAULT_TRAIN[k];

export const MODEL_SCHEMA = z.strictObject({
  vocab_size: int(4, 65536).default(d('vocab_size')).describe('tokens in the vocabulary (ids are stored as 16-bit)'),
  d_model: int(2).default(d('d_model')).describe('width of the residual stream'),
  n_heads: int(1).default(d('n_heads')).describe('attention heads; d_model / n_heads must be even (RoPE)'),
  n_layers: int(1).default(d('n_layers')).describe('decoder blocks'),
  ff_dim: int(1).default(d('ff_dim')).describe('hidden width of the feed-forward layer'),
  max_len: int(3).default(d('max_len')).describe('longest sequence, in tokens'),
  rope_theta: z.number().positive().default(d('rope_theta')).describe('RoPE base'),
  rope_style: z.enum(['rotate_half', 'interleaved']).default(d('rope_style')),
  norm: z.enum(['layernorm', 'rmsnorm']).default(d('norm')),
  norm_eps: z.number().positive().default(d('norm_eps')),
  activation: z.enum(['gelu_tanh', 'gelu', 'relu']).default(d('activation')),
  bias: z.boolean().default(d('bias')).describe('biases on the linear layers'),
  tie_embeddings: z.boolean().default(d('tie_embeddings')).describe('output head = embeddingᵀ'),
});

export const TRAIN_SCHEMA = z.strictObject({
  optimizer: z.enum(OPTIMIZER_NAMES as [OptimizerName, ...OptimizerName[]]).default(t('optimizer')),
  lr: z.number().positive().default(t('lr')).describe('peak learning rate'),
  min_lr: z.number().min(0).default(t('min_lr')).describe('learning rate at the end of the cosine decay'),
  warmup_steps: int(0).default(t('warmup_steps')),
  steps: int(0).default(t('steps')).describe('optimizer steps (the schedule length)'),
  beta1: fraction().default(t('beta1')),
  beta2: fraction().default(t('beta2')),
  eps: z.number().positive().default(t('eps')),
  momentum: fraction().default(t('momentum')),
  rms_decay: fraction().default(t('rms_decay')),
  weight_decay: z.number().min(0).default(t('weight_decay')).describe('decoupled, on matrices only'),
  embedding_lr_scale: z.number().positive().default(t('embedding_lr_scale')).describe("the token embedding's learning rate is lr × this"),
  clip_norm: z.number().min(0).default(t('clip_norm')).describe('global gradient-norm clip (0 = off)'),
  batch_tokens: int(1).default(t('batch_tokens')).describe('padded token positions per batch'),
  micro_shards: int(1).default(t('micro_shards')).describe('micro-shards per batch: the unit of distributed work (at most this many workers compute at once); the weights depend on it'),
  max_micro_batch_tokens: int(1).default(t('max_micro_batch_tokens')),
  grad_codec: z.enum(GRAD_CODECS).default(t('grad_codec')).describe('fp32, or fp16: reduction-tree nodes rounded to scaled half precision (half the bytes from WebSocket workers; exact, but a different run)'),
  eval_every: int(0).default(t('eval_every')).describe('steps between validations (0 = only at the end)'),
  eval_sequences: int(0).default(t('eval_sequences')).describe('validation sample size (0 = the whole split)'),
  checkpoint_every: int(0).default(t('checkpoint_every')),
  log_every: int(1).default(t('log_every')),
  seed: int(0, 2 ** 32 - 1).default(t('seed')),
});

export const CONFIG_SCHEMA = z.strictObject({
  model: MODEL_SCHEMA.default(() => MODEL_SCHEMA.parse({})),
  train: TRAIN_SCHEMA.default(() => TRAIN_SCHEMA.parse({})),
});

/** configs/schema.json: the JSON Schema of a config file. */
export function configJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'vilm run config (model + train)',
    ...z.toJSONSchema(CONFIG_SCHEMA, { io: 'input', unrepresentable: 'any' }),
  };
}

/** A zod issue as the one-line message the CLI prints: `<where>: field 'train.beta1' must be < 1, got 7`. */
function issueMessage(where: string, issue: z.core.$ZodIssue, raw: unknown): string {
  const field = issue.path.map(String).join('.');
  const got = issue.path.reduce<unknown>((o, k) => (o !== null && typeof o === 'object' ? (o as Record<PropertyKey, unknown>)[k as PropertyKey] : undefined), raw);
  const shown = JSON.stringify(got) ?? String(got);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const section = field === '' ? '' : `${field}.`;
      const known = field === 'model' ? Object.keys(MODEL_SCHEMA.shape) : field === 'train' ? Object.keys(TRAIN_SCHEMA.shape) : ['model', 'train'];
      return field === ''
        ? `${where}: unknown section '${issue.keys[0]}' (known: ${known.join(', ')})`
        : `${where}: unknown field '${section}${issue.keys[0]}' (known: ${known.join(', ')})`;
    }
    case 'invalid_value':
      return `${where}: field '${field}' must be one of ${issue.values.map(String).join('|')}, got ${shown}`;
    case 'invalid_type':
      if (issue.expected === 'object') return `${where}: '${field}' must be a mapping`;
      if (issue.expected === 'int') return `${where}: field '${field}' must be an integer, got ${shown}`;
      return `${where}: field '${field}' must be ${issue.expected === 'boolean' ? 'true or false' : `a ${issue.expected}`}, got ${shown}`;
    case 'too_small':
      return `${where}: field '${field}' must be ${issue.inclusive ? '≥' : '>'} ${String(issue.minimum)}, got ${shown}`;
    case 'too_big':
      return `${where}: field '${field}' must be ${issue.inclusive ? '≤' : '<'} ${String(issue.maximum)}, got ${shown}`;
    default:
      return `${where}: field '${field}': ${issue.message}`;
  }
}

let warnedEvalBatches = false;

/** Validate a parsed config object (from YAML or a checkpoint). `where` names the source in errors. */
export function validateConfig(raw: unknown, where: string): RunConfig {
  if (raw === null || raw === undefined || typeof raw !== 'object' || Array.isArray(raw)) throw new UserError(`${where}: config must be a YAML mapping with 'model' and 'train'`);
  // before 0.2 validation scored a prefix of batches (train.eval_batches); checkpoints written then still load
  const r = raw as Record<string, unknown>;
  const train = r.train;
  let input: unknown = raw;
  if (train !== null && typeof train === 'object' && !Array.isArray(train) && 'eval_batches' in train) {
    if (!warnedEvalBatches) log.warn(`${where}: 'train.eval_batches' is obsolete and ignored (validation is a random sample of train.eval_sequences sequences)`);
    warnedEvalBatches = true;
    const { eval_batches: _old, ...rest } = train as Record<string, unknown>;
    void _old;
    input = { ...r, train: rest };
  }
  const parsed = CONFIG_SCHEMA.safeParse(input);
  if (!parsed.success) throw new UserError(issueMessage(where, parsed.error.issues[0], input));
  const { model, train: tr } = parsed.data as RunConfig;
  if (model.d_model % model.n_heads !== 0) throw new UserError(`${where}: model.d_model (${model.d_model}) must be divisible by model.n_heads (${model.n_heads})`);
  if ((model.d_model / model.n_heads) % 2 !== 0) throw new UserError(`${where}: head size d_model/n_heads must be even for RoPE`);
  if (tr.min_lr > tr.lr) throw new UserError(`${where}: field 'train.min_lr' (${tr.min_lr}) must be ≤ train.lr (${tr.lr})`);
  return { model, train: tr };
}

/** The package's own folder (where its `configs/` ships), whatever the current directory. */
const PACKAGE_DIR = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Where a config path points: the path itself when it exists, else — for a relative path such as
 * the default `configs/tiny.yaml` — the same path inside the vilm package, so the built-in configs
 * work from any directory and from an installed package.
 */
export function resolveConfigPath(file: string): string {
  if (path.isAbsolute(file) || existsSync(file)) return file;
  const shipped = path.join(PACKAGE_DIR, file);
  return existsSync(shipped) ? shipped : file;
}

export function loadConfig(file: string): RunConfig {
  file = resolveConfigPath(file);
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
