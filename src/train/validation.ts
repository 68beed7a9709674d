/**
 * Scoring a set of prepared sequences with a standard error: the validation estimate of a run.
 *
 *   const refs = sampleSequences(split, 256, seed);          // src/data/sampler.ts: fixed, seeded, spread over the split
 *   const r = scoreSequences(model, weights, split, refs, bytesOf);
 *   // {loss, lossSe, bitsPerByte, bitsPerByteSe, sequences, tokens, bytes}
 *   const p = await scoreSequencesParallel({ model: cfg.model, backend, threads: 4, weights }, split, refs, bytesOf);
 *   // the same object, bit for bit, for any number of threads (src/train/parallel-eval.ts)
 *
 * The estimate is a ratio (Σ nats / Σ tokens, Σ nats / ln2 / Σ bytes) over a simple random sample of
 * m sequences out of N; its standard error is the usual ratio-estimator one, with the finite-
 * population correction:
 *
 *   r = Σlᵢ / Σnᵢ,   SE(r) = √((1 − m/N) · Σ(lᵢ − r·nᵢ)² / (m(m−1))) / n̄,   n̄ = Σnᵢ / m
 *
 * (lᵢ: nats of sequence i, nᵢ: its tokens or bytes). Each sequence is scored on its own (one forward
 * pass per row, padding trimmed) so its loss is known; both variants share that per-sequence code
 * (scoreEach) and the estimator (sampleScore), which sums in float64 in `refs` order.
 */
import type { BackendName } from '../backend/types.js';
import type { ModelConfig } from '../config/index.js';
import type { PreparedSplit } from '../data/dataset.js';
import type { SequenceRef } from '../data/sampler.js';
import type { LanguageModel } from '../model/api.js';
import { scoreEach, scoreInThreads, type SequenceScorer, type SequenceScores } from './parallel-eval.js';

export interface SampleScore {
  /** nats per predicted token */
  loss: number;
  lossSe: number;
  /** NaN without a tokenizer to count bytes */
  bitsPerByte: number;
  bitsPerByteSe: number;
  sequences: number;
  tokens: number;
  bytes: number;
  lossSum: number;
}

/** Ratio estimate Σl/Σd and its standard error (see the file comment). */
export function ratioEstimate(l: Float64Array, d: Float64Array, population: number): { ratio: number; se: number } {
  const m = l.length;
  let sl = 0, sd = 0;
  for (let i = 0; i < m; i++) { sl += l[i]; sd += d[i]; }
  const ratio = sd > 0 ? sl / sd : NaN;
  if (m < 2 || sd <= 0) return { ratio, se: NaN };
  let ss = 0;
  for (let i = 0; i < m; i++) { const e = l[i] - ratio * d[i]; ss += e * e; }
  const fpc = population > m ? 1 - m / population : 0;
  return { ratio, se: Math.sqrt((fpc * ss) / (m * (m - 1))) / (sd / m) };
}

/**
 * Tokens and UTF-8 bytes of a whole split (decoding only, no model): with them a sample's bits per
 * byte is its loss per token × (tokens / bytes of the whole split) / ln 2 — the whole split's
 * ratio is known exactly, so the estimate's only error is the loss's, which is far smaller than
 * that of a per-sample byte ratio (bytes per token vary a lot from one sequence to the next).
 */
export async function splitTokensPerByte(split: PreparedSplit, bytesOf: (tokens: Uint16Array) => number): Promise<number> {
  let tokens = 0, bytes = 0, done = 0;
  for (const b of split.buckets) {
    for (let i = 0; i < b.count; i++) {
      const seq = b.tokens.subarray(i * b.length, (i + 1) * b.length);
      let n = seq.length;
      while (n > 0 && seq[n - 1] === 0) n--;
      tokens += n - 1; // predicted tokens: every token after the first (<bos>)
      bytes += bytesOf(seq);
      if (++done % YIELD_EVERY === 0) await yieldToLoop();
    }
  }
  return bytes > 0 ? tokens / bytes : NaN;
}

/**
 * Decoding a whole split to count its bytes is main-thread work (~200 ms for viwiki's 7,769
 * validation sequences, measured 2026-12-03): done in slices of YIELD_EVERY sequences with the
 * event loop let through in between, a coordinator keeps reading heartbeats meanwhile.
 */
const YIELD_EVERY = 256;
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** UTF-8 bytes of `refs`' sequences [from, to) into `out`. */
function refBytesInto(out: Float64Array, split: PreparedSplit, refs: readonly SequenceRef[], bytesOf: (tokens: Uint16Array) => number, from = 0, to = refs.length): Float64Array {
  for (let i = from; i < to; i++) out[i] = bytesOf(split.sequence(refs[i].length, refs[i].row));
  return out;
}

/** refBytesInto for all of `refs`, in slices, letting the event loop through between them. */
async function refBytes(split: PreparedSplit, refs: readonly SequenceRef[], bytesOf: (tokens: Uint16Array) => number): Promise<Float64Array> {
  const out = new Float64Array(refs.length);
  for (let i = 0; i < refs.length; i += YIELD_EVERY) {
    refBytesInto(out, split, refs, bytesOf, i, Math.min(refs.length, i + YIELD_EVERY));
    await yieldToLoop();
  }
  return out;
}

/** The sequences of `refs`, padding trimmed (a shorter pass, same loss: pad targets are masked anyway). */
export function refSequences(split: PreparedSplit, refs: readonly SequenceRef[]): Uint16Array[] {
  return refs.map(({ length, row }) => {
    const seq = split.sequence(length, row);
    let n = seq.length;
    while (n > 2 && seq[n - 1] === 0) n--;
    return seq.subarray(0, n);
  });
}

/**
 * Score `refs` (each sequence on its own). With `bytesOf`, bits per byte of the scored sequences are
 * exact when `refs` is the whole split; for a sample, pass `tokensPerByte` of the whole split
 * (splitTokensPerByte) and bits per byte is the loss scaled by it, with the loss's standard error.
 */
export function scoreSequences(
  model: LanguageModel, weights: Float32Array, split: PreparedSplit, refs: readonly SequenceRef[],
  bytesOf?: (tokens: Uint16Array) => number, tokensPerByte?: number,
): SampleScore {
  const m = refs.length;
  const scores: SequenceScores = { nats: new Float64Array(m), tokens: new Float64Array(m) };
  scoreEach(model, weights, refSequences(split, refs), scores);
  return sampleScore(scores, split, bytesOf ? refBytesInto(new Float64Array(m), split, refs, bytesOf) : undefined, tokensPerByte);
}

export interface ParallelScoreOptions {
  model: ModelConfig;
  backend: BackendName;
  /** worker threads (0 or 1: in this thread); the result is the same for any number */
  threads: number;
  weights: Float32Array;
  /** sequences scored so far */
  onProgress?: (done: number, total: number) => void;
}

/**
 * scoreSequences on `threads` worker threads (src/train/parallel-eval.ts): the same per-sequence
 * passes and the same estimator code, so the same result, bit for bit, for any `threads`.
 */
export async function scoreSequencesParallel(
  o: ParallelScoreOptions, split: PreparedSplit, refs: readonly SequenceRef[],
  bytesOf?: (tokens: Uint16Array) => number, tokensPerByte?: number,
): Promise<SampleScore> {
  const scores = await scoreInThreads({ ...o, sequences: refSequences(split, refs) });
  return sampleScore(scores, split, bytesOf ? await refBytes(split, refs, bytesOf) : undefined, tokensPerByte);
}

/** scoreSequences with an open SequenceScorer (its weights set by the caller): the same result. */
export async function scoreSequencesWith(
  scorer: SequenceScorer, split: PreparedSplit, refs: readonly SequenceRef[],
  bytesOf?: (tokens: Uint16Array) => number, tokensPerByte?: number,
): Promise<SampleScore> {
  const scores = await scorer.score(refSequences(split, refs));
  return sampleScore(scores, split, bytesOf ? await refBytes(split, refs, bytesOf) : undefined, tokensPerByte);
}

/**
 * The estimate from per-sequence scores and UTF-8 bytes (`seqBytes`; none: no bits per byte), in
 * `refs` order: sums in float64, in that order.
 */
function sampleScore(scores: SequenceScores, split: PreparedSplit, seqBytes: Float64Array | undefined, tokensPerByte?: number): SampleScore {
  const { nats, tokens: toks } = scores;
  const m = nats.length;
  const bytes = seqBytes ?? new Float64Array(m);
  const byToken = ratioEstimate(nats, toks, split.sequences);
  const byByte = tokensPerByte !== undefined && m < split.sequences
    ? { ratio: (byToken.ratio * tokensPerByte) / Math.LN2, se: (byToken.se * tokensPerByte) / Math.LN2 }
    : seqBytes ? ratioEstimate(nats, bytes.map((b) => b * Math.LN2), split.sequences) : { ratio: NaN, se: NaN };
  let lossSum = 0, tokens = 0, byteSum = 0;
  for (let i = 0; i < m; i++) { lossSum += nats[i]; tokens += toks[i]; byteSum += bytes[i]; }
  return {
    loss: byToken.ratio, lossSe: byToken.se, bitsPerByte: byByte.ratio, bitsPerByteSe: byByte.se,
    sequences: m, tokens, bytes: byteSum, lossSum,
  };
}
