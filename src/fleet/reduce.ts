/**
 * Exact reduction of micro-shard gradient sums.
 *
 * A step's global batch has R rows. It is cut into M = `train.micro_shards` fixed micro-shards by
 * row: shard i holds rows [⌊i·R/M⌋, ⌊(i+1)·R/M⌋). Each shard's gradient SUM is computed by some
 * worker, and the step gradient is the sum of the shards added in ONE fixed binary tree over the
 * shard index, divided by the batch's token count. Floating-point addition is not associative, so
 * fixing the tree (not the worker count, transport or assignment) is what makes every run produce
 * the same bytes.
 *
 * The tree (its geometry: ./shard-tree.ts). Pad M to P = 2^⌈log2 M⌉. Node (level j, index k)
 * covers shards [k·2^j, (k+1)·2^j). A node is ABSENT when it holds no shard with rows: it starts at
 * or beyond M, or all its shards are empty (R < M). Combining two children: absent ⊕ x = x (no addition at all, so no −0 → +0
 * rewrite); x ⊕ y = elementwise float32 x + y. The root (level log2 P, index 0) is the batch sum.
 *
 * A TASK is one aligned subtree (j, k) with k·2^j < M. The worker that runs it computes every shard
 * in it and pre-adds them with this same tree, so it sends one gradient; the coordinator then only
 * combines the upper levels. Because each node's value depends only on its leaves and the fixed
 * tree, it does not matter which worker computed which subtree.
 *
 * Sparse embedding rows. The embedding gradient travels as sorted unique rows (ids + [n, d] values)
 * and is added with the same tree. To be bit-identical to adding the dense [V, d] blocks (where an
 * untouched row is +0), a row present on one side only becomes `x + 0` (which turns −0 into +0, as
 * the dense addition would), a row present on both sides `x + y`. The final dense gradient scatters
 * the rows into a +0-filled block.
 *
 * Within a shard, the model may be called on several chunks (rows bounded by
 * `max_micro_batch_tokens`): chunk results are combined left to right with the same ⊕. The chunking
 * depends only on the shard, so this too is independent of who computes it.
 *
 * With the 16-bit codec (`train.grad_codec: fp16`, ./grad-codec.ts) every node is also ROUNDED
 * after it is formed: a leaf once its chunks are added, an inner node after x ⊕ y (absent ⊕ x = x is
 * not re-rounded: x already is). The rule `NodeRule` carries d_model and the rounding (or none).
 */
import type { Layout } from '../model/layout.js';
import type { SparseRows } from '../model/types.js';
import type { ResultMsg } from './contract.js';
import { restSegments, roundNode, type GradCodecName } from './grad-codec.js';
import { blockKey, childBlocks, covered, isAbsent, parentBlock, rootBlock, type Block } from './shard-tree.js';

/** A (partial) gradient sum over some shards: the embedding as sparse rows, the rest dense. */
export interface GradSum {
  lossSum: number;
  tokenCount: number;
  /** every parameter after the embedding block: `layout.total − vocab·d_model` floats */
  rest: Float32Array;
  /** embedding gradient rows, [rows.length, d_model], rows ascending and unique */
  emb: SparseRows;
  /** with the fp16 codec: the scale exponents the node was rounded with, [embedding, rest tensors…] */
  exps?: Int32Array;
}

/** How tree nodes are formed: the embedding width, and the rounding of every node (null: fp32, none). */
export interface NodeRule {
  d: number;
  round: ((s: GradSum) => void) | null;
}

/** The node rule of a model layout under a gradient codec. */
export function nodeRule(layout: Layout, d: number, codec: GradCodecName): NodeRule {
  if (codec === 'fp32') return { d, round: null };
  const segments = restSegments(layout);
  return { d, round: (s) => { s.exps = roundNode(s.emb.values, s.rest, segments); } };
}

// ---------------------------------------------------------------------------------------------
// Addition with the tree's semantics

/** Sparse rows a ⊕ b, bit-identical to adding the dense blocks (see the file comment). */
export function addSparse(a: SparseRows, b: SparseRows, d: number): SparseRows {
  const na = a.rows.length, nb = b.rows.length;
  // count the union first (both inputs are sorted and unique)
  let n = 0;
  for (let i = 0, j = 0; i < na || j < nb; n++) {
    if (j >= nb || (i < na && a.rows[i] < b.rows[j])) i++;
    else if (i >= na || b.rows[j] < a.rows[i]) j++;
    else { i++; j++; }
  }
  const rows = new Int32Array(n);
  const values = new Float32Array(n * d);
  let o = 0;
  for (let i = 0, j = 0; i < na || j < nb; o++) {
    const src = o * d;
    if (j >= nb || (i < na && a.rows[i] < b.rows[j])) {
      rows[o] = a.rows[i];
      for (let c = 0, s = i * d; c < d; c++) values[src + c] = a.values[s + c] + 0;
      i++;
    } else if (i >= na || b.rows[j] < a.rows[i]) {
      rows[o] = b.rows[j];
      for (let c = 0, s = j * d; c < d; c++) values[src + c] = b.values[s + c] + 0;
      j++;
    } else {
      rows[o] = a.rows[i];
      for (let c = 0, sa = i * d, sb = j * d; c < d; c++) values[src + c] = a.values[sa + c] + b.values[sb + c];
      i++; j++;
    }
  }
  return { rows, values };
}

/**
 * a ⊕ b where null is an absent node, rounded by `round` when both are present (the tree's node
 * rule). Reuses `a.rest` as the output buffer (a is consumed).
 */
export function combine(a: GradSum | null, b: GradSum | null, d: number, round: NodeRule['round'] = null): GradSum | null {
  if (a === null) return b;
  if (b === null) return a;
  if (a.rest.length !== b.rest.length) throw new Error(`combine: rest sizes ${a.rest.length} vs ${b.rest.length}`);
  const ra = a.rest, rb = b.rest;
  // float32 + float32 computed in float64 and rounded once is the correctly rounded float32 sum
  for (let i = 0; i < ra.length; i++) ra[i] = ra[i] + rb[i];
  const sum: GradSum = {
    lossSum: a.lossSum + b.lossSum,
    tokenCount: a.tokenCount + b.tokenCount,
    rest: ra,
    emb: addSparse(a.emb, b.emb, d),
  };
  round?.(sum);
  return sum;
}

/**
 * Value of the tree node `b` over m shards. `get(node)` returns a known value for a node (a leaf,
 * or a subtree a worker already reduced; null = absent) or undefined to recurse into the children.
 * A leaf with no value is an error (the caller must have all shards covered).
 */
export function reduceNode(b: Block, m: number, rule: NodeRule, get: (b: Block) => GradSum | null | undefined): GradSum | null {
  if (isAbsent(b, m)) return null;
  const known = get(b);
  if (known !== undefined) return known;
  if (b.level === 0) throw new Error(`reduce: shard ${b.index} has no result`);
  const [l, r] = childBlocks(b);
  const left = reduceNode(l, m, rule, get);
  const right = reduceNode(r, m, rule, get);
  return combine(left, right, rule.d, rule.round);
}

/**
 * The coordinator's side of one step's reduction: block sums arrive in any order, and as soon as
 * both children of a node are in they are added (in the fixed tree order, so the bytes are the
 * same) while the stragglers still compute. `root()` adds whatever is left.
 */
export class TreeAccumulator {
  private readonly known = new Map<string, GradSum | null>();
  private readonly top: Block;

  constructor(private readonly m: number, private readonly rule: NodeRule) {
    this.top = rootBlock(m);
  }

  /** Whether the results in hand cover every shard of `b`. */
  covers(b: Block): boolean {
    return covered(b, this.m, (x) => this.known.has(blockKey(x)));
  }

  /** Whether every shard of the step is covered. */
  get complete(): boolean { return this.covers(this.top); }

  /** Add the sum of block `b` (null: the block had no rows); ignored when already covered. */
  add(b: Block, sum: GradSum | null): void {
    if (this.covers(b)) return;
    this.known.set(blockKey(b), sum);
    let cur = b;
    while (cur.level < this.top.level) {
      const parent = parentBlock(cur);
      if (this.known.has(blockKey(parent))) return;
      const [left, right] = childBlocks(parent);
      const l = this.known.get(blockKey(left)), r = isAbsent(right, this.m) ? null : this.known.get(blockKey(right));
      if (l === undefined || r === undefined) return;
      this.known.set(blockKey(parent), combine(l, r, this.rule.d, this.rule.round));
      this.known.delete(blockKey(left));
      this.known.delete(blockKey(right));
      cur = parent;
    }
  }

  /** The batch's gradient sum (null: no rows at all). Throws when a shard has no result. */
  root(): GradSum | null {
    return reduceNode(this.top, this.m, this.rule, (b) => this.known.get(blockKey(b)));
  }
}

/** A worker's result as a block sum (null when the block had no rows). */
export function resultToGradSum(r: ResultMsg): GradSum | null {
  if (r.empty) return null;
  const s: GradSum = { lossSum: r.lossSum, tokenCount: r.tokenCount, rest: r.rest, emb: { rows: r.embRows, values: r.embValues } };
  if (r.exps.length > 0) s.exps = r.exps;
  return s;
}

/**
 * The step gradient from the root sum: a full `total`-float vector, the embedding rows scattered
 * into a +0 block, everything divided by the token count (float64 division, rounded to float32).
 */
export function finalizeGradient(root: GradSum, vocab: number, d: number, out?: Float32Array): Float32Array {
  const e = vocab * d;
  const total = e + root.rest.length;
  const g = out ?? new Float32Array(total);
  if (g.length !== total) throw new Error(`finalizeGradient: out has ${g.length} floats, expected ${total}`);
  if (out) g.fill(0, 0, e);
  const t = root.tokenCount;
  if (!(t > 0)) throw new Error('finalizeGradient: batch has no target tokens');
  const { rows, values } = root.emb;
  for (let r = 0; r < rows.length; r++) {
    const dst = rows[r] * d, src = r * d;
    for (let c = 0; c < d; c++) g[dst + c] = values[src + c] / t;
  }
  const rest = root.rest;
  for (let i = 0; i < rest.length; i++) g[e + i] = rest[i] / t;
  return g;
}
