/**
 * Exactness end to end, with the real RoPE decoder (configs/test.yaml, wasm): the weights after 6
 * steps have the same weightsSha256 for single-process training, 1, 2 and 3 worker threads, 2
 * WebSocket workers in separate processes, 2 threads with one killed mid-step, and a coordinator
 * killed (SIGKILL) after a checkpoint and restarted with --resume.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { applyOverrides, loadConfig } from '../src/config/index.ts';
import { runTrainingLoop, type TrainLoopOptions } from '../src/train/loop.ts';
import type { ReassignReason, WorkerResultEvent } from '../src/events/index.ts';
import { buildLayout, initParams } from '../src/model/layout.ts';
import { weightsSha256 } from '../src/train/checkpoint.ts';
import { preparedData } from './support/fixtures.ts';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-dist-exact-'));
const data = preparedData(path.join(root, 'prep'));
const config = loadConfig('configs/test.yaml');
let ref = '';
let n = 0;

function run(extra: Partial<TrainLoopOptions>) {
  return runTrainingLoop({
    config, dataDir: data, outDir: path.join(root, `run-${n++}`), resume: false, backend: 'wasm', inProcess: false, threads: 0,
    testSequences: 8, ...extra,
  });
}

function cli(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

function exited(p: ChildProcess): Promise<number | null> {
  return new Promise((res) => { if (p.exitCode !== null || p.signalCode !== null) res(p.exitCode); else p.on('exit', (c) => res(c)); });
}

test.after(() => rmSync(root, { recursive: true, force: true }));

test('single process (the train loop with one in-process worker) is the reference', { timeout: 300_000 }, async () => {
  const losses: number[] = [];
  const r = await run({ inProcess: true, observers: [{ onStep: (e) => losses.push(e.loss) }] });
  assert.equal(r.step, 6);
  assert.ok(r.final && Number.isFinite(r.final.testLoss) && Number.isFinite(r.final.trainLoss ?? NaN));
  ref = r.weightsSha256;
  assert.match(ref, /^[0-9a-f]{64}$/);
  // every comparison below is against a run that really trained: the weights left their
  // initialisation and the loss fell (a disabled optimizer step would make all runs "equal")
  assert.notEqual(ref, weightsSha256(initParams(buildLayout(config.model), config.model, config.train.seed)));
  assert.ok(losses[losses.length - 1] < losses[0] - 0.2, `loss ${losses[0]} → ${losses[losses.length - 1]}`);
});

for (const threads of [1, 2, 3]) {
  test(`${threads} worker thread(s) give the same weights`, async () => {
    const r = await run({ threads });
    assert.equal(r.weightsSha256, ref);
  });
}

test('2 threads, one killed mid-step: its task is requeued and the weights are the same', async () => {
  const reassigned: ReassignReason[] = [];
  let killed = false;
  const r = await run({
    threads: 2,
    observers: [{ onReassigned: (e) => reassigned.push(e.reason) }],
    hooks: { stepStarted: (step, fleet) => { if (step === 2) killed = fleet.threadPool!.killOne(); } },
  });
  assert.ok(killed);
  assert.ok(reassigned.includes('died'), `reassigned: ${reassigned.join(',')}`);
  assert.equal(r.weightsSha256, ref);
});

test('2 WebSocket workers in separate processes give the same weights', async () => {
  const workers: ChildProcess[] = [];
  const traffic: WorkerResultEvent[] = [];
  const r = await run({
    remote: { host: '127.0.0.1', port: 0 }, minWorkers: 2,
    observers: [{ onWorkerResult: (e) => traffic.push(e) }],
    hooks: {
      started: (fleet) => {
        for (const name of ['w1', 'w2']) workers.push(cli(['worker', '--connect', `ws://127.0.0.1:${fleet.remote!.port}`, '--name', name, '--retry', '5']));
      },
    },
  });
  assert.equal(r.weightsSha256, ref);
  // per worker and step: the weights went out (4 bytes a parameter), a gradient came back
  const total = buildLayout(config.model).total;
  assert.ok(traffic.length >= 6 && traffic.every((e) => e.transport === 'ws' && e.bytesSent >= 4 * total && e.bytesReceived > 0 && e.microShards > 0));
  // the coordinator said bye: the workers exit cleanly
  assert.deepEqual(await Promise.all(workers.map(exited)), [0, 0]);
});

test('one `vilm worker --threads 2` process joins as two workers and gives the same weights', async () => {
  const workers: ChildProcess[] = [];
  const ids = new Set<string>();
  const r = await run({
    remote: { host: '127.0.0.1', port: 0 }, minWorkers: 2,
    observers: [{ onWorkerResult: (e) => ids.add(e.workerId) }],
    hooks: { started: (fleet) => { workers.push(cli(['worker', '--connect', `ws://127.0.0.1:${fleet.remote!.port}`, '--name', 'big', '--threads', '2', '--retry', '5'])); } },
  });
  assert.equal(r.weightsSha256, ref);
  assert.equal(ids.size, 2, [...ids].join(','));
  assert.deepEqual(await Promise.all(workers.map(exited)), [0]);
});

test('a WebSocket worker keeps heartbeating while a task computes (tasks far longer than the heartbeat timeout)', async () => {
  const workers: ChildProcess[] = [];
  const reassigned: ReassignReason[] = [];
  const computeSeconds: number[] = [];
  const r = await runTrainingLoop({
    config: applyOverrides(config, ['train.batch_tokens=32768', 'train.micro_shards=2']), dataDir: data, outDir: path.join(root, `run-${n++}`),
    resume: false, backend: 'wasm', inProcess: false, threads: 0, testSequences: 8, steps: 3,
    // a timeout far above a loaded machine's stalls (tens of ms), tasks longer still
    remote: { host: '127.0.0.1', port: 0, tuning: { heartbeatMs: 50, heartbeatTimeoutMs: 500 } }, minWorkers: 1,
    observers: [{ onReassigned: (e) => reassigned.push(e.reason), onWorkerResult: (e) => computeSeconds.push(e.computeSeconds) }],
    hooks: { started: (fleet) => { workers.push(cli(['worker', '--connect', `ws://127.0.0.1:${fleet.remote!.port}`, '--name', 'slow', '--retry', '5'])); } },
  });
  assert.equal(r.step, 3);
  // the scenario really happened: tasks ran longer than the heartbeat timeout…
  assert.ok(Math.max(...computeSeconds) > 0.5, `tasks took ${computeSeconds.join(', ')} s`);
  // …and the worker was never dropped for silence
  assert.deepEqual(reassigned, []);
  assert.deepEqual(await Promise.all(workers.map(exited)), [0]);
});

test('a coordinator SIGKILLed after a checkpoint and restarted with --resume gives the same weights', async () => {
  const out = path.join(root, 'killed');
  const args = ['coordinator', '--workers', '2', '--local-only', '--config', 'configs/test.yaml', '--data', data, '--out', out, '--backend', 'wasm', '--test-sequences', '8'];
  const first = cli(args);
  let err = '';
  await new Promise<void>((resolve, reject) => {
    first.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      // checkpoint_every is 3: kill as soon as the step-3 checkpoint is on disk
      if (/checkpoint step=3/.test(err)) { first.kill('SIGKILL'); resolve(); }
    });
    first.on('exit', () => reject(new Error(`coordinator exited before its first checkpoint:\n${err}`)));
  });
  await exited(first);
  const second = cli([...args, '--resume']);
  let out2 = '', err2 = '';
  second.stdout!.on('data', (b: Buffer) => { out2 += b.toString(); });
  second.stderr!.on('data', (b: Buffer) => { err2 += b.toString(); });
  assert.equal(await exited(second), 0, err2);
  assert.match(err2, /training from=3 to=6/);
  const final = JSON.parse(readFileSync(path.join(out, 'final.json'), 'utf8')) as { step: number; weightsSha256: string };
  assert.equal(final.step, 6);
  assert.equal(final.weightsSha256, ref);
  assert.equal((JSON.parse(out2) as { weightsSha256: string }).weightsSha256, ref);
});
