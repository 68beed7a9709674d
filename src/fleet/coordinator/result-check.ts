/**
 * The coordinator's check of a worker's result, the same for every transport (threads included):
 * does it answer the task in flight, are its shapes right, are its token count and emptiness the
 * ones the coordinator computed itself from the task it handed out (never taken from the worker),
 * are its values finite and of a plausible size?
 *
 * Two kinds of refusal:
 * - HARD ('stale', 'shape', 'mismatch'): the coordinator can tell on its own that the worker is
 *   wrong; a strike, and the task goes to another worker.
 * - SOFT ('nonfinite', 'implausible'): a healthy worker computing a model that diverged gives the
 *   same. The step recomputes the block (./step-run.ts): the same bytes again mean divergence, not
 *   a bad worker.
 *
 * Plausibility bounds, per target token T of the block (T = max(T, 1) for a block of pad only):
 *
 *   lossSum ∈ [−LOSS_ROUNDING_PER_TOKEN·T, LOSS_BOUND_PER_TOKEN·T]
 *   ‖gradient‖₂ ≤ GRAD_NORM_BOUND_PER_TOKEN·T   (sum of squares in float64; it also bounds every |value|)
 *
 * Measured (test/support's toy model and configs/test.yaml's real model on wasm,
 * 4 micro-shard tasks per step, Adam): a healthy run (lr 1e-2) has at most 6.3 nats and a
 * gradient norm of 1.25 per token (largest |value| 0.32); an unstable one (lr 1) at most 45 nats
 * and 35 (|value| 7.9); the toy model at lr 100 reaches 5e4 per token, and the real model at lr
 * 1000 — blown up, up to 5.8e7 nats a token — 5.6e6. A uniform model's loss is ln V ≤ 11.1 nats
 * (token ids are 16-bit, V ≤ 65,536). The bounds sit far above anything a run that still trains
 * produces (225× the unstable run's loss, 3·10⁴× its gradient norm) and far below what breaks the
 * reduction: with them every value the tree adds stays below T_batch·1e6 ≪ 3.4e38 (float32's
 * largest), so no sum of accepted results overflows to ±Inf. A result beyond them that a
 * recomputation confirms is divergence (the run has blown up), one that it contradicts a bad
 * worker.
 */
import { createHash } from 'node:crypto';
import type { RejectReason } from '../../events/index.js';
import type { ResultMsg, TaskMsg } from '../contract.js';

/** The figures a result is checked against. `restSize` = total − vocab·d. */
export interface ResultShape {
  restSize: number;
  vocab: number;
  d: number;
}

/** What the coordinator knows of a task from the batch it cut it from. */
export interface TaskFacts {
  /** the block has no rows (all its shards are empty, R < M) */
  empty: boolean;
  /** target positions: over the block's rows, positions t in 1..seqLen−1 with token ≠ 0 (<pad>) */
  tokenCount: number;
}

/** Largest plausible loss per target token, nats (see the file comment). */
export const LOSS_BOUND_PER_TOKEN = 1e4;
/** Rounding slack below 0 for the loss sum (cross-entropy is ≥ 0; float32 log-softmax may not be exactly). */
export const LOSS_ROUNDING_PER_TOKEN = 1e-3;
/** Largest plausible L2 norm of the gradient sum per target token (see the file comment). */
export const GRAD_NORM_BOUND_PER_TOKEN = 1e6;

/** Refusals that a diverged model produces too: decided by recomputing (./step-run.ts). */
export type SoftReason = 'nonfinite' | 'implausible';
export function isSoft(r: RejectReason): r is SoftReason { return r === 'nonfinite' || r === 'implausible'; }

/**
 * The facts of a block of `rows` rows of `seqLen` tokens (`tokens`: exactly those rows). The same
 * count as the model's loss mask (src/model/model.ts: labels are positions 1..L−1, id 0 masked).
 */
export function taskFacts(tokens: Uint16Array, rows: number, seqLen: number): TaskFacts {
  let n = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * seqLen;
    for (let t = 1; t < seqLen; t++) if (tokens[o + t] !== 0) n++;
  }
  return { empty: rows === 0, tokenCount: n };
}

/** Why `r` cannot be accepted as the answer to `task` (whose facts are `facts`), or null when it can. */
export function checkResult(r: ResultMsg, task: TaskMsg, facts: TaskFacts, shape: ResultShape): RejectReason | null {
  if (r.step !== task.step || r.version !== task.version || r.taskId !== task.taskId || r.level !== task.level || r.index !== task.index) return 'stale';
  return checkValues(r, facts, shape);
}

/** Shapes, figures and values of a result: a reason, or null. */
function checkValues(r: ResultMsg, facts: TaskFacts, { restSize, vocab, d }: ResultShape): RejectReason | null {
  if (!(r.rest instanceof Float32Array) || !(r.embRows instanceof Int32Array) || !(r.embValues instanceof Float32Array)) return 'shape';
  if (r.rest.length !== restSize || r.embValues.length !== r.embRows.length * d) return 'shape';
  if (typeof r.computeSeconds !== 'number' || !Number.isFinite(r.computeSeconds) || r.computeSeconds < 0) return 'shape';
  for (let i = 0; i < r.embRows.length; i++) {
    const v = r.embRows[i];
    if (v < 0 || v >= vocab || (i > 0 && v <= r.embRows[i - 1])) return 'shape';
  }
  // the figures are the coordinator's, not the worker's
  if (r.empty !== facts.empty || r.tokenCount !== facts.tokenCount) return 'mismatch';
  // an empty block's sum is absent: its values are never used
  if (facts.empty) return null;
  if (typeof r.lossSum !== 'number' || !Number.isFinite(r.lossSum)) return 'nonfinite';
  // one float64 pass: NaN/±Inf make the sum non-finite; a finite float32 squared (≤ 1.2e77) times
  // any array length cannot overflow a float64
  let ss = 0;
  const a = r.rest, b = r.embValues;
  for (let i = 0; i < a.length; i++) ss += a[i] * a[i];
  for (let i = 0; i < b.length; i++) ss += b[i] * b[i];
  if (!Number.isFinite(ss)) return 'nonfinite';
  const t = Math.max(1, facts.tokenCount);
  if (r.lossSum < -LOSS_ROUNDING_PER_TOKEN * t || r.lossSum > LOSS_BOUND_PER_TOKEN * t) return 'implausible';
  if (Math.sqrt(ss) > GRAD_NORM_BOUND_PER_TOKEN * t) return 'implausible';
  return null;
}

/**
 * sha256 of everything of a result that goes into the reduction (emptiness, loss, token count,
 * gradient bytes; not its timing): two results with the same digest are the same bytes.
 */
export function resultDigest(r: ResultMsg): string {
  const h = createHash('sha256');
  const head = new DataView(new ArrayBuffer(24));
  head.setUint32(0, r.empty ? 1 : 0, true);
  head.setFloat64(8, r.lossSum, true);
  head.setFloat64(16, r.tokenCount, true);
  h.update(new Uint8Array(head.buffer));
  for (const a of [r.rest, r.embRows, r.embValues]) {
    const len = new DataView(new ArrayBuffer(8));
    len.setFloat64(0, a.length, true);
    h.update(new Uint8Array(len.buffer));
    h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }
  return h.digest('hex');
}
