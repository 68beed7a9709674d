/**
 * Where a trained model comes from, for the commands that use one (`eval`, `predict`, `train
 * --init`): a run directory or `.vilm` checkpoint, an exported directory (model.safetensors +
 * config.json + tokenizer.json, `vilm export safetensors`), or — when the user names none — the
 * model that ships with vilm in `models/viwiki-tiny/` (found from the package, not the current
 * directory, so it works from anywhere).
 */
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ModelConfig } from '../config/index.js';
import { loadCheckpoint } from '../train/checkpoint.js';
import { UserError } from '../util/errors.js';
import { isExportDir, loadExported } from './index.js';

/** The shipped seed model (trained on Vietnamese Wikipedia; see its README.md model card). */
export const SHIPPED_MODEL_DIR = fileURLToPath(new URL('../../models/viwiki-tiny', import.meta.url));

export interface TrainedModel {
  config: { model: ModelConfig };
  weights: Float32Array;
  /** tokenizer.json text ('' when the source has none) */
  tokenizerJson: string;
  step: number;
  /** what was opened, for messages */
  where: string;
  format: 'checkpoint' | 'safetensors';
  /** forward-pass token cap of the run that trained it (a safe default for exports) */
  maxBatchTokens: number;
}

/** Open `where` (a checkpoint, run directory or exported directory), or the shipped model when undefined. */
export function openTrained(where: string | undefined): TrainedModel {
  if (where === undefined) {
    if (!isExportDir(SHIPPED_MODEL_DIR)) {
      throw new UserError(`no --checkpoint given and the shipped model is missing (${SHIPPED_MODEL_DIR}); pass --checkpoint RUN`);
    }
    where = SHIPPED_MODEL_DIR;
  }
  if (existsSync(where) && statSync(where).isDirectory() && isExportDir(where)) {
    const e = loadExported(where);
    return { config: { model: e.model }, weights: e.weights, tokenizerJson: e.tokenizerJson, step: e.step, where, format: 'safetensors', maxBatchTokens: 2048 };
  }
  const ck = loadCheckpoint(where);
  return {
    config: { model: ck.config.model }, weights: ck.weights, tokenizerJson: ck.tokenizerJson, step: ck.step, where,
    format: 'checkpoint', maxBatchTokens: ck.config.train.max_micro_batch_tokens,
  };
}
