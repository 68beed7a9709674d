/**
 * Byte-level BPE training. Written here because the `tokenizers` npm package's `train()` takes no
 * trainer options (it always trains 30,000 tokens), and we need an exact vocabulary size.
 *
 * 1. Count words: every text is split on special tokens and pre-tokenized with the GPT-2 pattern (bytelevel.ts pieceEnd);
 *    each distinct piece ("word") is kept once with its frequency.
 * 2. Each word starts as its UTF-8 bytes (ids 3..258). Count every adjacent pair, weighted by the
 *    word's frequency, and remember which words contain each pair.
 * 3. Repeat until the vocabulary is full: take the most frequent pair (ties: the smaller first id,
 *    then the smaller second id — so training is deterministic), give the merged token the next id,
 *    rewrite only the words that contain the pair, and update the pair counts incrementally
 *    (subtract the word's old pairs, add its new ones). The best pair comes from a lazy max-heap:
 *    counts of existing pairs only ever go down, so a popped entry whose count is stale is pushed
 *    back with its current count, and pairs made with the new token are pushed once per merge.
 */
import { UserError } from '../util/errors.js';
import { BYTE_TO_CHAR, pieceEnd, splitSpecials } from './bytelevel.js';
import { SpanTable } from './spantable.js';
import { pairKey, MAX_VOCAB_IDS, type BpeModel, type SpecialToken } from './bpe.js';
import { SPECIAL_TOKENS } from './json.js';

/** Id of the first byte token; the specials take 0, 1, 2. */
export const FIRST_BYTE_ID = SPECIAL_TOKENS.length;
/** Smallest possible vocabulary: the specials and the 256 bytes, no merges. */
export const MIN_VOCAB_SIZE = FIRST_BYTE_ID + 256;
/** Token files store ids as uint16. */
export const MAX_VOCAB_SIZE = 65_536;

export interface TrainOptions {
  /** exact vocabulary size, specials included */
  vocabSize: number;
  /** called now and then while counting words (texts seen so far) and merging (merges done) */
  onProgress?: (phase: 'count' | 'merge', done: number) => void;
}

export interface TrainStats {
  texts: number;
  /** UTF-16 code units read */
  characters: number;
  /** UTF-8 bytes read */
  bytes: number;
  /** pre-tokenized pieces */
  words: number;
  uniqueWords: number;
  merges: number;
  /** tokens the trained tokenizer encodes the training text into (bytes / tokens = compression) */
  tokens: number;
  countSeconds: number;
  mergeSeconds: number;
}

/** Min-heap order on (−count, key): the top is the most frequent pair, ties to the smaller key. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];
  get size(): number { return this.counts.length; }
  private above(i: number, j: number): boolean {
    const ci = this.counts[i], cj = this.counts[j];
    return ci > cj || (ci === cj && this.keys[i] < this.keys[j]);
  }
  private swap(i: number, j: number): void {
    const c = this.counts[i]; this.counts[i] = this.counts[j]; this.counts[j] = c;
    const k = this.keys[i]; this.keys[i] = this.keys[j]; this.keys[j] = k;
  }
  push(count: number, key: number): void {
    this.counts.push(count); this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p); i = p;
    }
  }
  /** Remove the top; returns [count, key]. */
  pop(): [number, number] {
    const top: [number, number] = [this.counts[0], this.keys[0]];
    const lastC = this.counts.pop()!, lastK = this.keys.pop()!;
    const n = this.counts.length;
    if (n > 0) {
      this.counts[0] = lastC; this.keys[0] = lastK;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < n && this.above(l, m)) m = l;
        if (r < n && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m); i = m;
      }
    }
    return top;
  }
}

/** Count pre-tokenized words over all texts: the distinct words and their frequencies. */
async function countWords(texts: AsyncIterable<string> | Iterable<string>, specials: SpecialToken[], opts: TrainOptions, stats: TrainStats): Promise<{ words: string[]; counts: number[] }> {
  const table = new SpanTable(); // word → entry, looked up by span (no substring for a known word)
  const counts: number[] = [];
  const onText = (t: string) => {
    let s = 0;
    while (s < t.length) {
      const e = pieceEnd(t, s);
      const k = table.find(t, s, e);
      if (k >= 0) counts[k]++;
      else counts[table.insert(t.slice(s, e))] = 1;
      stats.words++;
      s = e;
    }
  };
  const onSpecial = () => { stats.tokens++; };
  for await (const text of texts) {
    if (typeof text !== 'string') throw new UserError(`tokenizer train: text ${stats.texts + 1} is not a string`);
    stats.texts++;
    stats.characters += text.length;
    stats.bytes += Buffer.byteLength(text, 'utf8');
    splitSpecials(text, specials, onText, onSpecial);
    if (opts.onProgress && stats.texts % 1000 === 0) opts.onProgress('count', stats.texts);
  }
  return { words: table.keys, counts };
}

/** Train a byte-level BPE model with exactly `opts.vocabSize` tokens (specials included). */
export async function trainModel(texts: AsyncIterable<string> | Iterable<string>, opts: TrainOptions): Promise<{ model: BpeModel; stats: TrainStats }> {
  const V = opts.vocabSize;
  if (!Number.isInteger(V) || V < MIN_VOCAB_SIZE || V > MAX_VOCAB_SIZE) {
    throw new UserError(`--vocab-size: must be an integer in [${MIN_VOCAB_SIZE}, ${MAX_VOCAB_SIZE}] (3 specials + 256 bytes + merges; ids are stored as uint16), got ${V}`);
  }
  const specials: SpecialToken[] = SPECIAL_TOKENS.map((content, id) => ({ content, id }));
  const stats: TrainStats = { texts: 0, characters: 0, bytes: 0, words: 0, uniqueWords: 0, merges: 0, tokens: 0, countSeconds: 0, mergeSeconds: 0 };
  const t0 = performance.now();
  const wordCounts = await countWords(texts, specials, opts, stats);
  stats.uniqueWords = wordCounts.words.length;
  const t1 = performance.now();
  stats.countSeconds = (t1 - t0) / 1000;

  // the vocabulary so far: specials, then one token per byte
  const vocab: string[] = [...SPECIAL_TOKENS];
  for (let b = 0; b < 256; b++) vocab.push(BYTE_TO_CHAR[b]);

  // words as id sequences, with frequencies
  const words: number[][] = [];
  const freq: number[] = [];
  for (let k = 0; k < wordCounts.words.length; k++) {
    const w = wordCounts.words[k], f = wordCounts.counts[k];
    const bytes = Buffer.from(w, 'utf8');
    if (bytes.length < 2) { stats.tokens += f; continue; } // a one-byte word has no pairs
    const ids = new Array<number>(bytes.length);
    for (let i = 0; i < bytes.length; i++) ids[i] = FIRST_BYTE_ID + bytes[i];
    words.push(ids);
    freq.push(f);
  }

  // pair counts and where each pair occurs (word indices; may hold stale entries and duplicates,
  // checked when used)
  const pairCount = new Map<number, number>();
  const where = new Map<number, number[]>();
  const addWhere = (k: number, wi: number) => {
    const list = where.get(k);
    if (list === undefined) where.set(k, [wi]);
    else if (list[list.length - 1] !== wi) list.push(wi);
  };
  for (let wi = 0; wi < words.length; wi++) {
    const w = words[wi], f = freq[wi];
    for (let i = 0; i + 1 < w.length; i++) {
      const k = pairKey(w[i], w[i + 1]);
      pairCount.set(k, (pairCount.get(k) ?? 0) + f);
      addWhere(k, wi);
    }
  }
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  const merges: [number, number][] = [];
  const needed = V - vocab.length;
  const visited = new Int32Array(words.length).fill(-1);
  const newPairs = new Set<number>();
  while (merges.length < needed) {
    // best pair with an up-to-date count
    let key = -1;
    while (heap.size > 0) {
      const [c, k] = heap.pop();
      const cur = pairCount.get(k) ?? 0;
      if (cur === 0) continue;
      if (cur !== c) { heap.push(cur, k); continue; }
      key = k;
      break;
    }
    if (key < 0) {
      const max = vocab.length;
      throw new UserError(
        `tokenizer train: the corpus can give at most ${max} tokens (3 specials + 256 bytes + ${max - MIN_VOCAB_SIZE} merges) — ` +
        `asked for --vocab-size ${V}; use more text or --vocab-size ≤ ${max}`,
      );
    }
    const a = Math.floor(key / MAX_VOCAB_IDS), b = key % MAX_VOCAB_IDS;
    const id = vocab.length;
    vocab.push(vocab[a] + vocab[b]);
    merges.push([a, b]);
    const m = merges.length;
    newPairs.clear();
    const list = where.get(key) ?? [];
    where.delete(key);
    for (const wi of list) {
      if (visited[wi] === m) continue;
      visited[wi] = m;
      const w = words[wi], f = freq[wi];
      let has = false;
      for (let i = 0; i + 1 < w.length; i++) if (w[i] === a && w[i + 1] === b) { has = true; break; }
      if (!has) continue; // stale entry: an earlier merge already rewrote this spot
      // remove the word's old pairs
      for (let i = 0; i + 1 < w.length; i++) {
        const k = pairKey(w[i], w[i + 1]);
        const c = pairCount.get(k)! - f;
        if (c === 0) pairCount.delete(k); else pairCount.set(k, c);
      }
      // merge in place: non-overlapping occurrences, left to right
      let j = 0;
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) { w[j++] = id; i++; }
        else w[j++] = w[i];
      }
      w.length = j;
      // add its new pairs; pairs with the new token are new, the rest were listed already
      for (let i = 0; i + 1 < w.length; i++) {
        const k = pairKey(w[i], w[i + 1]);
        pairCount.set(k, (pairCount.get(k) ?? 0) + f);
        if (w[i] === id || w[i + 1] === id) { newPairs.add(k); addWhere(k, wi); }
      }
    }
    for (const k of newPairs) {
      const c = pairCount.get(k);
      if (c !== undefined && c > 0) heap.push(c, k);
    }
    if (opts.onProgress && m % 500 === 0) opts.onProgress('merge', m);
  }
  stats.merges = merges.length;
  // each word is now exactly its encoding (merges applied in order)
  for (let wi = 0; wi < words.length; wi++) stats.tokens += words[wi].length * freq[wi];
  stats.mergeSeconds = (performance.now() - t1) / 1000;
  return { model: { vocab, merges, specials }, stats };
}
