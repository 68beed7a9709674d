/**
 * A fleet for protocol tests: a coordinator running the pure-JS toy model with remote workers,
 * hand-driven WebSocket clients that speak the protocol (and can break it), and the reference
 * gradient of a step computed directly.
 */
import { createHash } from 'node:crypto';
import { WebSocket } from 'ws';
import { loadConfig, type RunConfig } from '../../src/config/index.ts';
import { buildLayout, initParams } from '../../src/model/layout.ts';
import { Coordinator } from '../../src/fleet/coordinator/coordinator.ts';
import { FrameSeal, HEADER, newNonce, sessionKeys, upgradeHeaders } from '../../src/fleet/auth.ts';
import { decodeFrame, encodeFrame } from '../../src/fleet/codec.ts';
import type { ConnectionLimits } from '../../src/fleet/constants.ts';
import { PROTOCOL_VERSION, type Frame } from '../../src/fleet/contract.ts';
import { runRemoteWorker, type RemoteWorkerOptions } from '../../src/fleet/worker/remote-worker.ts';
import { finalizeGradient, resultToGradSum } from '../../src/fleet/reduce.ts';
import type { GradCodecName } from '../../src/fleet/grad-codec.ts';
import { rootBlock } from '../../src/fleet/shard-tree.ts';
import { computeTask } from '../../src/fleet/worker/compute.ts';
import { createToyModel } from './toy-model.ts';
import { TOY_REPLICA } from './toy-replica.ts';
import type { RejectReason, ReassignReason, TrainerObserver } from '../../src/events/index.ts';
import { Rng } from '../../src/util/rng.ts';

/** A remote worker computing with the toy model (a local choice of the worker process). */
export const toyWorker = (o: RemoteWorkerOptions) => runRemoteWorker({ replicaModule: TOY_REPLICA, ...o });

export const TOKEN = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
export const sha = (a: Float32Array) => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

export function smallConfig(): RunConfig {
  const c = loadConfig('configs/test.yaml');
  return { model: { ...c.model, vocab_size: 64, d_model: 8, n_heads: 2, n_layers: 1, ff_dim: 16 }, train: { ...c.train, micro_shards: 4 } };
}

export interface Events { rejected: { workerId: string; reason: RejectReason }[]; reassigned: ReassignReason[] }

/** A fleet with remote workers (no penalties for refused addresses unless `tuning` sets them: tests connect from one address). */
export async function startFleet(cfg: RunConfig, extra: { taskDeadlineMs?: number; maxStrikes?: number; gradCodec?: GradCodecName } = {}, tuning: Partial<ConnectionLimits> = {}) {
  const ev: Events = { rejected: [], reassigned: [] };
  const observer: TrainerObserver = {
    onRejected: (e) => ev.rejected.push(e),
    onReassigned: (e) => ev.reassigned.push(e.reason),
  };
  const L = buildLayout(cfg.model);
  const fleet = await Coordinator.start({
    model: cfg.model, backend: 'cpu', replicaModule: TOY_REPLICA, inProcess: false, threads: 0,
    remote: { host: '127.0.0.1', port: 0, token: TOKEN, tuning: { penaltyMs: 0, ...tuning } }, observers: [observer], ...extra,
  }, initParams(L, cfg.model, 1), 0);
  return { fleet, ev, url: `ws://127.0.0.1:${fleet.remote!.port}` };
}

export function batchOf(seed: number): { tokens: Uint16Array; rows: number; seqLen: number } {
  const rng = new Rng(seed);
  const rows = 6, seqLen = 8;
  const tokens = new Uint16Array(rows * seqLen);
  for (let i = 0; i < tokens.length; i++) tokens[i] = 1 + rng.int(63);
  return { tokens, rows, seqLen };
}

/** The step gradient computed directly, in one task over the whole tree. */
export function reference(cfg: RunConfig, weights: Float32Array, b: ReturnType<typeof batchOf>, codec: GradCodecName = 'fp32'): string {
  const model = createToyModel(cfg.model);
  const root = rootBlock(cfg.train.micro_shards);
  const r = computeTask(model, weights, {
    step: 0, version: 0, taskId: 0, level: root.level, index: root.index, shards: cfg.train.micro_shards,
    batchRows: b.rows, seqLen: b.seqLen, rowStart: 0, tokens: b.tokens, maxTokens: 1024, codec,
  });
  return sha(finalizeGradient(resultToGradSum(r)!, cfg.model.vocab_size, cfg.model.d_model));
}

/**
 * A hand-driven client: authenticates in the upgrade like a real worker, then answers each task with
 * `answer(task)` (or nothing). `send` seals a frame; `sendBytes` seals raw bytes.
 */
export function rawWorker(url: string, name: string, answer: (t: Extract<Frame, { t: 'task' }>) => Frame | null, opts: { version?: number; token?: string } = {}) {
  const nonce = newNonce();
  const token = opts.token ?? TOKEN;
  const ws = new WebSocket(url, { headers: upgradeHeaders(token, name, nonce, opts.version ?? PROTOCOL_VERSION) });
  let seals: { out: FrameSeal; in: FrameSeal } | undefined;
  const frames: Frame[] = [];
  ws.on('upgrade', (res) => {
    const keys = sessionKeys(token, 'worker', nonce, String(res.headers[HEADER.nonce]));
    seals = { out: new FrameSeal(keys.send), in: new FrameSeal(keys.recv) };
  });
  const closed = new Promise<number>((res) => ws.on('close', (code) => res(code)));
  const opened = new Promise<void>((res) => ws.once('open', () => res()));
  const sendBytes = (b: Uint8Array) => ws.send(seals!.out.seal(b));
  const send = (f: Frame) => sendBytes(encodeFrame(f));
  ws.on('message', (data) => {
    const f = decodeFrame(seals!.in.open(data as Buffer));
    frames.push(f);
    if (f.t === 'task') { const a = answer(f); if (a) send(a); }
  });
  ws.on('error', () => undefined);
  /** seal without sending (to alter or replay) */
  const seal = (b: Uint8Array) => Uint8Array.from(seals!.out.seal(b));
  return { ws, opened, closed, send, sendBytes, seal, frames };
}

/** A correct result for a task, computed with the toy model, then tampered with by `edit`. */
export function honest(cfg: RunConfig, weights: Float32Array, t: Extract<Frame, { t: 'task' }>, edit: (r: Extract<Frame, { t: 'result' }>) => void): Frame {
  const { exps: _fp32HasNone, ...r } = computeTask(createToyModel(cfg.model), weights, t);
  const f: Extract<Frame, { t: 'result' }> = { t: 'result', v: PROTOCOL_VERSION, ...r };
  edit(f);
  return f;
}

