/**
 * Text generation with the model's KV-cached decoder and seeded sampling.
 *
 *   import { generate } from '../train/generate.js';
 *   for await (const piece of generate(model, params, tokenizer, 'Việt Nam là', { maxTokens: 64, seed: 1 }))
 *     process.stdout.write(piece);
 *
 * The prompt is encoded as `<bos> prompt` — exactly how every training sequence starts (see
 * src/data/prepare/sequences.ts) — and fed through `model.decoder(params).step(id)` one token at a
 * time; each sampled token is fed back. Generation stops at `<eos>` (not printed) or after
 * `maxTokens` tokens.
 *
 * Context: a prompt longer than the model's context (`max_len`, counting `<bos>` and leaving room
 * for one generated token) is cut from the left by `fitPrompt` (`<bos>` + its last max_len − 2
 * tokens; `vilm predict` says so on stderr). When `<bos>` + context + generated reach `max_len`,
 * the window slides: a fresh decoder is fed `<bos>` + the last ⌊max_len/2⌋ tokens (a re-prefill:
 * the KV cache holds absolute RoPE positions and cannot be shifted), and generation goes on. This
 * is how the model saw long documents in training (each sequence restarts with `<bos>` mid
 * document), so `maxTokens` is not bounded by `max_len`; the model just never sees more than
 * `max_len` tokens back. The re-prefill costs about one extra step per generated token past the
 * first window.
 *
 * Sampling of one token (`sampleToken`): logits / temperature → keep the top-k → softmax →
 * keep the smallest set of most likely tokens whose probability reaches top-p → renormalise →
 * draw with the seeded RNG (src/util/rng.ts, so a seed gives the same text every time).
 * Temperature 0 is greedy: always the argmax (lowest id on ties), so the text is deterministic and
 * the seed, top-k and top-p play no part. `<pad>` is never sampled.
 *
 * `nextTokens` is the "predict the next word" view: the N most likely next tokens after the prompt
 * with their probabilities under the plain softmax (temperature 1, no top-k/top-p).
 *
 * Streaming: byte-level BPE tokens can end in the middle of a UTF-8 character, so the generated
 * tokens' bytes go through `Utf8TokenStream` (src/train/utf8-stream.ts, Node's StringDecoder):
 * a piece is only complete characters, an incomplete trailing sequence is held back until the next
 * token completes it, and one still incomplete when generation stops is dropped (never printed as
 * U+FFFD). Bytes that can never form a character mid-stream are shown as U+FFFD, as `decode` does.
 */
import type { LanguageModel } from '../model/api.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import { Utf8TokenStream } from './utf8-stream.js';

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

/** A prompt fitted to the model's context: `ids` = `<bos>` + the last `kept` of its `tokens` tokens. */
export interface PromptFit {
  ids: number[];
  /** tokens of the prompt text (without `<bos>`) */
  tokens: number;
  /** how many of them were kept (the last ones); `kept < tokens` when the prompt was cut */
  kept: number;
  /** the model's context, max_len */
  maxLen: number;
}

/**
 * `<bos>` + the prompt's token ids, cut from the left so that at least one generated token still
 * fits in `maxLen` (so at most maxLen − 2 prompt tokens are kept).
 */
export function fitPrompt(textIds: readonly number[], bosId: number, maxLen: number): PromptFit {
  if (!(Number.isInteger(maxLen) && maxLen >= 2)) throw new Error(`fitPrompt: max_len ${maxLen} leaves no room for a prompt and a token`);
  const kept = Math.min(textIds.length, maxLen - 2);
  return { ids: [bosId, ...textIds.slice(textIds.length - kept)], tokens: textIds.length, kept, maxLen };
}

/** The note `vilm predict` prints when `fitPrompt` cut the prompt; undefined when it did not. */
export function promptCutNote(fit: PromptFit): string | undefined {
  if (fit.kept >= fit.tokens) return undefined;
  return `prompt is ${fit.tokens} tokens; kept the last ${fit.kept} (the model's context is ${fit.maxLen}, with <bos> and room for one new token)`;
}

/**
 * Generated token ids (without the prompt), one at a time. `promptIds` starts with `<bos>` and
 * fits the context (see `fitPrompt`); past max_len the window slides (see the header).
 */
export function* generateIds(model: LanguageModel, params: Float32Array, tokenizer: Tokenizer, promptIds: readonly number[], opts: GenerateOptions = {}): Generator<number> {
  checkSampleOptions(opts);
  const maxLen = model.config.max_len;
  if (promptIds.length === 0) throw new UserError('predict: empty prompt (no tokens, not even <bos>)');
  if (promptIds.length >= maxLen) throw new UserError(`predict: the prompt is ${promptIds.length} tokens; the model's context is ${maxLen} (cut it with fitPrompt)`);
  const rng = new Rng(opts.seed ?? 1);
  const maxTokens = opts.maxTokens ?? 64;
  if (maxTokens === 0) return;
  // the text so far without the leading <bos>: what a slid window is refilled from
  const text = promptIds[0] === tokenizer.bosId ? promptIds.slice(1) : promptIds.slice();
  const keepOnSlide = Math.max(1, Math.min(Math.floor(maxLen / 2), maxLen - 2));
  let dec = model.decoder(params);
  try {
    let logits: Float32Array | undefined;
    for (const id of promptIds) logits = dec.step(id);
    for (let n = 0; ; n++) {
      const next = sampleToken(logits!, opts, rng, tokenizer.padId);
      if (next === tokenizer.eosId) return;
      yield next;
      if (n + 1 >= maxTokens) return;
      text.push(next);
      if (dec.position + 1 >= maxLen) {
        // `next` would sit at position max_len − 1, whose logits predict past the context: slide
        dec.dispose();
        dec = model.decoder(params);
        dec.step(tokenizer.bosId);
        for (let i = text.length - keepOnSlide; i < text.length - 1; i++) dec.step(text[i]);
      }
      logits = dec.step(next);
    }
  } finally {
    dec.dispose();
  }
}

/**
 * Streams the generated text in pieces of complete characters (see the header). A string prompt is
 * encoded as `<bos> prompt` and cut from the left to fit (`fitPrompt`; call it yourself to report a
 * cut); ids are used as given (`<bos>` first). The pieces do not repeat the prompt.
 */
export async function* generate(model: LanguageModel, params: Float32Array, tokenizer: Tokenizer, prompt: string | readonly number[], opts: GenerateOptions = {}): AsyncGenerator<string> {
  const promptIds = typeof prompt === 'string' ? fitPrompt(tokenizer.encode(prompt), tokenizer.bosId, model.config.max_len).ids : prompt;
  const stream = new Utf8TokenStream(tokenizer);
  for (const id of generateIds(model, params, tokenizer, promptIds, opts)) {
    const piece = stream.push(id);
    if (piece !== '') yield piece;
    // let the event loop run (stdout flushes, Ctrl-C) between tokens
    await new Promise<void>((r) => setImmediate(r));
  }
  stream.end(); // an incomplete last character is dropped
}

/** One entry of `nextTokens`. */
export interface NextToken {
  id: number;
  /** probability under softmax(logits) at temperature 1 (`<pad>` excluded) */
  prob: number;
}

/**
 * The `n` most likely next tokens after `promptIds` (`<bos>` first, fitting the context) with their
 * probabilities: the model's plain distribution — temperature 1, no top-k/top-p — most likely
 * first, ties by lower id.
 */
export function nextTokens(model: LanguageModel, params: Float32Array, tokenizer: Tokenizer, promptIds: readonly number[], n: number): NextToken[] {
  if (!(Number.isInteger(n) && n >= 1)) throw new UserError(`--top-next must be an integer ≥ 1, got ${n}`);
  if (promptIds.length === 0) throw new UserError('predict: empty prompt (no tokens, not even <bos>)');
  if (promptIds.length >= model.config.max_len) throw new UserError(`predict: the prompt is ${promptIds.length} tokens; the model's context is ${model.config.max_len} (cut it with fitPrompt)`);
  const dec = model.decoder(params);
  try {
    let logits: Float32Array | undefined;
    for (const id of promptIds) logits = dec.step(id);
    const { ids, probs } = filterLogits(logits!, { temperature: 1, topK: 0, topP: 1 }, tokenizer.padId);
    return ids.slice(0, n).map((id, i) => ({ id, prob: probs[i] }));
  } finally {
    dec.dispose();
  }
}
