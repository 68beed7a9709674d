/**
 * The 16-bit gradient codec end to end (`train.grad_codec: fp16`, real model, wasm): the weights
 * after 6 steps are the same bytes in one process, with 2 worker threads and with 2 WebSocket
 * workers in separate processes (which send `result16` frames); the run trained (weights moved,
 * loss fell) and is not the fp32 run; and a WebSocket worker's uplink is at most half of a dense
 * fp32 gradient per result (and at most ~half of what the same worker sends with fp32).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { applyOverrides, loadConfig, type RunConfig } from '../src/config/index.ts';
import { runTrainingLoop, type TrainLoopOptions } from '../src/train/loop.ts';
import type { WorkerResultEvent } from '../src/events/index.ts';
import { buildLayout, initParams } from '../src/model/layout.ts';
import { weightsSha256 } from '../src/train/checkpoint.ts';
import { preparedData } from './support/fixtures.ts';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-codec-'));
const data = preparedData(path.join(root, 'prep'));
const fp32 = loadConfig('configs/test.yaml');
const fp16 = applyOverrides(fp32, ['train.grad_codec=fp16']);
const total = buildLayout(fp32.model).total;
let n = 0;
let ref = '';

function run(config: RunConfig, extra: Partial<TrainLoopOptions>) {
  return runTrainingLoop({
    config, dataDir: data, outDir: path.join(root, `run-${n++}`), resume: false, backend: 'wasm', inProcess: false, threads: 0,
    testSequences: 8, ...extra,
  });
}

function exited(p: ChildProcess): Promise<number | null> {
  return new Promise((res) => { if (p.exitCode !== null || p.signalCode !== null) res(p.exitCode); else p.on('exit', (c) => res(c)); });
}

/** A run with 2 `vilm worker` processes; the per-result uplink bytes (the coordinator's bytes received per worker and step ÷ tasks). */
async function wsRun(config: RunConfig): Promise<{ sha: string; upPerShard: number; events: WorkerResultEvent[] }> {
  const workers: ChildProcess[] = [];
  const events: WorkerResultEvent[] = [];
  const r = await run(config, {
    remote: { host: '127.0.0.1', port: 0 }, minWorkers: 2,
    observers: [{ onWorkerResult: (e) => events.push(e) }],
    hooks: {
      started: (fleet) => {
        for (const name of ['c1', 'c2']) {
          workers.push(spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'worker', '--connect', `ws://127.0.0.1:${fleet.remote!.port}`, '--name', name, '--retry', '5'], { stdio: 'ignore' }));
        }
      },
    },
  });
  assert.deepEqual(await Promise.all(workers.map(exited)), [0, 0]);
  const received = events.reduce((a, e) => a + e.bytesReceived, 0), shards = events.reduce((a, e) => a + e.microShards, 0);
  assert.ok(events.length >= 6 && shards > 0 && received > 0);
  return { sha: r.weightsSha256, upPerShard: received / shards, events };
}

test.after(() => rmSync(root, { recursive: true, force: true }));

test('fp16: one process trains, and its weights are not the fp32 run\'s', { timeout: 300_000 }, async () => {
  const losses: number[] = [];
  const r = await run(fp16, { inProcess: true, observers: [{ onStep: (e) => losses.push(e.loss) }] });
  assert.equal(r.step, 6);
  ref = r.weightsSha256;
  assert.notEqual(ref, weightsSha256(initParams(buildLayout(fp16.model), fp16.model, fp16.train.seed)));
  assert.ok(losses[losses.length - 1] < losses[0] - 0.2, `loss ${losses[0]} → ${losses[losses.length - 1]}`);
  const plain = await run(fp32, { inProcess: true });
  assert.notEqual(ref, plain.weightsSha256, 'the codec rounds: a different run');
});

test('fp16: 2 worker threads give the same weights', async () => {
  assert.equal((await run(fp16, { threads: 2 })).weightsSha256, ref);
});

test('fp16: 2 WebSocket workers send result16 frames, give the same weights, and send half the bytes', async (t) => {
  const half = await wsRun(fp16);
  assert.equal(half.sha, ref);
  const full = await wsRun(fp32);
  t.diagnostic(`bytes a result: fp16 ${half.upPerShard.toFixed(0)}, fp32 ${full.upPerShard.toFixed(0)}, dense fp32 ${4 * total}`);
  // with micro_shards 4 and 2 workers every task is one shard: bytes received ÷ shards is one result
  assert.ok(half.upPerShard <= 0.5 * 4 * total, `${half.upPerShard} bytes a result vs dense fp32 ${4 * total}`);
  assert.ok(half.upPerShard <= 0.55 * full.upPerShard, `fp16 ${half.upPerShard} vs fp32 ${full.upPerShard} bytes a result`);
});
