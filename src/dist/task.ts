/**
 * One unit of distributed work and its result, as every transport carries them (in-process call,
 * worker-thread message, WebSocket frame), and the code every worker runs to compute a task.
 */
import type { BackendName } from '../backend/types.js';
import type { ModelConfig } from '../config/index.js';
import type { LanguageModel } from '../model/api.js';
import type { TokenBatch } from '../model/types.js';
import { blockShards, combine, reduceNode, shardRange, type Block, type GradSum } from './reduce.js';

/** How a worker builds its model replica. `toy` is the pure-JS test double (src/dist/toy-model.ts). */
export interface ReplicaSpec {
  kind: 'vilm' | 'toy';
  model: ModelConfig;
  backend: BackendName;
}

/** An aligned block of micro-shards of step `step`'s batch, computed with weights `version`. */
export interface TaskMsg {
  step: number;
  /** weights version = number of optimizer steps applied to the weights the task must use */
  version: number;
  taskId: number;
  level: number;
  index: number;
  /** M: micro-shards in the global batch */
  shards: number;
  /** R: rows in the global batch */
  batchRows: number;
  seqLen: number;
  /** first global row in `tokens` */
  rowStart: number;
  /** the block's rows of the batch, [rowEnd − rowStart, seqLen] */
  tokens: Uint16Array;
  /** cap on tokens per model call (a shard is cut into fixed row chunks under it) */
  maxTokens: number;
}

/** The pre-added gradient sum of a task's block. `empty`: the block had no rows (absent node). */
export interface ResultMsg {
  step: number;
  version: number;
  taskId: number;
  level: number;
  index: number;
  empty: boolean;
  lossSum: number;
  tokenCount: number;
  /** non-embedding gradient sum, `total − vocab·d` floats */
  rest: Float32Array;
  /** embedding gradient rows, ascending unique ids */
  embRows: Int32Array;
  /** [embRows.length, d_model] */
  embValues: Float32Array;
  /** seconds spent computing (worker side) */
  computeSeconds: number;
}

export async function createReplica(spec: ReplicaSpec): Promise<LanguageModel> {
  if (spec.kind === 'toy') {
    const { createToyModel } = await import('./toy-model.js');
    return createToyModel(spec.model);
  }
  const { initBackend } = await import('../backend/index.js');
  await initBackend(spec.backend);
  const { createModel } = await import('../model/model.js');
  return createModel(spec.model);
}

/** A leaf: the gradient sum of rows [r0, r1) of `tokens`, in fixed row chunks of ≤ maxTokens tokens. */
function computeShard(model: LanguageModel, params: Float32Array, tokens: Uint16Array, seqLen: number, r0: number, r1: number, maxTokens: number): GradSum {
  const E = model.layout.embedding.size, d = model.config.d_model;
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
  return acc!;
}

/** Compute a task: every shard of the block, pre-added with the fixed tree (src/dist/reduce.ts). */
export function computeTask(model: LanguageModel, params: Float32Array, t: TaskMsg): ResultMsg {
  const t0 = performance.now();
  const d = model.config.d_model;
  const block: Block = { level: t.level, index: t.index };
  const [s0, s1] = blockShards(block, t.shards);
  const leaves = new Map<number, GradSum | null>();
  for (let s = s0; s < s1; s++) {
    const [r0, r1] = shardRange(t.batchRows, t.shards, s);
    leaves.set(s, r1 > r0 ? computeShard(model, params, t.tokens, t.seqLen, r0 - t.rowStart, r1 - t.rowStart, t.maxTokens) : null);
  }
  const sum = reduceNode(block, t.shards, d, (b) => (b.level === 0 ? leaves.get(b.index) ?? null : undefined));
  return toResult(t, sum, (performance.now() - t0) / 1000, model.layout.total - model.layout.embedding.size);
}

export function toResult(t: TaskMsg, sum: GradSum | null, computeSeconds: number, restSize: number): ResultMsg {
  return {
    step: t.step, version: t.version, taskId: t.taskId, level: t.level, index: t.index,
    empty: sum === null,
    lossSum: sum?.lossSum ?? 0, tokenCount: sum?.tokenCount ?? 0,
    rest: sum?.rest ?? new Float32Array(restSize),
    embRows: sum?.emb.rows ?? new Int32Array(0), embValues: sum?.emb.values ?? new Float32Array(0),
    computeSeconds,
  };
}

export function resultToPartial(r: ResultMsg): GradSum | null {
  if (r.empty) return null;
  return { lossSum: r.lossSum, tokenCount: r.tokenCount, rest: r.rest, emb: { rows: r.embRows, values: r.embValues } };
}

/**
 * Check a result's shapes and values (every transport, including threads): returns a reason or
 * null. `restSize` = total − vocab·d.
 */
export function checkResult(r: ResultMsg, restSize: number, vocab: number, d: number): 'shape' | 'nonfinite' | null {
  if (!(r.rest instanceof Float32Array) || !(r.embRows instanceof Int32Array) || !(r.embValues instanceof Float32Array)) return 'shape';
  if (r.rest.length !== restSize || r.embValues.length !== r.embRows.length * d) return 'shape';
  if (!Number.isInteger(r.tokenCount) || r.tokenCount < 0) return 'shape';
  for (let i = 0; i < r.embRows.length; i++) {
    const v = r.embRows[i];
    if (v < 0 || v >= vocab || (i > 0 && v <= r.embRows[i - 1])) return 'shape';
  }
  if (!Number.isFinite(r.lossSum) || !Number.isFinite(r.computeSeconds)) return 'nonfinite';
  // x − x is 0 for finite x and NaN for NaN/±Inf: one cheap pass per array
  let acc = 0;
  const a = r.rest, b = r.embValues;
  for (let i = 0; i < a.length; i++) acc += a[i] - a[i];
  for (let i = 0; i < b.length; i++) acc += b[i] - b[i];
  if (acc !== 0) return 'nonfinite';
  return null;
}
