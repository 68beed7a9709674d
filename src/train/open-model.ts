/**
 * Open a trained checkpoint for use: its tokenizer (or a given one) and its model on a backend.
 * Used by `vilm eval`, `vilm predict` and the `vilm start` job.
 */
import type { BackendName } from '../backend/types.js';
import type { ModelConfig } from '../config/index.js';
import type { LanguageModel } from '../model/api.js';
import { loadTokenizer, tokenizerFromJson } from '../tokenizer/index.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { UserError } from '../util/errors.js';
import { loadCheckpoint, type Checkpoint } from './checkpoint.js';

/** What opening a model needs: its config and tokenizer (a Checkpoint, or an exported model). */
export interface ModelWithTokenizer {
  config: { model: ModelConfig };
  tokenizerJson: string;
}

/**
 * The checkpoint's tokenizer, or `tokenizerFile` when given (for checkpoints saved without one);
 * its vocabulary must fit the model's.
 */
export function checkpointTokenizer(ck: ModelWithTokenizer, where: string, tokenizerFile?: string): Tokenizer {
  let tok: Tokenizer;
  if (tokenizerFile !== undefined) {
    tok = loadTokenizer(tokenizerFile);
  } else {
    if (ck.tokenizerJson.trim() === '') {
      throw new UserError(`${where}: the checkpoint holds no tokenizer (trained without DATA/tokenizer.json); pass --tokenizer FILE`);
    }
    try { tok = tokenizerFromJson(ck.tokenizerJson); } catch (e) {
      if (e instanceof UserError) throw new UserError(`${where}: embedded ${e.message}`);
      throw e;
    }
  }
  if (tok.vocabSize > ck.config.model.vocab_size) {
    throw new UserError(`${tokenizerFile ?? where}: tokenizer has ${tok.vocabSize} tokens but the checkpoint's model.vocab_size is ${ck.config.model.vocab_size}`);
  }
  return tok;
}

/** Start the backend and build the checkpoint's model and tokenizer. */
export async function openModel(ck: ModelWithTokenizer, where: string, backend: BackendName, tokenizerFile?: string): Promise<{ model: LanguageModel; tokenizer: Tokenizer }> {
  const tokenizer = checkpointTokenizer(ck, where, tokenizerFile);
  // imported here, not at the top: the CLI loads this file for every command, only some need tfjs
  const { initBackend } = await import('../backend/index.js');
  const { createModel } = await import('../model/model.js');
  await initBackend(backend);
  return { model: createModel(ck.config.model), tokenizer };
}

/** loadCheckpoint + openModel. */
export async function openCheckpoint(pathOrRunDir: string, backend: BackendName): Promise<{ ck: Checkpoint; model: LanguageModel; tokenizer: Tokenizer }> {
  const ck = loadCheckpoint(pathOrRunDir);
  return { ck, ...(await openModel(ck, pathOrRunDir, backend)) };
}
