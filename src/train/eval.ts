/**
 * Scoring text with a model: loss, perplexity and bits per byte.
 *
 *   import { evaluateDocuments, evaluateIds, scoreDocuments } from '../train/eval.js';
 *   const r = await evaluateDocuments(model, params, tokenizer, cleanedTexts);   // {loss, ppl, bitsPerByte, tokens, bytes}
 *   const t = await scoreDocuments(scorer, maxLen, tokenizer, cleanedTexts);     // the same, on a SequenceScorer's threads
 *   const s = evaluateIds(model, params, [12, 7, 301]);                          // {loss, ppl, tokens}
 *
 * Documents (`vilm eval --in`): each cleaned document is encoded in one piece (no special tokens)
 * and cut into consecutive, non-overlapping windows of at most `max_len − 2` text tokens. Each
 * window is scored as `<bos> window` and the document's last window as `<bos> window <eos>` —
 * the same shape as the training sequences (src/data/prepare/sequences.ts: `<bos>` at the start of
 * every sequence, `<eos>` only where the document really ends), never longer than `max_len`.
 * Every text token and each document's `<eos>` is predicted once; `<bos>` is never a target.
 * A window start loses the context before it (non-overlapping windows: each token is scored
 * once, and the cost is one forward pass per token).
 *
 *   loss        = total nats / predicted tokens          (mean next-token cross-entropy)
 *   ppl         = exp(loss)
 *   bitsPerByte = total nats / ln 2 / UTF-8 bytes of the cleaned text
 *
 * Each window is scored alone, one forward pass (rows = 1, no padding), by the per-sequence code
 * of src/train/parallel-eval.ts (scoreEach; `vilm eval --workers N` spreads the windows over N
 * threads with a SequenceScorer). The loss sum and token count of every window go into float64
 * sums in window order (document order, then window order within a document), so the result is
 * the same bytes for any number of threads. (Until this change windows were sorted by length and
 * packed into padded multi-row batches, whose float32 pass sums depended on the packing: the
 * numbers of `vilm eval` may differ from those of older versions in the last digits.)
 * Memory stays bounded for a large file: texts stream in, and windows are scored in groups of
 * `groupWindows` (at most one group scoring while the next one is being read and tokenised).
 *
 * Ids (`vilm eval --ids`): exactly that sequence, no cleaning and no specials: the mean loss of
 * its len − 1 next-token predictions (targets equal to `<pad>` = 0 are masked by the model).
 */
import type { LanguageModel } from '../model/api.js';
import type { TokenBatch } from '../model/types.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { UserError } from '../util/errors.js';
import { scoreEach, type SequenceScores } from './parallel-eval.js';

export interface EvalResult {
  /** mean next-token cross-entropy (nats) */
  loss: number;
  ppl: number;
  bitsPerByte: number;
  /** predicted tokens */
  tokens: number;
  /** UTF-8 bytes of the (cleaned) text */
  bytes: number;
}

export interface IdsEvalResult {
  loss: number;
  ppl: number;
  tokens: number;
}

export interface EvalOptions {
  /**
   * Ignored (kept so existing callers compile): windows were once packed into batches of this many
   * positions; every window is now one pass of its own (see the file comment).
   */
  maxBatchTokens?: number;
  /** windows scored per group (default GROUP_WINDOWS): bounds the memory held for a large input */
  groupWindows?: number;
  /** called after each group with the tokens scored so far */
  onProgress?: (tokens: number) => void;
}

/** Default windows per group of evaluateDocuments / scoreDocuments (≤ 2048 · max_len tokens). */
export const GROUP_WINDOWS = 2048;

/** Scores whole sequences each on its own, in input order: a SequenceScorer (src/train/parallel-eval.ts), or inProcessScorer. */
export interface WindowScorer {
  score(sequences: readonly Uint16Array[]): Promise<SequenceScores>;
}

/** The per-sequence scoring of src/train/parallel-eval.ts in this thread, with a model already built. */
export function inProcessScorer(model: LanguageModel, params: Float32Array): WindowScorer {
  return {
    score: async (sequences) => {
      const out: SequenceScores = { nats: new Float64Array(sequences.length), tokens: new Float64Array(sequences.length) };
      scoreEach(model, params, sequences, out);
      return out;
    },
  };
}

/** Bits per UTF-8 byte from a loss sum in nats. */
export function bitsPerByte(lossSumNats: number, bytes: number): number {
  return lossSumNats / Math.LN2 / bytes;
}

/** Windows `<bos> …text… [<eos>]` for one document's ids (see the file comment). */
export function documentWindows(ids: readonly number[], maxLen: number, bosId: number, eosId: number): number[][] {
  const cap = maxLen - 2;
  if (cap < 1) throw new Error(`documentWindows: max_len ${maxLen} leaves no room for text`);
  const out: number[][] = [];
  if (ids.length === 0) return out;
  for (let s = 0; s < ids.length; s += cap) {
    const e = Math.min(ids.length, s + cap);
    const w = [bosId, ...ids.slice(s, e)];
    if (e === ids.length) w.push(eosId);
    out.push(w);
  }
  return out;
}

/**
 * Pack sequences (each ≥ 2 tokens) into padded batches of at most `maxBatchTokens` positions
 * (longest first). No longer used by evaluateDocuments (one pass per window); kept for callers
 * that want batched passes.
 */
export function packBatches(seqs: number[][], maxBatchTokens: number): TokenBatch[] {
  const sorted = seqs.slice().sort((a, b) => b.length - a.length);
  const batches: TokenBatch[] = [];
  let i = 0;
  while (i < sorted.length) {
    const seqLen = sorted[i].length; // longest first: this batch's width
    const rows = Math.max(1, Math.min(sorted.length - i, Math.floor(maxBatchTokens / seqLen)));
    const tokens = new Uint16Array(rows * seqLen); // zero = <pad>
    for (let r = 0; r < rows; r++) tokens.set(sorted[i + r], r * seqLen);
    batches.push({ tokens, rows, seqLen });
    i += rows;
  }
  return batches;
}

/**
 * Score cleaned documents in this thread (see the file comment). Texts may be any (async) iterable
 * so a large file streams; windows are scored in groups as they accumulate.
 */
export async function evaluateDocuments(
  model: LanguageModel, params: Float32Array, tokenizer: Tokenizer,
  texts: Iterable<string> | AsyncIterable<string>, opts: EvalOptions = {},
): Promise<EvalResult> {
  return scoreDocuments(inProcessScorer(model, params), model.config.max_len, tokenizer, texts, opts);
}

/**
 * Score cleaned documents with `scorer` (windows of at most `maxLen` tokens, see the file comment):
 * the same result, bit for bit, whatever the scorer's number of threads.
 */
export async function scoreDocuments(
  scorer: WindowScorer, maxLen: number, tokenizer: Tokenizer,
  texts: Iterable<string> | AsyncIterable<string>, opts: EvalOptions = {},
): Promise<EvalResult> {
  const groupWindows = opts.groupWindows ?? GROUP_WINDOWS;
  if (!Number.isInteger(groupWindows) || groupWindows < 1) throw new RangeError(`scoreDocuments: groupWindows must be a positive integer, got ${groupWindows}`);
  let lossSum = 0, tokens = 0, bytes = 0;
  // one group scoring while the next is read; its failure is kept (not left as an unhandled rejection) and rethrown
  let inflight: Promise<void> = Promise.resolve();
  let failure: { error: unknown } | undefined;
  const submit = async (group: Uint16Array[]): Promise<void> => {
    await inflight;
    if (failure) throw failure.error;
    inflight = scorer.score(group).then((r) => {
      // float64, in window order: group after group, window after window
      for (let i = 0; i < group.length; i++) { lossSum += r.nats[i]; tokens += r.tokens[i]; }
      opts.onProgress?.(tokens);
    }, (e: unknown) => { failure = { error: e }; });
  };
  let pending: Uint16Array[] = [];
  for await (const text of texts) {
    if (text.length === 0) continue;
    bytes += Buffer.byteLength(text, 'utf8');
    for (const w of documentWindows(tokenizer.encode(text), maxLen, tokenizer.bosId, tokenizer.eosId)) pending.push(Uint16Array.from(w));
    if (pending.length >= groupWindows) { await submit(pending); pending = []; }
  }
  if (pending.length > 0) await submit(pending);
  await inflight;
  if (failure) throw failure.error;
  if (tokens === 0) throw new UserError('eval: no text to score (every document is empty after cleaning)');
  const loss = lossSum / tokens;
  return { loss, ppl: Math.exp(loss), bitsPerByte: bitsPerByte(lossSum, bytes), tokens, bytes };
}

/** Parse and check `--ids '[12,7,…]'` against the vocabulary and context length. */
export function parseIds(text: string, vocabSize: number, maxLen: number): number[] {
  let v: unknown;
  try { v = JSON.parse(text); } catch { throw new UserError(`--ids: expected a JSON array of token ids, got '${text.slice(0, 40)}'`); }
  if (!Array.isArray(v)) throw new UserError('--ids: expected a JSON array of token ids');
  v.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= vocabSize) {
      throw new UserError(`--ids: element ${i} (${JSON.stringify(x)}) is not a token id in [0, ${vocabSize})`);
    }
  });
  const ids = v as number[];
  if (ids.length < 2) throw new UserError(`--ids: need at least 2 ids to score a next-token prediction, got ${ids.length}`);
  if (ids.length > maxLen) throw new UserError(`--ids: ${ids.length} ids; the model's context (max_len) is ${maxLen}`);
  return ids;
}

/** Mean next-token loss of exactly this sequence (no specials added). */
export function evaluateIds(model: LanguageModel, params: Float32Array, ids: readonly number[]): IdsEvalResult {
  if (ids.length < 2) throw new UserError(`eval: need at least 2 ids, got ${ids.length}`);
  const r = model.evaluate(params, { tokens: Uint16Array.from(ids), rows: 1, seqLen: ids.length });
  if (r.tokenCount === 0) throw new UserError('eval: every target id is <pad> (0); nothing to score');
  const loss = r.lossSum / r.tokenCount;
  return { loss, ppl: Math.exp(loss), tokens: r.tokenCount };
}
