/**
 * The contract between the coordinator and its workers: every message that crosses from one side
 * to the other, whatever carries it (an in-process call, a worker-thread message, a WebSocket
 * frame). Both sides import this file; neither imports the other.
 *
 * The WebSocket protocol (binary msgpackr frames, ./codec.ts):
 *
 *   worker → coordinator                       coordinator → worker
 *   ────────────────────                       ────────────────────
 *   hello     {name}                  ──▶
 *                                     ◀──      challenge {nonce: 32 random bytes (hex), tokenRequired}
 *   auth      {mac}                   ──▶        mac = HMAC-SHA256(token, "vilm-auth-v1|" + nonce + "|" + name),
 *                                                hex; "" when the coordinator needs no token. The token
 *                                                itself never crosses the wire (./auth.ts).
 *                                     ◀──      welcome   {id, spec, total, heartbeatMs}   (config sync)
 *                                     ◀──      weights   {version, weights: Float32Array[total]}
 *                                     ◀──      task      {…TaskMsg}
 *   result    {…ResultMsg}            ──▶        embedding gradient as sparse rows, the rest as one flat
 *                                                Float32Array slice
 *   heartbeat {time}                  ──▶      (any frame counts as a sign of life)
 *   bye       {reason}                ◀─▶      either side, then the socket closes
 *
 * Rules.
 * - A peer speaking another protocol version gets `bye` with a message naming both versions, then
 *   the socket closes with CLOSE.VERSION (./constants.ts); the worker prints it and exits non-zero.
 * - Authentication fails → `bye {reason: "authentication failed"}`, CLOSE.AUTH, counted as rejected
 *   ('auth'). Frames before authentication other than hello/auth are protocol errors.
 * - `weights` are sent when a worker joins and after every optimizer step (version = optimizer steps
 *   applied). A task names the version it must be computed with; the worker always has it because
 *   frames on one socket arrive in order.
 * - Every incoming frame is size-limited (ws `maxPayload`; larger → close 1009) and validated:
 *   types and shapes of every field, the step / weights version / task id of a result against the
 *   task in flight, finite values. A bad result is rejected and counted (observer.onRejected), its
 *   task recomputed elsewhere; after `maxStrikes` rejections the worker is disconnected (CLOSE.KICKED).
 * - Heartbeats: the worker sends one every `heartbeatMs` while idle; a worker silent for the
 *   coordinator's heartbeat timeout is dropped and its tasks requeued. The per-task deadline is
 *   separate (the scheduler's).
 * - Without a token the coordinator listens on 127.0.0.1 only; with `--tls-cert/--tls-key` it
 *   serves wss://.
 */
import type { BackendName } from '../backend/types.js';
import type { ModelConfig } from '../config/index.js';

export const PROTOCOL_VERSION = 1;

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

/** A worker thread's answer: a result, or `stale` when the shared weights were not the task's version. */
export type ThreadReply = { stale: true; version: number } | { stale: false; result: ResultMsg };

// ---------------------------------------------------------------------------------------------
// WebSocket frames (every frame carries its type `t` and the protocol version `v`)

export interface HelloFrame { t: 'hello'; v: number; name: string }
export interface ChallengeFrame { t: 'challenge'; v: number; nonce: string; tokenRequired: boolean }
export interface AuthFrame { t: 'auth'; v: number; mac: string }
export interface WelcomeFrame { t: 'welcome'; v: number; id: string; spec: ReplicaSpec; total: number; heartbeatMs: number }
export interface WeightsFrame { t: 'weights'; v: number; version: number; weights: Float32Array }
export interface TaskFrame extends TaskMsg { t: 'task'; v: number }
export interface ResultFrame extends ResultMsg { t: 'result'; v: number }
export interface HeartbeatFrame { t: 'heartbeat'; v: number; time: number }
export interface ByeFrame { t: 'bye'; v: number; reason: string }

export type Frame = HelloFrame | ChallengeFrame | AuthFrame | WelcomeFrame | WeightsFrame | TaskFrame | ResultFrame | HeartbeatFrame | ByeFrame;
export type FrameType = Frame['t'];
