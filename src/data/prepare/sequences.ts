import type { BoundaryKind } from './segment.js';

/**
 * Turning one document's token ids into training sequences.
 *
 * Each sequence is `<bos> text…` and, only where the document really ends, `<eos>`. A sequence that
 * stops in the middle of a document (at a paragraph or sentence end) has NO `<eos>`: `<eos>` means
 * "the document is over", and teaching the model to emit it at every 250-token cut would teach it
 * to stop mid-article. The next sequence starts with `<bos>` again (the model sees a fresh context,
 * which is what it will be given at inference time).
 *
 * Padding waste: each sequence is padded up to the next bucket length. The cut points are chosen by
 * dynamic programming over the unit boundaries to minimise the padded positions of the whole
 * document (so long documents are filled to the largest bucket and the ragged remainder is balanced
 * against bucket edges), with fewer sequences and then paragraph-before-sentence cuts as tie-breaks.
 */
export interface PackOptions {
  /** most tokens in one sequence, `<bos>`/`<eos>` included (≤ the largest bucket) */
  limit: number;
  /** ascending bucket lengths */
  buckets: number[];
  bosId: number;
  eosId: number;
}

export interface Unit {
  ids: number[];
  end: BoundaryKind;
}

/** How much a cut of each kind costs as the last tie-break (paragraph ends are the best cuts). */
const CUT_PENALTY: Record<BoundaryKind | 'hard', number> = { end: 0, paragraph: 0, sentence: 1, hard: 4 };

/** The smallest bucket ≥ len (buckets ascending); -1 when none is. */
export function bucketFor(len: number, buckets: readonly number[]): number {
  for (const b of buckets) if (b >= len) return b;
  return -1;
}

/**
 * Cut a document (its units' ids, in order) into sequences with `<bos>`/`<eos>` as described above.
 * Units longer than `limit - 2` (a single over-long sentence) are cut hard into pieces first.
 */
export function packDocument(units: readonly Unit[], opt: PackOptions): number[][] {
  const cap = opt.limit - 2;
  if (cap < 1) throw new Error(`packDocument: limit ${opt.limit} leaves no room for text`);
  // pieces: units with a hard cut inside over-long ones
  const ids: number[][] = [];
  const cutKind: (BoundaryKind | 'hard')[] = [];
  for (const u of units) {
    if (u.ids.length === 0) continue;
    for (let s = 0; s < u.ids.length; s += cap) {
      const e = Math.min(u.ids.length, s + cap);
      ids.push(u.ids.slice(s, e));
      cutKind.push(e < u.ids.length ? 'hard' : u.end);
    }
  }
  const n = ids.length;
  if (n === 0) return [];
  const prefix = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) prefix[i + 1] = prefix[i] + ids[i].length;

  // best[j]: cheapest packing of pieces [0, j); compared as (positions, sequences, cut penalty)
  const positions = new Float64Array(n + 1).fill(Infinity);
  const seqs = new Float64Array(n + 1);
  const penalty = new Float64Array(n + 1);
  const from = new Int32Array(n + 1);
  positions[0] = 0;
  for (let j = 1; j <= n; j++) {
    const eos = j === n ? 1 : 0;
    const cutCost = j === n ? 0 : CUT_PENALTY[cutKind[j - 1]];
    for (let i = j - 1; i >= 0; i--) {
      const len = 1 + (prefix[j] - prefix[i]) + eos;
      if (len > opt.limit) break; // longer spans only get longer
      const b = bucketFor(len, opt.buckets);
      const p = positions[i] + b, s = seqs[i] + 1, c = penalty[i] + cutCost;
      if (p < positions[j] || (p === positions[j] && (s < seqs[j] || (s === seqs[j] && c < penalty[j])))) {
        positions[j] = p; seqs[j] = s; penalty[j] = c; from[j] = i;
      }
    }
  }
  // walk back the chosen cuts
  const spans: [number, number][] = [];
  for (let j = n; j > 0; j = from[j]) spans.push([from[j], j]);
  spans.reverse();
  return spans.map(([i, j]) => {
    const seq: number[] = [opt.bosId];
    for (let k = i; k < j; k++) for (const t of ids[k]) seq.push(t);
    if (j === n) seq.push(opt.eosId);
    return seq;
  });
}

/**
 * The baseline the benchmark compares against: fill each sequence with as many whole units as fit,
 * left to right (same hard cuts, same `<bos>`/`<eos>` rules), no look-ahead at bucket edges.
 */
export function packGreedy(units: readonly Unit[], opt: PackOptions): number[][] {
  const cap = opt.limit - 2;
  const pieces: number[][] = [];
  for (const u of units) for (let s = 0; s < u.ids.length; s += cap) pieces.push(u.ids.slice(s, s + cap));
  const out: number[][] = [];
  let cur: number[] = [opt.bosId];
  pieces.forEach((p, i) => {
    const last = i === pieces.length - 1;
    if (cur.length + p.length + (last ? 1 : 0) > opt.limit) { out.push(cur); cur = [opt.bosId]; }
    for (const t of p) cur.push(t);
  });
  if (pieces.length > 0) { cur.push(opt.eosId); out.push(cur); }
  return out;
}
