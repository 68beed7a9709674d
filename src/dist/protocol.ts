/**
 * The coordinator ⇄ remote worker protocol (WebSocket, binary msgpackr frames).
 *
 * Every frame is one WebSocket binary message: a msgpack map packed with
 * `new Packr({ moreTypes: true })` (so typed arrays travel as raw little-endian bytes and come back
 * as Float32Array / Int32Array / Uint16Array), with `t` = the frame type and `v` = PROTOCOL_VERSION.
 *
 *   worker → coordinator                       coordinator → worker
 *   ────────────────────                       ────────────────────
 *   hello     {name}                  ──▶
 *                                     ◀──      challenge {nonce: 32 random bytes (hex), tokenRequired}
 *   auth      {mac}                   ──▶        mac = HMAC-SHA256(token, "vilm-auth-v1|" + nonce + "|" + name),
 *                                                hex; "" when the coordinator needs no token. The token
 *                                                itself never crosses the wire.
 *                                     ◀──      welcome   {id, spec, total, heartbeatMs}   (config sync)
 *                                     ◀──      weights   {version, weights: Float32Array[total]}
 *                                     ◀──      task      {…TaskMsg}   (src/dist/task.ts)
 *   result    {…ResultMsg}            ──▶        embedding gradient as sparse rows, the rest as one flat
 *                                                Float32Array slice
 *   heartbeat {time}                  ──▶      (any frame counts as a sign of life)
 *   bye       {reason}                ◀─▶      either side, then the socket closes
 *
 * Rules.
 * - A peer speaking another protocol version gets `bye` with a message naming both versions, then
 *   the socket closes (code 4000); the worker prints it and exits non-zero.
 * - Authentication fails → `bye {reason: "authentication failed"}`, close 4001, counted as rejected
 *   ('auth'). Frames before authentication other than hello/auth are protocol errors.
 * - `weights` are sent when a worker joins and after every optimizer step (version = optimizer steps
 *   applied). A task names the version it must be computed with; the worker always has it because
 *   frames on one socket arrive in order.
 * - Every incoming frame is size-limited (ws `maxPayload`; larger → close 1009) and validated:
 *   types and shapes of every field, the step / weights version / task id of a result against the
 *   task in flight, finite values. A bad result is rejected and counted (observer.onRejected), its
 *   task recomputed elsewhere; after `maxStrikes` rejections the worker is disconnected.
 * - Heartbeats: the worker sends one every `heartbeatMs` while idle; a worker silent for the
 *   coordinator's heartbeat timeout is dropped and its tasks requeued. The per-task deadline is
 *   separate (the scheduler's).
 * - Without a token the coordinator listens on 127.0.0.1 only; with `--tls-cert/--tls-key` it
 *   serves wss://.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Packr } from 'msgpackr';
import type { ReplicaSpec, ResultMsg, TaskMsg } from './task.js';

export const PROTOCOL_VERSION = 1;
const AUTH_CONTEXT = 'vilm-auth-v1';

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

/** A frame that breaks the protocol; the message says what (one line). */
export class ProtocolError extends Error {
  constructor(message: string, readonly kind: 'version' | 'frame' = 'frame') { super(message); }
}

const packr = new Packr({ moreTypes: true });

export function encodeFrame(f: Frame): Uint8Array {
  return packr.pack(f);
}

type FieldKind = 'int' | 'num' | 'str' | 'bool' | 'f32' | 'i32' | 'u16' | 'obj';
const FIELDS: Record<Frame['t'], Record<string, FieldKind>> = {
  hello: { name: 'str' },
  challenge: { nonce: 'str', tokenRequired: 'bool' },
  auth: { mac: 'str' },
  welcome: { id: 'str', spec: 'obj', total: 'int', heartbeatMs: 'int' },
  weights: { version: 'int', weights: 'f32' },
  task: { step: 'int', version: 'int', taskId: 'int', level: 'int', index: 'int', shards: 'int', batchRows: 'int', seqLen: 'int', rowStart: 'int', tokens: 'u16', maxTokens: 'int' },
  result: { step: 'int', version: 'int', taskId: 'int', level: 'int', index: 'int', empty: 'bool', lossSum: 'num', tokenCount: 'int', rest: 'f32', embRows: 'i32', embValues: 'f32', computeSeconds: 'num' },
  heartbeat: { time: 'num' },
  bye: { reason: 'str' },
};

function checkField(t: string, k: string, kind: FieldKind, v: unknown): void {
  const ok = (() => {
    switch (kind) {
      case 'int': return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
      case 'num': return typeof v === 'number'; // finiteness is the result check's job (counted as 'nonfinite')
      case 'str': return typeof v === 'string' && v.length <= 4096;
      case 'bool': return typeof v === 'boolean';
      case 'f32': return v instanceof Float32Array;
      case 'i32': return v instanceof Int32Array;
      case 'u16': return v instanceof Uint16Array;
      case 'obj': return v !== null && typeof v === 'object' && !Array.isArray(v);
    }
  })();
  if (!ok) throw new ProtocolError(`frame '${t}': field '${k}' must be ${kind}`);
}

/** Decode and validate one frame (types of every field; version first). */
export function decodeFrame(data: Uint8Array): Frame {
  let raw: unknown;
  try { raw = packr.unpack(data); } catch (e) { throw new ProtocolError(`undecodable frame (${(e as Error).message.split('\n')[0]})`); }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ProtocolError('frame is not a map');
  const f = raw as Record<string, unknown>;
  if (f.v !== PROTOCOL_VERSION) {
    throw new ProtocolError(`protocol version ${JSON.stringify(f.v)} is not supported: this side speaks version ${PROTOCOL_VERSION} (update vilm on both ends)`, 'version');
  }
  const t = f.t;
  if (typeof t !== 'string' || !(t in FIELDS)) throw new ProtocolError(`unknown frame type ${JSON.stringify(t)}`);
  for (const [k, kind] of Object.entries(FIELDS[t as Frame['t']])) checkField(t, k, kind, f[k]);
  return f as unknown as Frame;
}

/** The challenge–response MAC (hex). */
export function authMac(token: string, nonce: string, name: string): string {
  return createHmac('sha256', token).update(`${AUTH_CONTEXT}|${nonce}|${name}`).digest('hex');
}

/** Constant-time check of a worker's MAC. */
export function verifyMac(token: string, nonce: string, name: string, mac: string): boolean {
  const want = Buffer.from(authMac(token, nonce, name), 'hex');
  const got = Buffer.from(mac, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}

/** Largest frame a coordinator accepts: a result is at most a full gradient plus row ids. */
export function coordinatorMaxPayload(total: number, vocab: number): number {
  return total * 4 + vocab * 4 + (1 << 20);
}
