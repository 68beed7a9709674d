/**
 * The code every worker runs to compute a task (in-process, in a thread, or behind a WebSocket):
 * the gradient sum of each micro-shard of the task's block, pre-added with the fixed tree
 * (../reduce.ts), so the result is the same bytes whoever computes it.
 */
import type { LanguageModel } from '../../model/api.js';
import type { TokenBatch } from '../../model/types.js';
import type { ResultMsg, TaskMsg } from '../contract.js';
import { combine, nodeRule, reduceNode, type GradSum, type NodeRule } from '../reduce.js';
import { blockShards, shardRange, type Block } from '../shard-tree.js';

/**
 * A leaf: the gradient sum of rows [r0, r1) of `tokens`, in fixed row chunks of ≤ maxTokens tokens
 * added left to right, then rounded by the node rule (the fp16 codec; fp32: as is).
 */
function computeShard(model: LanguageModel, params: Float32Array, tokens: Uint16Array, seqLen: number, r0: number, r1: number, maxTokens: number, rule: NodeRule): GradSum {
  const E = model.layout.embedding.size, d = rule.d;
  const chunkRows = Math.max(1, Math.floor(maxTokens / seqLen));
  let acc: GradSum | null = null;
  for (let a = r0; a < r1; a += chunkRows) {
    const b = Math.min(r1, a + chunkRows);
    const batch: TokenBatch = { tokens: tokens.subarray(a * seqLen, b * seqLen), rows: b - a, seqLen };
    const g = model.computeGradients(params, batch);
    // copies: the model may reuse its buffers, and results are transferred
    const part: GradSum = {
      lossSum: g.lossSum, tokenCount: g.tokenCount, rest: g.grad.slice(E),
      emb: { rows: g.embedding.rows.slice(), values: g.embedding.values.slice() },
    };
    acc = combine(acc, part, d);
  }
  rule.round?.(acc!);
  return acc!;
}

/** Compute a task: every shard of the block, pre-added with the fixed tree. */
export function computeTask(model: LanguageModel, params: Float32Array, t: TaskMsg): ResultMsg {
  const t0 = performance.now();
  const rule = nodeRule(model.layout, model.config.d_model, t.codec);
  const block: Block = { level: t.level, index: t.index };
  const [s0, s1] = blockShards(block, t.shards);
  const leaves = new Map<number, GradSum | null>();
  for (let s = s0; s < s1; s++) {
    const [r0, r1] = shardRange(t.batchRows, t.shards, s);
    leaves.set(s, r1 > r0 ? computeShard(model, params, t.tokens, t.seqLen, r0 - t.rowStart, r1 - t.rowStart, t.maxTokens, rule) : null);
  }
  const sum = reduceNode(block, t.shards, rule, (b) => (b.level === 0 ? leaves.get(b.index) ?? null : undefined));
  return toResult(t, sum, (performance.now() - t0) / 1000, model.layout.total - model.layout.embedding.size);
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
