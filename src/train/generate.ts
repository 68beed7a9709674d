/**
 * Text generation with the model's KV-cached decoder and seeded sampling.
 *
 *   import { generate } from '../train/generate.js';
 *   for await (const piece of generate(model, params, tokenizer, 'Việt Nam là', { maxTokens: 64, seed: 1 }))
 *     process.stdout.write(piece);
 *
 * The prompt is encoded as `<bos> prompt` — exactly how every training sequence starts (see
 * src/data/prepare/sequences.ts) — and fed through `model.decoder(params).step(id)` one token at a
 * time; each sampled token is fed back. Generation stops at `<eos>` (not printed), at `maxTokens`,
 * or when `<bos>` + prompt + generated reach `max_len` tokens (the longest training sequence).
 *
 * Sampling of one token (`sampleToken`): logits / temperature → keep the top-k → softmax →
 * keep the smallest set of most likely tokens whose probability reaches top-p → renormalise →
 * draw with the seeded RNG (src/util/rng.ts, so a seed gives the same text every time).
 * temperature 0 is greedy (argmax, lowest id on ties); `<pad>` is never sampled.
 *
 * Streaming: byte-level BPE tokens can end in the middle of a UTF-8 character, so pieces are
 * emitted by decoding the whole sequence so far and releasing only the new text up to the last
 * complete character (a trailing U+FFFD from a cut character is held back until it completes).
 */
import type { LanguageModel } from '../model/api.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';

export interface SampleOptions {
  /** 0 = greedy; default 1 */
  temperature?: number;
  /** keep only the k most likely tokens; 0 = no limit */
  topK?: number;
  /** nucleus: keep the most likely tokens until their mass reaches p; 1 = no limit */
  topP?: number;
}

export interface GenerateOptions extends SampleOptions {
  maxTokens?: number;
  seed?: number;
}

/** A filtered next-token distribution: candidate ids (most likely first) and their probabilities (sum 1). */
export interface Candidates {
  ids: number[];
  probs: number[];
}

/** Argmax over logits, lowest id on ties, skipping `exclude` (e.g. `<pad>`). */
export function argmax(logits: ArrayLike<number>, exclude = -1): number {
  let best = -1, bestV = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (i === exclude) continue;
    const v = logits[i];
    if (v > bestV || best < 0) { best = i; bestV = v; }
  }
  return best;
}

/**
 * The distribution `sampleToken` draws from: temperature, then top-k, then top-p.
 * Probabilities are computed in float64. `exclude` (an id) gets probability 0.
 */
export function filterLogits(logits: ArrayLike<number>, opts: SampleOptions, exclude = -1): Candidates {
  const T = opts.temperature ?? 1;
  if (!(T > 0)) throw new Error('filterLogits: temperature must be > 0 (use argmax for greedy)');
  const V = logits.length;
  const k = opts.topK ?? 0;
  let ids: number[];
  if (k > 0 && k < V) {
    ids = topKIds(logits, k, exclude);
  } else {
    ids = [];
    for (let i = 0; i < V; i++) if (i !== exclude && !Number.isNaN(logits[i])) ids.push(i);
    // most likely first; ties by id so the order (and the draw) is deterministic
    ids.sort((a, b) => (logits[b] - logits[a]) || (a - b));
  }
  const max = logits[ids[0]];
  const probs = ids.map((i) => Math.exp((logits[i] - max) / T));
  let z = 0;
  for (const p of probs) z += p;
  for (let j = 0; j < probs.length; j++) probs[j] /= z;
  const p = opts.topP ?? 1;
  if (p < 1) {
    let mass = 0, keep = 0;
    while (keep < probs.length && mass < p) mass += probs[keep++];
    ids.length = keep;
    probs.length = keep;
    for (let j = 0; j < keep; j++) probs[j] /= mass;
  }
  return { ids, probs };
}

/**
 * The k largest logits' ids, most likely first, ties by lower id (the same order as a full sort,
 * without sorting the whole vocabulary: one pass, inserting into a k-long sorted list).
 */
function topKIds(logits: ArrayLike<number>, k: number, exclude: number): number[] {
  const ids: number[] = [];
  const vals: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (i === exclude || Number.isNaN(v)) continue;
    if (ids.length === k && v <= vals[k - 1]) continue; // not better than the k-th (equal: lower id wins)
    let j = ids.length === k ? k - 1 : ids.length;
    while (j > 0 && vals[j - 1] < v) { ids[j] = ids[j - 1]; vals[j] = vals[j - 1]; j--; }
    ids[j] = i; vals[j] = v;
  }
  return ids;
}

/** Draw the next token id from `logits` (greedy when temperature is 0). */
export function sampleToken(logits: ArrayLike<number>, opts: SampleOptions, rng: Rng, exclude = -1): number {
  if ((opts.temperature ?? 1) <= 0) return argmax(logits, exclude);
  const { ids, probs } = filterLogits(logits, opts, exclude);
  const u = rng.next();
  let c = 0;
  for (let j = 0; j < ids.length; j++) {
    c += probs[j];
    if (u < c) return ids[j];
  }
  return ids[ids.length - 1]; // u within rounding of 1
}

/** Validate sampling flags; throws a UserError naming the flag. */
export function checkSampleOptions(o: GenerateOptions): void {
  if (o.temperature !== undefined && !(o.temperature >= 0)) throw new UserError(`--temperature must be ≥ 0, got ${o.temperature}`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) throw new UserError(`--top-k must be an integer ≥ 0, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new UserError(`--top-p must be in (0, 1], got ${o.topP}`);
  if (o.maxTokens !== undefined && !(Number.isInteger(o.maxTokens) && o.maxTokens >= 0)) throw new UserError(`--max-tokens must be an integer ≥ 0, got ${o.maxTokens}`);
}

/** Generated token ids (without the prompt), one at a time. */
export function* generateIds(model: LanguageModel, params: Float32Array, tokenizer: Tokenizer, promptIds: number[], opts: GenerateOptions = {}): Generator<number> {
  checkSampleOptions(opts);
  const maxLen = model.config.max_len;
  if (promptIds.length === 0) throw new UserError('predict: empty prompt (no tokens, not even <bos>)');
  if (promptIds.length >= maxLen) throw new UserError(`predict: the prompt is ${promptIds.length} tokens; the model's context is ${maxLen}`);
  const rng = new Rng(opts.seed ?? 1);
  const maxTokens = opts.maxTokens ?? 64;
  const dec = model.decoder(params);
  try {
    let logits: Float32Array | undefined;
    for (const id of promptIds) logits = dec.step(id);
    for (let n = 0; n < maxTokens; n++) {
      const next = sampleToken(logits!, opts, rng, tokenizer.padId);
      if (next === tokenizer.eosId) return;
      yield next;
      // the whole sequence (<bos>, prompt, generated) stays within max_len tokens, like training
      if (dec.position + 1 >= maxLen) return;
      logits = dec.step(next);
    }
  } finally {
    dec.dispose();
  }
}

/**
 * Streams the generated text in pieces of complete characters (see the header). `prompt` is
 * encoded as `<bos> prompt`; the pieces do not repeat the prompt.
 */
export async function* generate(model: LanguageModel, params: Float32Array, tokenizer: Tokenizer, prompt: string, opts: GenerateOptions = {}): AsyncGenerator<string> {
  const promptIds = [tokenizer.bosId, ...tokenizer.encode(prompt)];
  const all = promptIds.slice();
  let emitted = tokenizer.decode(all).length;
  for (const id of generateIds(model, params, tokenizer, promptIds, opts)) {
    all.push(id);
    const text = tokenizer.decode(all);
    let end = text.length;
    while (end > emitted && text.charCodeAt(end - 1) === 0xfffd) end--; // incomplete character
    if (end > emitted) {
      yield text.slice(emitted, end);
      emitted = end;
    }
    // let the event loop run (stdout flushes, Ctrl-C) between tokens
    await new Promise<void>((r) => setImmediate(r));
  }
  const text = tokenizer.decode(all);
  if (text.length > emitted) yield text.slice(emitted);
}
