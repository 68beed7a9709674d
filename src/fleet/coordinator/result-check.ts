/**
 * The coordinator's check of a worker's result, the same for every transport (threads included):
 * does it answer the task in flight, are its shapes right, are its values finite?
 */
import type { RejectReason } from '../../events/index.js';
import type { ResultMsg, TaskMsg } from '../contract.js';

/** The figures a result is checked against. `restSize` = total − vocab·d. */
export interface ResultShape {
  restSize: number;
  vocab: number;
  d: number;
}

/** Why `r` cannot be accepted as the answer to `task`, or null when it can. */
export function checkResult(r: ResultMsg, task: TaskMsg, shape: ResultShape): RejectReason | null {
  if (r.step !== task.step || r.version !== task.version || r.taskId !== task.taskId || r.level !== task.level || r.index !== task.index) return 'stale';
  return checkValues(r, shape);
}

/** Shapes and values of a result: a reason, or null. */
function checkValues(r: ResultMsg, { restSize, vocab, d }: ResultShape): 'shape' | 'nonfinite' | null {
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
