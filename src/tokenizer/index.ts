/**
 * vilm's tokenizer: byte-level BPE (GPT-2 byte alphabet and pre-tokenization regex), trained by
 * vilm, saved as a Hugging Face `tokenizer.json` that the `tokenizers` package loads with the same
 * ids. Decoding gives back exactly the (cleaned) input text.
 *
 *   const t = await trainTokenizer(texts, { vocabSize: 10_000 });   // texts: (Async)Iterable<string>
 *   await saveTokenizer(t, 'runs/tokenizer.json');                  // atomic write of t.json
 *   const tok = loadTokenizer('runs/tokenizer.json');               // Tokenizer (src/tokenizer/types.ts)
 *   tok.encode('Xin chào Việt Nam');                                // number[], no <bos>/<eos>
 *   tok.decode(ids);                                                // string, specials dropped
 *   tokenizerFromJson(checkpoint.tokenizerJson, undefined, 'run/checkpoint.vilm'); // from embedded text
 *
 * Ids: `<pad>`=0, `<bos>`=1, `<eos>`=2, the 256 bytes 3..258, merges from 259 in training order.
 * Like `tokenizers`, a literal `<pad>`/`<bos>`/`<eos>` in the text encodes to that special id.
 * Errors in a tokenizer.json are `TokenizerFileError` (a `UserError`) naming the file and field.
 */
import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { Tokenizer } from './types.js';
import { BpeTokenizer, sha256Hex } from './bpe.js';
import { modelFromJson, modelToJson } from './json.js';
import { trainModel, type TrainOptions, type TrainStats } from './train.js';

export type { Tokenizer } from './types.js';
export { BpeTokenizer, type BpeModel, type SpecialToken } from './bpe.js';
export { TokenizerFileError, SPECIAL_TOKENS } from './json.js';
export { MIN_VOCAB_SIZE, MAX_VOCAB_SIZE, type TrainOptions, type TrainStats } from './train.js';
export { BYTE_TO_CHAR, preTokenizeRegex } from './bytelevel.js';

export const DEFAULT_VOCAB_SIZE = 10_000;

/** A freshly trained tokenizer: usable at once, `json` is the tokenizer.json text to save. */
export interface TrainedTokenizer extends Tokenizer {
  /** the tokenizer.json text; `sha256` is the hash of its UTF-8 bytes */
  readonly json: string;
  readonly stats: TrainStats;
}

/** Load and validate a tokenizer.json file. */
export function loadTokenizer(file: string): Tokenizer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new UserError(`${file}: cannot read tokenizer (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UserError(`${file}: tokenizer.json is not valid UTF-8`);
  }
  return new BpeTokenizer(modelFromJson(text, file), sha256Hex(bytes));
}

/**
 * A tokenizer from tokenizer.json text (e.g. embedded in a checkpoint); `sha` defaults to the hash
 * of the text's UTF-8 bytes; `where` names the source in errors (e.g. the checkpoint file).
 */
export function tokenizerFromJson(text: string, sha?: string, where = 'tokenizer.json'): Tokenizer {
  return new BpeTokenizer(modelFromJson(text, where), sha ?? sha256Hex(Buffer.from(text, 'utf8')));
}

/** Train on texts (cleaned documents); exactly `opts.vocabSize` tokens or a `UserError` saying the maximum reachable. */
export async function trainTokenizer(texts: AsyncIterable<string> | Iterable<string>, opts: TrainOptions): Promise<TrainedTokenizer> {
  const { model, stats } = await trainModel(texts, opts);
  const json = modelToJson(model);
  const tok = new BpeTokenizer(model, sha256Hex(Buffer.from(json, 'utf8')));
  return Object.assign(tok, { json, stats });
}

/** Write a trained tokenizer's tokenizer.json atomically (temp file + rename). */
export async function saveTokenizer(t: TrainedTokenizer, file: string): Promise<void> {
  await writeFileAtomic(file, t.json);
}
