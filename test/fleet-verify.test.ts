/**
 * Verification by recomputation (`--verify-fraction P`, issue 9): a seeded-random fraction of
 * tasks also goes to a second, different worker and the two results must be the same bytes; a
 * mismatch is decided by a third worker, and the worker that disagrees with the majority is named
 * in a warning and removed (banned). A worker that lies with plausible numbers passes every other
 * check, so without verification its lies go into the weights.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { RunConfig } from '../src/config/index.ts';
import type { RejectReason } from '../src/events/index.ts';
import { NoWorkersError } from '../src/fleet/coordinator/step-run.ts';
import type { Coordinator } from '../src/fleet/coordinator/coordinator.ts';
import { buildLayout, initParams } from '../src/model/layout.ts';
import { weightsSha256 } from '../src/train/checkpoint.ts';
import { runTrainingLoop, type TrainLoopOptions } from '../src/train/loop.ts';
import { setLogInterceptor } from '../src/util/log.ts';
import { FakeLink, gradientSha, paddedBatch, referenceSum, toyConfig, toyScheduler, toyWeights, within, type Tamper } from './support/fake-link.ts';
import { syntheticData } from './support/fixtures.ts';
import { TOY_REPLICA } from './support/toy-replica.ts';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-verify-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

/** A plausible lie: one gradient value nudged (finite, tiny, the right shape and figures). */
const nudge: Tamper = (r) => { r.rest[r.rest.length - 1] += 1e-3; };

/** Log lines written while `f` runs (warnings included). */
async function capturingLog<T>(f: () => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const lines: string[] = [];
  const prev = setLogInterceptor((l) => { lines.push(l); });
  try { return { value: await f(), lines }; } finally { setLogInterceptor(prev); }
}

// --- the training loop: one liar among three workers

const loopCfg: RunConfig = (() => {
  const c = toyConfig(4);
  return { model: { ...c.model, vocab_size: 128, d_model: 16 }, train: { ...c.train, steps: 6, checkpoint_every: 100, eval_every: 0 } };
})();
const data = syntheticData(path.join(root, 'data'), 128, 3, 12);
let n = 0;

function loop(extra: Partial<TrainLoopOptions>) {
  return runTrainingLoop({
    config: loopCfg, dataDir: data, outDir: path.join(root, `run-${n++}`), resume: false, backend: 'cpu', replicaModule: TOY_REPLICA,
    inProcess: true, threads: 0, testSequences: 4, ...extra,
  });
}

test('--verify-fraction 1 with one lying worker among three: the liar is named and removed, the weights are a fault-free run\'s', async () => {
  const losses: number[] = [];
  const ref = await loop({ observers: [{ onStep: (e) => losses.push(e.loss) }] });
  // the reference really trained (else "same bytes" below would prove nothing)
  assert.notEqual(ref.weightsSha256, weightsSha256(initParams(buildLayout(loopCfg.model), loopCfg.model, loopCfg.train.seed)));
  assert.ok(losses.at(-1)! < losses[0], `loss ${losses[0]} → ${losses.at(-1)}`);

  // without verification the same liar changes the weights (so the check below can fail)
  const unverified = await loop({ hooks: { started: (fleet) => addWorkers(fleet) } });
  assert.notEqual(unverified.weightsSha256, ref.weightsSha256);

  const rejected: { workerId: string; reason: RejectReason }[] = [];
  let liar: FakeLink | undefined;
  let fleetRef: Coordinator | undefined;
  const { value: r, lines } = await capturingLog(() => loop({
    verifyFraction: 1,
    observers: [{ onRejected: (e) => rejected.push(e) }],
    hooks: { started: (fleet) => { fleetRef = fleet; liar = addWorkers(fleet); } },
  }));
  assert.equal(r.weightsSha256, ref.weightsSha256);
  assert.ok(liar && liar.tasks.length > 0, 'the liar computed nothing');
  // (ballots it voted in before its removal are decided too: each names it)
  assert.ok(rejected.length >= 1, 'nothing rejected');
  assert.deepEqual([...new Set(rejected.map((e) => `${e.workerId}:${e.reason}`))], ['ws-9-liar:disagree']);
  assert.ok(liar.kicked.length >= 1);
  assert.ok(fleetRef!.scheduler.bannedFor('liar') > 0);
  assert.equal(fleetRef!.scheduler.bannedFor('honest'), 0);
  assert.ok(lines.some((l) => /^warn: worker ws-9-liar: its result for step \d+ contradicts 2 other worker/.test(l)), lines.join(''));
});

/** Two more workers beside the in-process one: an honest one and a liar (remote-like). */
function addWorkers(fleet: Coordinator): FakeLink {
  fleet.scheduler.addLink(new FakeLink('honest', loopCfg, () => fleet.weights, { transport: 'ws' }));
  const liar = new FakeLink('ws-9-liar', loopCfg, () => fleet.weights, { identity: 'liar', transport: 'ws', tamper: nudge });
  fleet.scheduler.addLink(liar);
  return liar;
}

// --- the scheduler

const cfg = toyConfig(4);
const SHARDS = cfg.train.micro_shards;

/** Run `steps` steps on fresh batches; every step must give its reference bytes. Returns the computations. */
async function steps(scheduler: ReturnType<typeof toyScheduler>['scheduler'], links: FakeLink[], w: Float32Array, count: number): Promise<number> {
  for (let s = 0; s < count; s++) {
    const b = paddedBatch(100 + s);
    const out = await within(scheduler.runStep(s, 0, b, SHARDS, 1024), 30_000, `step ${s}`);
    assert.equal(gradientSha(cfg, out.root), gradientSha(cfg, referenceSum(cfg, w, b)), `step ${s}`);
  }
  return links.reduce((a, l) => a + l.tasks.length, 0);
}

test('the fraction: P = 0 computes each task once, P = 1 twice, P = 0.25 about a quarter more; the bytes never change', async () => {
  const w = toyWeights(cfg);
  const STEPS = 40;
  const computed = new Map<number, number>();
  for (const p of [0, 0.25, 1]) {
    const { scheduler, ev } = toyScheduler(cfg, { verifyFraction: p, verifySeed: 12345 });
    const links = ['a', 'b', 'c'].map((id) => new FakeLink(id, cfg, () => w));
    for (const l of links) scheduler.addLink(l);
    computed.set(p, await steps(scheduler, links, w, STEPS));
    assert.deepEqual(ev.rejected, []);
  }
  // 3 thread-like workers, 4 shards: 4 tasks a step
  const tasks = 4 * STEPS;
  assert.equal(computed.get(0), tasks);
  assert.equal(computed.get(1), 2 * tasks);
  const extra = computed.get(0.25)! - tasks;
  assert.ok(extra > 0.125 * tasks && extra < 0.375 * tasks, `${extra} of ${tasks} tasks verified`);
});

test('a single worker cannot be verified: one warning, results accepted as they come', async () => {
  const w = toyWeights(cfg);
  const { scheduler, ev } = toyScheduler(cfg, { verifyFraction: 1, verifySeed: 1 });
  const only = new FakeLink('inprocess', cfg, () => w, { transport: 'inprocess' });
  scheduler.addLink(only);
  const { value: computed, lines } = await capturingLog(() => steps(scheduler, [only], w, 3));
  assert.equal(computed, 3);
  assert.equal(lines.filter((l) => /verify-fraction/.test(l)).length, 1, lines.join(''));
  assert.deepEqual(ev.rejected, []);
});

test('two workers, a local one and a remote liar: no third to ask, the coordinator\'s own worker decides; the liar is removed', async () => {
  const w = toyWeights(cfg);
  const { scheduler, ev } = toyScheduler(cfg, { verifyFraction: 1, verifySeed: 2 });
  const local = new FakeLink('thread-0', cfg, () => w, { transport: 'thread' });
  const liar = new FakeLink('ws-1-liar', cfg, () => w, { identity: 'liar', transport: 'ws', tamper: nudge });
  scheduler.addLink(local);
  scheduler.addLink(liar);
  await steps(scheduler, [local, liar], w, 2);
  assert.deepEqual(ev.rejected, [{ workerId: 'ws-1-liar', reason: 'disagree' }]);
  assert.deepEqual(scheduler.ids(), ['thread-0']);
  assert.ok(scheduler.bannedFor('liar') > 0);
});

test('two remote workers that disagree, nobody to decide: both struck each time, never a lie accepted — both end banned', async () => {
  const w = toyWeights(cfg);
  const { scheduler, ev } = toyScheduler(cfg, { verifyFraction: 1, verifySeed: 3, maxStrikes: 3, noWorkerTimeoutMs: 200 });
  const honest = new FakeLink('ws-1-honest', cfg, () => w, { identity: 'honest', transport: 'ws' });
  const liar = new FakeLink('ws-2-liar', cfg, () => w, { identity: 'liar', transport: 'ws', tamper: nudge });
  scheduler.addLink(honest);
  scheduler.addLink(liar);
  await assert.rejects(within(scheduler.runStep(0, 0, paddedBatch(7), SHARDS, 1024), 30_000, 'step'), NoWorkersError);
  assert.ok(ev.rejected.length >= 6 && ev.rejected.every((e) => e.reason === 'disagree'), JSON.stringify(ev.rejected));
  assert.ok(scheduler.bannedFor('honest') > 0 && scheduler.bannedFor('liar') > 0);
});
