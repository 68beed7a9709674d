/**
 * The code every worker runs to compute a task (in-process, in a thread, or behind a WebSocket):
 * the gradient sum of each micro-shard of the task's block, pre-added with the fixed tree
 * (../reduce.ts), so the result is the same bytes whoever computes it.
 */
import type { LanguageModel } from '../../model/api.js';
import type { GradResult, TokenBatch } from '../../model/types.js';
import type { ResultMsg, TaskMsg } from '../contract.js';
import { combine, nodeRule, reduceNode, type GradSum } from '../reduce.js';
import { blockShards, shardRange, type Block } from '../shard-tree.js';

/** A chunk of a task: rows [r0, r1) of the step's batch, in leaf `leaf`; `last`: the leaf's last chunk. */
export interface Chunk { leaf: number; r0: number; r1: number; last: boolean }

/**
 * The model calls of leaves [s0, s1) of a batch of `batchRows` rows of `seqLen` tokens cut into
 * `shards` leaves: each leaf in row chunks of ≤ maxTokens tokens (a leaf's gradient sum is its
 * chunks' gradients added left to right), and consecutive chunks, across leaves, grouped into calls
 * of ≤ maxTokens tokens. Each chunk's gradient is its own whatever the grouping (the model
 * computes a group's chunks as segments of one pass), so the grouping is only about speed.
 */
export function taskCalls(batchRows: number, shards: number, s0: number, s1: number, seqLen: number, maxTokens: number): Chunk[][] {
  const chunkRows = Math.max(1, Math.floor(maxTokens / seqLen));
  const chunks: Chunk[] = [];
  for (let s = s0; s < s1; s++) {
    const [r0, r1] = shardRange(batchRows, shards, s);
    for (let a = r0; a < r1; a += chunkRows) {
      const b = Math.min(r1, a + chunkRows);
      chunks.push({ leaf: s, r0: a, r1: b, last: b === r1 });
    }
  }
  const calls: Chunk[][] = [];
  let size = Infinity;
  for (const c of chunks) {
    const n = (c.r1 - c.r0) * seqLen;
    if (size + n > maxTokens) { calls.push([]); size = 0; }
    calls[calls.length - 1].push(c);
    size += n;
  }
  return calls;
}

/**
 * This thread's flat gradient buffers, one per chunk of a task, reused task after task: a fresh
 * `layout.total`-float array per chunk (5.9 MB for the seed model), plus a copy of its tail, was most
 * of a step's garbage. Chunk k of a task writes buffers[k]; they stay the task's until it returns.
 */
const scratch: Float32Array[] = [];

function scratchBuffers(from: number, n: number, size: number): Float32Array[] {
  if (scratch.length > 0 && scratch[0].length !== size) scratch.length = 0; // another model in this thread
  while (scratch.length < from + n) scratch.push(new Float32Array(size));
  return scratch.slice(from, from + n);
}

/** Each batch's gradient, written into `into` (a model without computeGradientsEach: copied there). */
function gradientsInto(model: LanguageModel, params: Float32Array, batches: TokenBatch[], into: Float32Array[]): GradResult[] {
  if (model.computeGradientsEach) return model.computeGradientsEach(params, batches, into);
  return batches.map((b, k) => { const g = model.computeGradients(params, b); into[k].set(g.grad); return { ...g, grad: into[k] }; });
}

/**
 * Compute a task: every shard (leaf) of the block, pre-added with the fixed tree. A leaf's sum is
 * its chunks' gradients added left to right, then rounded by the node rule (the fp16 codec; fp32:
 * as is). The chunks go to the model in the calls of taskCalls, so the result does not depend on
 * how the model groups them. The sums are formed in this thread's scratch buffers (a node's `rest`
 * is a view of its first chunk's buffer, added into in place); only the block's sum is copied out,
 * into arrays the result owns (they are transferred).
 */
export function computeTask(model: LanguageModel, params: Float32Array, t: TaskMsg): ResultMsg {
  const t0 = performance.now();
  const rule = nodeRule(model.layout, model.config.d_model, t.codec);
  const E = model.layout.embedding.size;
  const block: Block = { level: t.level, index: t.index };
  const [s0, s1] = blockShards(block, t.shards);
  const leaves = new Map<number, GradSum | null>();
  for (let s = s0; s < s1; s++) leaves.set(s, null);
  let used = 0;
  for (const call of taskCalls(t.batchRows, t.shards, s0, s1, t.seqLen, t.maxTokens)) {
    const batches = call.map((c): TokenBatch => ({ tokens: t.tokens.subarray((c.r0 - t.rowStart) * t.seqLen, (c.r1 - t.rowStart) * t.seqLen), rows: c.r1 - c.r0, seqLen: t.seqLen }));
    const grads = gradientsInto(model, params, batches, scratchBuffers(used, call.length, model.layout.total));
    used += call.length;
    call.forEach((c, k) => {
      const g = grads[k];
      const part: GradSum = { lossSum: g.lossSum, tokenCount: g.tokenCount, rest: g.grad.subarray(E), emb: g.embedding };
      const acc = combine(leaves.get(c.leaf) ?? null, part, rule.d)!;
      if (c.last) rule.round?.(acc);
      leaves.set(c.leaf, acc);
    });
  }
  const sum = reduceNode(block, t.shards, rule, (b) => (b.level === 0 ? leaves.get(b.index) ?? null : undefined));
  const owned = sum && { ...sum, rest: sum.rest.slice(), emb: { rows: sum.emb.rows.slice(), values: sum.emb.values.slice() } };
  return toResult(t, owned, (performance.now() - t0) / 1000, model.layout.total - model.layout.embedding.size);
}

/** The result message of task `t` with block sum `sum` (null: the block had no rows). */
function toResult(t: TaskMsg, sum: GradSum | null, computeSeconds: number, restSize: number): ResultMsg {
  return {
    step: t.step, version: t.version, taskId: t.taskId, level: t.level, index: t.index,
    empty: sum === null,
    lossSum: sum?.lossSum ?? 0, tokenCount: sum?.tokenCount ?? 0,
    rest: sum?.rest ?? new Float32Array(restSize),
    embRows: sum?.emb.rows ?? new Int32Array(0), embValues: sum?.emb.values ?? new Float32Array(0),
    exps: sum?.exps ?? new Int32Array(0),
    computeSeconds,
  };
}
