/**
 * The WebSocket protocol's defences, against a coordinator fleet running the pure-JS toy model
 * (fast): version mismatch, bad authentication, NaN and stale results, oversize frames, a worker
 * that never answers (deadline). The step must still produce the reference bytes.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { WebSocket } from 'ws';
import { loadConfig, type RunConfig } from '../src/config/index.ts';
import { buildLayout, initParams } from '../src/model/layout.ts';
import { Coordinator } from '../src/fleet/coordinator/coordinator.ts';
import { authMac } from '../src/fleet/auth.ts';
import { decodeFrame, encodeFrame } from '../src/fleet/codec.ts';
import { PROTOCOL_VERSION, type Frame } from '../src/fleet/contract.ts';
import { runRemoteWorker, type RemoteWorkerOptions } from '../src/fleet/worker/remote-worker.ts';
import { finalizeGradient, resultToGradSum } from '../src/fleet/reduce.ts';
import { rootBlock } from '../src/fleet/shard-tree.ts';
import { computeTask } from '../src/fleet/worker/compute.ts';
import { createToyModel } from './support/toy-model.ts';
import { TOY_REPLICA } from './support/toy-replica.ts';
import type { RejectReason, ReassignReason, TrainerObserver } from '../src/events/index.ts';
import { Rng } from '../src/util/rng.ts';

/** A remote worker computing with the toy model (a local choice of the worker process). */
const toyWorker = (o: RemoteWorkerOptions) => runRemoteWorker({ replicaModule: TOY_REPLICA, ...o });

const TOKEN = 'correct horse battery staple';
const sha = (a: Float32Array) => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

function smallConfig(): RunConfig {
  const c = loadConfig('configs/test.yaml');
  return { model: { ...c.model, vocab_size: 64, d_model: 8, n_heads: 2, n_layers: 1, ff_dim: 16 }, train: { ...c.train, micro_shards: 4 } };
}

interface Events { rejected: { workerId: string; reason: RejectReason }[]; reassigned: ReassignReason[] }

async function startFleet(cfg: RunConfig, extra: { taskDeadlineMs?: number; maxStrikes?: number } = {}) {
  const ev: Events = { rejected: [], reassigned: [] };
  const observer: TrainerObserver = {
    onRejected: (e) => ev.rejected.push(e),
    onReassigned: (e) => ev.reassigned.push(e.reason),
  };
  const L = buildLayout(cfg.model);
  const fleet = await Coordinator.start({
    model: cfg.model, backend: 'cpu', replicaModule: TOY_REPLICA, inProcess: false, threads: 0,
    remote: { host: '127.0.0.1', port: 0, token: TOKEN }, observers: [observer], ...extra,
  }, initParams(L, cfg.model, 1), 0);
  return { fleet, ev, url: `ws://127.0.0.1:${fleet.remote!.port}` };
}

function batchOf(seed: number): { tokens: Uint16Array; rows: number; seqLen: number } {
  const rng = new Rng(seed);
  const rows = 6, seqLen = 8;
  const tokens = new Uint16Array(rows * seqLen);
  for (let i = 0; i < tokens.length; i++) tokens[i] = 1 + rng.int(63);
  return { tokens, rows, seqLen };
}

/** The step gradient computed directly, in one task over the whole tree. */
function reference(cfg: RunConfig, weights: Float32Array, b: ReturnType<typeof batchOf>): string {
  const model = createToyModel(cfg.model);
  const root = rootBlock(cfg.train.micro_shards);
  const r = computeTask(model, weights, {
    step: 0, version: 0, taskId: 0, level: root.level, index: root.index, shards: cfg.train.micro_shards,
    batchRows: b.rows, seqLen: b.seqLen, rowStart: 0, tokens: b.tokens, maxTokens: 1024,
  });
  return sha(finalizeGradient(resultToGradSum(r)!, cfg.model.vocab_size, cfg.model.d_model));
}

/** A hand-driven client: authenticates, then answers each task with `answer(task)` (or nothing). */
function rawWorker(url: string, name: string, answer: (t: Extract<Frame, { t: 'task' }>) => Frame | null, opts: { version?: number; token?: string } = {}) {
  const ws = new WebSocket(url);
  const closed = new Promise<number>((res) => ws.on('close', (code) => res(code)));
  ws.on('open', () => ws.send(encodeFrame({ t: 'hello', v: opts.version ?? PROTOCOL_VERSION, name })));
  ws.on('message', (data) => {
    const f = decodeFrame(data as Buffer);
    if (f.t === 'challenge') ws.send(encodeFrame({ t: 'auth', v: PROTOCOL_VERSION, mac: authMac(opts.token ?? TOKEN, f.nonce, name) }));
    if (f.t === 'task') { const a = answer(f); if (a) ws.send(encodeFrame(a)); }
  });
  ws.on('error', () => undefined);
  return { ws, closed };
}

/** A correct result for a task, computed with the toy model, then tampered with by `edit`. */
function honest(cfg: RunConfig, weights: Float32Array, t: Extract<Frame, { t: 'task' }>, edit: (r: Extract<Frame, { t: 'result' }>) => void): Frame {
  const r = computeTask(createToyModel(cfg.model), weights, t);
  const f: Extract<Frame, { t: 'result' }> = { t: 'result', v: PROTOCOL_VERSION, ...r };
  edit(f);
  return f;
}

test('a worker speaking another protocol version is refused with a clear message', async () => {
  const { fleet, ev, url } = await startFleet(smallConfig());
  try {
    await assert.rejects(toyWorker({ url, token: TOKEN, retryMs: 0, protocolVersion: 99 }), /protocol version mismatch: coordinator speaks version 1/);
    assert.deepEqual(ev.rejected.map((r) => r.reason), ['protocol']);
    assert.equal(fleet.scheduler.size, 0);
  } finally { await fleet.close('test over'); }
});

test('a wrong token fails the HMAC challenge; no token at all is refused before auth', async () => {
  const { fleet, ev, url } = await startFleet(smallConfig());
  try {
    await assert.rejects(toyWorker({ url, token: 'not the right token at all', retryMs: 0 }), /authentication failed/);
    await assert.rejects(toyWorker({ url, retryMs: 0 }), /requires a token/);
    assert.deepEqual(ev.rejected.map((r) => r.reason), ['auth']);
    assert.equal(fleet.scheduler.size, 0);
  } finally { await fleet.close('test over'); }
});

test('NaN, stale and wrong-shape results are rejected, counted and recomputed elsewhere; the offender is dropped', async () => {
  const cfg = smallConfig();
  const { fleet, ev, url } = await startFleet(cfg, { maxStrikes: 3 });
  try {
    const w = fleet.weights;
    const b = batchOf(4);
    const want = reference(cfg, w, b);
    const good = toyWorker({ url, token: TOKEN, name: 'good', retryMs: 0 });
    let n = 0;
    const bad = rawWorker(url, 'bad', (t) => honest(cfg, w, t, (r) => {
      const k = n++ % 3;
      if (k === 0) r.rest[5] = NaN;
      else if (k === 1) r.step = t.step + 7; // a result for another step
      else r.rest = r.rest.subarray(1); // wrong shape
    }));
    await fleet.scheduler.waitForWorkers(2);
    // several steps: the bad worker gets tasks until its third strike
    for (let s = 0; s < 3; s++) {
      const out = await fleet.runStep(0, b, cfg.train.micro_shards, 1024);
      assert.equal(sha(finalizeGradient(out.root, cfg.model.vocab_size, cfg.model.d_model)), want, `step ${s}`);
    }
    const reasons = ev.rejected.map((r) => r.reason).sort();
    assert.deepEqual(reasons, ['nonfinite', 'shape', 'stale']);
    assert.ok(ev.rejected.every((r) => r.workerId.includes('bad')));
    assert.equal(ev.reassigned.length, 3, ev.reassigned.join(','));
    assert.equal(await bad.closed, 4002);
    assert.equal(fleet.scheduler.size, 1);
    await fleet.close('test over');
    await good;
  } finally { await fleet.close('test over'); }
});

test('an oversize frame closes the connection (ws maxPayload) and is counted', async () => {
  const { fleet, ev, url } = await startFleet(smallConfig());
  try {
    const c = rawWorker(url, 'big', () => null);
    await fleet.scheduler.waitForWorkers(1);
    c.ws.send(new Uint8Array(64 << 20));
    assert.equal(await c.closed, 1009);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(ev.rejected.some((r) => r.reason === 'protocol'));
    assert.equal(fleet.scheduler.size, 0);
  } finally { await fleet.close('test over'); }
});

test('a task never answered misses its deadline and is recomputed by another worker, same bytes', async () => {
  const cfg = smallConfig();
  const { fleet, ev, url } = await startFleet(cfg, { taskDeadlineMs: 300 });
  try {
    const b = batchOf(5);
    const want = reference(cfg, fleet.weights, b);
    const silent = rawWorker(url, 'silent', () => null);
    await fleet.scheduler.waitForWorkers(1);
    const good = toyWorker({ url, token: TOKEN, name: 'good', retryMs: 0 });
    await fleet.scheduler.waitForWorkers(2);
    const out = await fleet.runStep(0, b, cfg.train.micro_shards, 1024);
    assert.equal(sha(finalizeGradient(out.root, cfg.model.vocab_size, cfg.model.d_model)), want);
    assert.ok(ev.reassigned.includes('deadline'));
    silent.ws.terminate();
    await fleet.close('test over');
    await good;
  } finally { await fleet.close('test over'); }
});

test('frame types are looked up as own keys: constructor, __proto__ and toString are unknown types', () => {
  for (const t of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    assert.throws(() => decodeFrame(encodeFrame({ v: PROTOCOL_VERSION, t } as unknown as Frame)), (e: unknown) => e instanceof Error && /unknown frame type/.test(e.message), t);
  }
});
