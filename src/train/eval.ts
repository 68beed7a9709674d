/**
 * Scoring text with a model: loss, perplexity and bits per byte.
 *
 *   import { evaluateDocuments, evaluateIds } from '../train/eval.js';
 *   const r = await evaluateDocuments(model, params, tokenizer, cleanedTexts);   // {loss, ppl, bitsPerByte, tokens, bytes}
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
 * Windows are sorted by length and packed into padded batches of at most `maxBatchTokens`
 * (rows × seqLen) positions; pad targets are masked by the model, so batching does not change
 * the sums (beyond float summation order). Sums are accumulated in float64.
 *
 * Ids (`vilm eval --ids`): exactly that sequence, no cleaning and no specials: the mean loss of
 * its len − 1 next-token predictions (targets equal to `<pad>` = 0 are masked by the model).
 */
import type { LanguageModel } from '../model/api.js';
import type { TokenBatch } from '../model/types.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { UserError } from '../util/errors.js';

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
  /** rows × seqLen cap of one forward pass (default 2048) */
  maxBatchTokens?: number;
  /** called after each batch with the tokens scored so far */
  onProgress?: (tokens: number) => void;
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

/** Pack sequences (each ≥ 2 tokens) into padded batches of at most `maxBatchTokens` positions. */
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

/** Accumulates loss sums over batches (float64). */
class LossAccumulator {
  lossSum = 0;
  tokens = 0;
  constructor(private readonly model: LanguageModel, private readonly params: Float32Array, private readonly opts: EvalOptions) {}
  run(seqs: number[][]): void {
    for (const b of packBatches(seqs, this.opts.maxBatchTokens ?? 2048)) {
      const r = this.model.evaluate(this.params, b);
      this.lossSum += r.lossSum;
      this.tokens += r.tokenCount;
      this.opts.onProgress?.(this.tokens);
    }
  }
}

/**
 * Score cleaned documents (see the file comment). Texts may be any (async) iterable so a large
 * file streams; windows are scored in groups as they accumulate.
 */
export async function evaluateDocuments(
  model: LanguageModel, params: Float32Array, tokenizer: Tokenizer,
  texts: Iterable<string> | AsyncIterable<string>, opts: EvalOptions = {},
): Promise<EvalResult> {
  const maxLen = model.config.max_len;
  const acc = new LossAccumulator(model, params, opts);
  const flushAt = Math.max(opts.maxBatchTokens ?? 2048, maxLen) * 8;
  let pending: number[][] = [];
  let pendingTokens = 0;
  let bytes = 0;
  for await (const text of texts) {
    if (text.length === 0) continue;
    bytes += Buffer.byteLength(text, 'utf8');
    for (const w of documentWindows(tokenizer.encode(text), maxLen, tokenizer.bosId, tokenizer.eosId)) {
      pending.push(w);
      pendingTokens += w.length;
    }
    if (pendingTokens >= flushAt) { acc.run(pending); pending = []; pendingTokens = 0; }
  }
  acc.run(pending);
  if (acc.tokens === 0) throw new UserError('eval: no text to score (every document is empty after cleaning)');
  const loss = acc.lossSum / acc.tokens;
  return { loss, ppl: Math.exp(loss), bitsPerByte: bitsPerByte(acc.lossSum, bytes), tokens: acc.tokens, bytes };
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
