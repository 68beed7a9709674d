/**
 * Divergence is its own outcome (issue 9, item 5): a non-finite result that a recomputation
 * confirms (another worker, or the same one when it is alone) fails the step with a DivergedError
 * — no worker is struck or expelled — and the training loop stops with one line naming the step
 * and the checkpoint kept, exit 65 through the CLI, no checkpoint of non-finite weights. A result
 * the recomputation contradicts is the worker's fault. Before this, NaN results from a healthy
 * model were strikes: the workers were expelled, the step waited forever (exit 13, no message).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import type { RunConfig } from '../src/config/index.ts';
import type { RejectReason, Transport } from '../src/events/index.ts';
import { buildLayout, initParams } from '../src/model/layout.ts';
import { createOptimizer } from '../src/optim/index.ts';
import { loadCheckpoint, saveCheckpoint } from '../src/train/checkpoint.ts';
import { runTrainingLoop, type TrainLoopOptions } from '../src/train/loop.ts';
import { DivergedError, EXIT_DIVERGED } from '../src/util/errors.ts';
import { FakeLink, gradientSha, paddedBatch, referenceSum, toyConfig, toyScheduler, toyWeights, within } from './support/fake-link.ts';
import { syntheticData } from './support/fixtures.ts';
import { writeSyntheticData } from './support/synthetic-data.ts';
import { TOY_REPLICA } from './support/toy-replica.ts';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-divergence-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

const cfg = toyConfig(4);
const SHARDS = cfg.train.micro_shards;

/** `w` with a NaN in the final norm's gain, which every token's loss goes through (in place). */
function withNaN(w: Float32Array, model: RunConfig['model']): Float32Array {
  w[buildLayout(model).byName.get('norm.weight')!.offset + 1] = NaN;
  return w;
}

/** Weights of a model that diverged: every honest result is non-finite. */
function nanWeights(): Float32Array {
  return withNaN(toyWeights(cfg), cfg.model);
}

const allFinite = (a: Float32Array) => a.every((x) => Number.isFinite(x));

test('NaN from a diverged model: confirmed by a second worker, the step fails as diverged and nobody is struck', async () => {
  const w = nanWeights();
  const { scheduler, ev } = toyScheduler(cfg);
  const links = ['a', 'b', 'c'].map((id) => new FakeLink(id, cfg, () => w));
  for (const l of links) scheduler.addLink(l);
  await assert.rejects(within(scheduler.runStep(0, 0, paddedBatch(21), SHARDS, 1024), 30_000, 'step'), (e: unknown) => e instanceof DivergedError && /non-finite loss\/gradient/.test(e.message));
  // a recomputation really happened (the same block by two workers)
  const keys = links.flatMap((l) => l.tasks.map((t) => `${t.level}:${t.index}`));
  assert.ok(keys.length > new Set(keys).size, `blocks computed: ${keys.join(' ')}`);
  assert.deepEqual(ev.rejected, []);
  assert.deepEqual(links.map((l) => l.kicked.length), [0, 0, 0]);
  assert.deepEqual(scheduler.ids(), ['a', 'b', 'c']);
});

test('NaN with a single worker: it rechecks the block, the same bytes again are divergence, and it stays', async () => {
  const w = nanWeights();
  const { scheduler, ev } = toyScheduler(cfg);
  const only = new FakeLink('inprocess', cfg, () => w, { transport: 'inprocess' });
  scheduler.addLink(only);
  await assert.rejects(within(scheduler.runStep(0, 0, paddedBatch(22), SHARDS, 1024), 30_000, 'step'), DivergedError);
  assert.equal(only.tasks.length, 2);
  assert.deepEqual(only.tasks.map((t) => `${t.level}:${t.index}`), ['2:0', '2:0']);
  assert.deepEqual(ev.rejected, []);
  assert.deepEqual(only.kicked, []);
  assert.deepEqual(scheduler.ids(), ['inprocess']);
});

test('a NaN the recomputation contradicts is the worker\'s fault: one strike, the good bytes are taken', async () => {
  const w = toyWeights(cfg);
  const b = paddedBatch(23);
  const { scheduler, ev } = toyScheduler(cfg);
  // a flaky worker: its first result only is broken
  const flaky = new FakeLink('flaky', cfg, () => w, { tamper: (r, _t, n) => { if (n === 0) r.rest[1] = NaN; } });
  const good = new FakeLink('good', cfg, () => w);
  scheduler.addLink(flaky);
  scheduler.addLink(good);
  const out = await within(scheduler.runStep(0, 0, b, SHARDS, 1024), 30_000, 'step');
  assert.equal(gradientSha(cfg, out.root), gradientSha(cfg, referenceSum(cfg, w, b)));
  assert.deepEqual(ev.rejected, [{ workerId: 'flaky', reason: 'nonfinite' }]);
  assert.deepEqual(scheduler.ids(), ['flaky', 'good']);
});

test('the same worker alone: a NaN its recheck contradicts is a transient fault (a strike), the recheck is taken', async () => {
  const w = toyWeights(cfg);
  const b = paddedBatch(24);
  const { scheduler, ev } = toyScheduler(cfg);
  const flaky = new FakeLink('inprocess', cfg, () => w, { transport: 'inprocess', tamper: (r, _t, n) => { if (n === 0) r.lossSum = Infinity; } });
  scheduler.addLink(flaky);
  const out = await within(scheduler.runStep(0, 0, b, SHARDS, 1024), 30_000, 'step');
  assert.equal(gradientSha(cfg, out.root), gradientSha(cfg, referenceSum(cfg, w, b)));
  assert.deepEqual(ev.rejected, [{ workerId: 'inprocess', reason: 'nonfinite' }]);
});

test('two suspect results that disagree: a third worker decides; both bad ones are struck', async () => {
  const w = toyWeights(cfg);
  const b = paddedBatch(25);
  const { scheduler, ev } = toyScheduler(cfg);
  // two broken workers, each with its own garbage, and one honest worker that joins after them
  const inf = new FakeLink('inf', cfg, () => w, { tamper: (r) => { r.rest[2] = Infinity; } });
  const big = new FakeLink('big', cfg, () => w, { tamper: (r) => { r.rest[2] = 1e37; } });
  const honest = new FakeLink('honest', cfg, () => w);
  scheduler.addLink(inf);
  scheduler.addLink(big);
  scheduler.addLink(honest);
  const out = await within(scheduler.runStep(0, 0, b, SHARDS, 1024), 30_000, 'step');
  assert.equal(gradientSha(cfg, out.root), gradientSha(cfg, referenceSum(cfg, w, b)));
  const reasons = new Map<string, Set<RejectReason>>();
  for (const e of ev.rejected) reasons.set(e.workerId, (reasons.get(e.workerId) ?? new Set()).add(e.reason));
  assert.deepEqual([...reasons.keys()].sort(), ['big', 'inf']);
  assert.deepEqual([...reasons.get('inf')!], ['nonfinite']);
  assert.deepEqual([...reasons.get('big')!], ['implausible']);
});

// --- the training loop

const loopCfg: RunConfig = { model: { ...cfg.model, vocab_size: 128, d_model: 16 }, train: { ...cfg.train, steps: 4, checkpoint_every: 1, eval_every: 0 } };
const data = syntheticData(path.join(root, 'data'), 128, 3, 12);
let n = 0;

function loop(extra: Partial<TrainLoopOptions>, train: Partial<RunConfig['train']> = {}) {
  return runTrainingLoop({
    config: { model: loopCfg.model, train: { ...loopCfg.train, ...train } }, dataDir: data, outDir: path.join(root, `run-${n++}`), resume: false,
    backend: 'cpu', replicaModule: TOY_REPLICA, inProcess: true, threads: 0, testSequences: 4, ...extra,
  });
}

test('the loop: lr 1e30 diverges at step 2 — one error naming the step and the checkpoint kept (step 1, finite), no final.json', async () => {
  const out = path.join(root, 'lr-1e30');
  const rejected: string[] = [];
  const losses: number[] = [];
  const err = await loop({ outDir: out, observers: [{ onRejected: (e) => rejected.push(e.reason), onStep: (e) => losses.push(e.loss) }] }, { lr: 1e30, min_lr: 0, warmup_steps: 0 }).then(
    () => assert.fail('the run finished'), (e: unknown) => e);
  assert.ok(err instanceof DivergedError, String(err));
  assert.equal(err.exitCode, EXIT_DIVERGED);
  assert.equal(err.message, `diverged at step 2: non-finite loss/gradient; last good checkpoint kept (${path.join(out, 'checkpoint.vilm')}, step 1)`);
  // step 1 was a real step (finite loss), its checkpoint the last written, with finite weights
  assert.equal(losses.length, 1);
  assert.ok(Number.isFinite(losses[0]));
  const ck = loadCheckpoint(out);
  assert.equal(ck.step, 1);
  assert.ok(allFinite(ck.weights));
  assert.ok(!existsSync(path.join(out, 'final.json')));
  assert.deepEqual(rejected, []);
});

test('the loop with 2 worker threads and NaN initial weights: diverged at step 1, no checkpoint, no thread expelled', async () => {
  const init = withNaN(initParams(buildLayout(loopCfg.model), loopCfg.model, 3), loopCfg.model);
  const out = path.join(root, 'nan-init');
  const rejected: string[] = [];
  const counts: Record<Transport, number>[] = [];
  const err = await loop({ outDir: out, inProcess: false, threads: 2, initWeights: init, observers: [{ onRejected: (e) => rejected.push(e.reason), onWorkers: (c) => counts.push(c) }] }).then(
    () => assert.fail('the run finished'), (e: unknown) => e);
  assert.ok(err instanceof DivergedError, String(err));
  assert.equal(err.message, 'diverged at step 1: non-finite loss/gradient; no checkpoint was written before it');
  assert.deepEqual(rejected, []);
  // one task slot per core (src/fleet/coordinator/thread-link.ts), all still there at the end
  assert.equal(counts.at(-1)?.thread, Math.min(2, availableParallelism()), JSON.stringify(counts));
  // the thread workers were never removed: the count only went up
  for (let i = 1; i < counts.length; i++) assert.ok(counts[i].thread >= counts[i - 1].thread, JSON.stringify(counts));
  assert.ok(!existsSync(path.join(out, 'checkpoint.vilm')));
});

test('the loop: weights that overflow in the optimizer step (lr 1e39) are divergence at once, not published nor saved', async () => {
  const out = path.join(root, 'lr-1e39');
  const err = await loop({ outDir: out }, { lr: 1e39, min_lr: 0, warmup_steps: 0 }).then(() => assert.fail('the run finished'), (e: unknown) => e);
  assert.ok(err instanceof DivergedError, String(err));
  assert.equal(err.message, 'diverged at step 1: non-finite weights after the optimizer step; no checkpoint was written before it');
  assert.ok(!existsSync(path.join(out, 'checkpoint.vilm')));
});

test('saveCheckpoint refuses non-finite weights or optimizer state (DivergedError) and keeps the file there', async () => {
  const dir = path.join(root, 'guard');
  const layout = buildLayout(loopCfg.model);
  const good = initParams(layout, loopCfg.model, 1);
  const opt = createOptimizer(loopCfg.train, layout.total);
  const ck = { config: loopCfg, step: 3, weights: good, optimizer: opt.getState(), sampler: null, rng: null, tokenizerJson: '', meta: {} };
  await saveCheckpoint(dir, ck);
  const before = readFileSync(path.join(dir, 'checkpoint.vilm'));
  const bad = good.slice();
  bad[10] = Infinity;
  await assert.rejects(saveCheckpoint(dir, { ...ck, step: 4, weights: bad }), (e: unknown) => e instanceof DivergedError && /non-finite weights/.test(e.message));
  const state = opt.getState();
  const name = Object.keys(state.buffers)[0];
  state.buffers[name][0] = NaN;
  await assert.rejects(saveCheckpoint(dir, { ...ck, step: 4, optimizer: state }), (e: unknown) => e instanceof DivergedError && /non-finite optimizer state/.test(e.message));
  assert.deepEqual(readFileSync(path.join(dir, 'checkpoint.vilm')), before);
});

test('`vilm train --set train.lr=1e30 --set train.warmup_steps=0` (real model): one line naming the step, exit 65, the step-1 checkpoint kept', { timeout: 200_000 }, () => {
  const cliData = writeSyntheticData(path.join(root, 'cli-data'), { vocab: 500, buckets: [16, 32], rowsPerBucket: 16, seed: 9 });
  const out = path.join(root, 'cli-run');
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'train', '--config', 'configs/test.yaml', '--data', cliData, '--out', out,
    '--backend', 'wasm', '--steps', '4', '--metrics-port', '0', '--set', 'train.lr=1e30', '--set', 'train.warmup_steps=0', '--set', 'train.checkpoint_every=1'],
  { encoding: 'utf8', timeout: 180_000 });
  assert.equal(r.status, EXIT_DIVERGED, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => /diverged|^vilm: /.test(l));
  assert.equal(lines.length, 1, r.stderr);
  assert.equal(lines[0], `vilm: diverged at step 2: non-finite loss/gradient; last good checkpoint kept (${path.join(out, 'checkpoint.vilm')}, step 1)`);
  // no worker was blamed
  assert.doesNotMatch(r.stderr, /rejected|disconnect|no workers/i);
  const ck = loadCheckpoint(out);
  assert.equal(ck.step, 1);
  assert.ok(allFinite(ck.weights));
  assert.ok(!existsSync(path.join(out, 'final.json')));
  assert.equal(r.stdout, '');
});
