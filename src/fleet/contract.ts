/**
 * The contract between the coordinator and its workers: every message that crosses from one side
 * to the other, whatever carries it (an in-process call, a worker-thread message, a WebSocket
 * frame). Both sides import this file; neither imports the other.
 *
 * The WebSocket protocol, version 3 (binary msgpackr frames, ./codec.ts; authentication, ./auth.ts):
 *
 *   worker                                       coordinator
 *   ──────                                       ───────────
 *   HTTP upgrade, headers x-vilm-protocol,  ──▶    checked BEFORE a WebSocket exists: version, name,
 *   -name, -nonce, -time, -auth                     MAC(token, time|nonce|name), clock window, replay;
 *                                                   refused with 426 (version), 401 (authentication),
 *                                                   403 (banned), 400, 503 and a short x-vilm-refused
 *                                           ◀──    101 with x-vilm-nonce (coordinator's) and x-vilm-auth
 *                                                   ("hmac", or "none" without a token)
 *                                           ◀──    welcome   {id, spec, total, heartbeatMs}   (config sync;
 *                                                   sealed: the coordinator's proof of the token)
 *                                           ◀──    weights   {version, weights: Float32Array[total]}
 *                                           ◀──    task      {…TaskMsg}
 *   result    {…ResultMsg}                  ──▶      embedding gradient as sparse rows, the rest as one
 *                                                   flat Float32Array slice (train.grad_codec fp32)
 *   result16  {…, rest, embValues: u16, exps} ──▶    the same as half codes at per-tensor scales
 *                                                   (fp16 codec, ./grad-codec.ts: exact, half the bytes)
 *   heartbeat {time}                        ──▶    (any frame counts as a sign of life)
 *   bye       {reason}                      ◀─▶    either side, then the socket closes
 *
 * Rules.
 * - With a token every frame carries a MAC over its direction's sequence number and bytes; a frame
 *   that fails it closes the link (CLOSE.AUTH). A worker with a token refuses a coordinator that
 *   answers "none" or whose first frame fails the MAC.
 * - `weights` are sent when a worker joins and after every optimizer step (version = optimizer steps
 *   applied) — to a worker that has read what it was sent before; one still reading gets them with
 *   its next task. A task names the version it must be computed with; the worker always has it
 *   because frames on one socket arrive in order.
 * - Every incoming frame is size-limited (ws `maxPayload`; larger → close 1009), its bytes checked
 *   (./codec.ts) and its fields validated; a result is checked against the task in flight (step,
 *   version, task id, token count, emptiness computed by the coordinator, finite and plausible
 *   values). A bad result is rejected and counted (observer.onRejected), its task recomputed
 *   elsewhere; strikes follow the worker's name across reconnects, and after `maxStrikes` the worker
 *   is disconnected (CLOSE.KICKED) and its name banned for a while.
 * - Heartbeats: the worker sends one every `heartbeatMs`; a worker silent for the coordinator's
 *   heartbeat timeout, or not reading what it is sent for as long, is dropped and its tasks
 *   requeued. The per-task deadline is separate (the scheduler's).
 * - Without a token the coordinator listens on loopback only, unless `--insecure`; with
 *   `--tls-cert/--tls-key` it serves wss://.
 */
import type { BackendName } from '../backend/types.js';
import type { ModelConfig } from '../config/index.js';
import type { GradCodecName } from './grad-codec.js';

export const PROTOCOL_VERSION = 3;

/** How a worker builds its model replica: the model config and the tfjs backend to run it on. */
export interface ReplicaSpec {
  model: ModelConfig;
  backend: BackendName;
}

/** An aligned block of micro-shards (./shard-tree.ts) of step `step`'s batch, computed with weights `version`. */
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
  /** the run's gradient codec (`train.grad_codec`): fp16 rounds every tree node (../grad-codec.ts) */
  codec: GradCodecName;
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
  /** fp16 codec: the block sum's scale exponents [embedding, rest tensors…] (empty with fp32); what a WebSocket worker needs to send it as 16-bit codes */
  exps: Int32Array;
  /** seconds spent computing (worker side) */
  computeSeconds: number;
}

/** A worker thread's answer: a result, or `stale` when the shared weights were not the task's version. */
export type ThreadReply = { stale: true; version: number } | { stale: false; result: ResultMsg };

// ---------------------------------------------------------------------------------------------
// WebSocket frames (every frame carries its type `t` and the protocol version `v`)

export interface WelcomeFrame { t: 'welcome'; v: number; id: string; spec: ReplicaSpec; total: number; heartbeatMs: number }
export interface WeightsFrame { t: 'weights'; v: number; version: number; weights: Float32Array }
export interface TaskFrame extends TaskMsg { t: 'task'; v: number }
/** A result with the fp32 codec (`exps` is not sent). */
export interface ResultFrame extends Omit<ResultMsg, 'exps'> { t: 'result'; v: number }
/** A result with the fp16 codec: the rest and the embedding rows' values as half codes at the scales `exps` (../grad-codec.ts). */
export interface Result16Frame extends Omit<ResultMsg, 'rest' | 'embValues'> { t: 'result16'; v: number; rest: Uint16Array; embValues: Uint16Array }
export interface HeartbeatFrame { t: 'heartbeat'; v: number; time: number }
export interface ByeFrame { t: 'bye'; v: number; reason: string }

export type Frame = WelcomeFrame | WeightsFrame | TaskFrame | ResultFrame | Result16Frame | HeartbeatFrame | ByeFrame;
export type FrameType = Frame['t'];
