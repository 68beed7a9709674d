import { createHash } from 'node:crypto';
import { UserError } from '../util/errors.js';
import type { Tokenizer } from './types.js';
import { BYTE_TO_CHAR, pieceEnd, splitSpecials, tokenStringToBytes } from './bytelevel.js';
import { SpanTable } from './spantable.js';

/** A special (added) token: matched literally in the input, dropped by decode. */
export interface SpecialToken { content: string; id: number }

/** What a byte-level BPE tokenizer is made of, independent of the file format. */
export interface BpeModel {
  /** token string (byte-level characters) of every id, `vocab[id]`; specials hold their content */
  vocab: string[];
  /** merges in rank order (earliest first): pairs of token ids */
  merges: [number, number][];
  /** special tokens (`<pad>` = 0, `<bos>`, `<eos>`) */
  specials: SpecialToken[];
}

/** Pair (a, b) of ids as one number: ids stay below 2^21, so the key is an exact integer. */
const PAIR_SHIFT = 2 ** 21;
export const pairKey = (a: number, b: number): number => a * PAIR_SHIFT + b;
export const MAX_VOCAB_IDS = PAIR_SHIFT;

/** Above this many cached words the per-word cache is cleared (bounds memory on huge inputs). */
const CACHE_LIMIT = 1_000_000;

export const sha256Hex = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

/**
 * vilm's byte-level BPE encoder/decoder. Written here (not delegated to the `tokenizers` package,
 * whose encode is async and per call crosses into native code) so that data prepare can encode tens
 * of MB synchronously: pre-tokenize with the GPT-2 pattern (bytelevel.ts `pieceEnd`, a scanner
 * equivalent to the regex), then look each piece up in a per-word cache keyed by its span of the
 * text; a miss runs the merges on that piece's bytes once.
 */
export class BpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly sha256: string;
  readonly model: BpeModel;
  /** id of each raw byte's single-byte token */
  private readonly byteIds: Int32Array;
  /** pair key → merge rank (lower merges first) */
  private readonly mergeRank = new Map<number, number>();
  /** merge rank → id of the merged token */
  private readonly mergeResult: Int32Array;
  /** raw bytes of every id (empty for specials) */
  private readonly idBytes: Uint8Array[];
  private readonly isSpecial: Uint8Array;
  /** per-word cache: piece → its ids (`cacheIds[entry]`), looked up by span of the text */
  private cache = new SpanTable();
  private cacheIds: number[][] = [];

  constructor(model: BpeModel, sha256: string) {
    this.model = model;
    this.sha256 = sha256;
    this.vocabSize = model.vocab.length;
    const byName = (name: string) => {
      const s = model.specials.find((x) => x.content === name);
      if (!s) throw new UserError(`tokenizer: special token ${name} is missing`);
      return s.id;
    };
    this.padId = byName('<pad>');
    this.bosId = byName('<bos>');
    this.eosId = byName('<eos>');
    this.isSpecial = new Uint8Array(this.vocabSize);
    for (const s of model.specials) this.isSpecial[s.id] = 1;
    const index = new Map<string, number>();
    model.vocab.forEach((t, id) => { if (!this.isSpecial[id]) index.set(t, id); });
    this.idBytes = model.vocab.map((t, id) => (this.isSpecial[id] ? new Uint8Array(0) : tokenStringToBytes(t) ?? new Uint8Array(0)));
    this.byteIds = new Int32Array(256).fill(-1);
    for (let b = 0; b < 256; b++) {
      const id = index.get(BYTE_TO_CHAR[b]);
      if (id === undefined) throw new UserError(`tokenizer: byte 0x${b.toString(16).padStart(2, '0')} has no token`);
      this.byteIds[b] = id;
    }
    this.mergeResult = new Int32Array(model.merges.length);
    model.merges.forEach(([a, b], rank) => {
      const id = index.get(model.vocab[a] + model.vocab[b]);
      if (id === undefined) throw new UserError(`tokenizer: merge ${rank} (${model.vocab[a]} ${model.vocab[b]}) has no token`);
      this.mergeResult[rank] = id;
      const k = pairKey(a, b);
      if (!this.mergeRank.has(k)) this.mergeRank.set(k, rank);
    });
  }

  /** Ids of the text; no `<bos>`/`<eos>` added. Literal special-token strings map to their ids (as in `tokenizers`). */
  encode(text: string): number[] {
    const out: number[] = [];
    splitSpecials(text, this.model.specials, (t) => this.encodeOrdinary(t, out), (id) => out.push(id));
    return out;
  }

  private encodeOrdinary(text: string, out: number[]): void {
    let s = 0;
    while (s < text.length) {
      const e = pieceEnd(text, s);
      const k = this.cache.find(text, s, e);
      let ids: number[];
      if (k >= 0) ids = this.cacheIds[k];
      else {
        const piece = text.slice(s, e);
        ids = this.encodeWord(piece);
        if (this.cache.size >= CACHE_LIMIT) { this.cache = new SpanTable(); this.cacheIds = []; }
        this.cacheIds[this.cache.insert(piece)] = ids;
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]);
      s = e;
    }
  }

  /**
   * BPE on one pre-tokenized piece: start from its UTF-8 bytes, repeatedly merge the adjacent pair
   * with the lowest merge rank (its occurrences left to right). This is the same result as applying
   * the merges in training order, and as Hugging Face's BPE model. Short pieces (nearly all) rescan
   * the word per merge; long ones use a heap so a pathological piece (a 100 kB run of dashes) is
   * O(n log n), not O(n²).
   */
  encodeWord(piece: string): number[] {
    const bytes = Buffer.from(piece, 'utf8');
    return bytes.length <= 48 ? this.mergeShort(bytes) : this.mergeLong(bytes);
  }

  /** Rescan-per-merge BPE (fast for short words). Public for the tests, which compare both. */
  mergeShort(bytes: Uint8Array): number[] {
    const w: number[] = new Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) w[i] = this.byteIds[bytes[i]];
    while (w.length > 1) {
      let bestRank = -1;
      for (let i = 0; i + 1 < w.length; i++) {
        const r = this.mergeRank.get(pairKey(w[i], w[i + 1]));
        if (r !== undefined && (bestRank < 0 || r < bestRank)) bestRank = r;
      }
      if (bestRank < 0) break;
      const [a, b] = this.model.merges[bestRank];
      const merged = this.mergeResult[bestRank];
      let j = 0;
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) { w[j++] = merged; i++; }
        else w[j++] = w[i];
      }
      w.length = j;
    }
    return w;
  }

  /**
   * Heap BPE: symbols in a linked list, candidate pairs in a min-heap keyed (rank, position), so the
   * lowest-ranked pair is merged first and, within a rank, the leftmost. Entries that went stale
   * (a neighbour merged away) are skipped when popped. Public for the tests.
   */
  mergeLong(bytes: Uint8Array): number[] {
    const n = bytes.length;
    const id = new Int32Array(n), next = new Int32Array(n), prev = new Int32Array(n);
    for (let i = 0; i < n; i++) { id[i] = this.byteIds[bytes[i]]; next[i] = i + 1; prev[i] = i - 1; }
    const POS = 2 ** 26; // key = rank * 2^26 + position (pieces are far below 64 M bytes)
    const heap: number[] = [];
    const push = (k: number) => {
      heap.push(k);
      let i = heap.length - 1;
      while (i > 0) { const p = (i - 1) >> 1; if (heap[p] <= k) break; heap[i] = heap[p]; i = p; }
      heap[i] = k;
    };
    const pop = (): number => {
      const top = heap[0], last = heap.pop()!;
      if (heap.length > 0) {
        let i = 0;
        for (;;) {
          const l = 2 * i + 1, r = l + 1;
          let m = l < heap.length && heap[l] < last ? l : -1;
          if (r < heap.length && heap[r] < (m < 0 ? last : heap[m])) m = r;
          if (m < 0) break;
          heap[i] = heap[m]; i = m;
        }
        heap[i] = last;
      }
      return top;
    };
    const candidate = (pos: number) => {
      const nx = next[pos];
      if (nx >= n) return;
      const r = this.mergeRank.get(pairKey(id[pos], id[nx]));
      if (r !== undefined) push(r * POS + pos);
    };
    for (let i = 0; i + 1 < n; i++) candidate(i);
    while (heap.length > 0) {
      const k = pop();
      const rank = Math.floor(k / POS), pos = k - rank * POS;
      if (id[pos] < 0) continue; // merged into its left neighbour
      const nx = next[pos];
      if (nx >= n || this.mergeRank.get(pairKey(id[pos], id[nx])) !== rank) continue; // stale
      id[pos] = this.mergeResult[rank];
      id[nx] = -1;
      next[pos] = next[nx];
      if (next[nx] < n) prev[next[nx]] = pos;
      if (prev[pos] >= 0) candidate(prev[pos]);
      candidate(pos);
    }
    const out: number[] = [];
    for (let i = 0; i < n; i = next[i]) out.push(id[i]);
    return out;
  }

  /** Text of the ids (special tokens dropped); bytes that are not valid UTF-8 become U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    let n = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new UserError(`decode: token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
      n += this.idBytes[id].length;
    }
    const buf = Buffer.allocUnsafe(n);
    let o = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.idBytes[ids[i]];
      buf.set(b, o);
      o += b.length;
    }
    return buf.toString('utf8');
  }
}
