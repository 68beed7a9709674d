/**
 * Membership and transport options, with the fast toy model (the real model's exactness is
 * test/dist-exact.test.ts): every worker leaving mid-run (the coordinator checkpoints, waits and
 * resumes when a worker returns, same bytes), and wss:// with HMAC auth and a self-signed cert.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig, type RunConfig } from '../src/config/index.ts';
import { runRemoteWorker, type RemoteWorkerOptions } from '../src/fleet/worker/remote-worker.ts';
import { Scheduler } from '../src/fleet/coordinator/scheduler.ts';
import { LinkError, type WorkerLink } from '../src/fleet/coordinator/worker-link.ts';
import { loadCheckpoint, weightsSha256 } from '../src/train/checkpoint.ts';
import { buildLayout, initParams } from '../src/model/layout.ts';
import { runTrainingLoop, type TrainLoopOptions } from '../src/train/loop.ts';
import type { Transport } from '../src/events/index.ts';
import { syntheticData } from './support/fixtures.ts';
import { TOY_REPLICA } from './support/toy-replica.ts';

/** A remote worker computing with the toy model (a local choice of the worker process). */
const toyWorker = (o: RemoteWorkerOptions) => runRemoteWorker({ replicaModule: TOY_REPLICA, ...o });

const root = mkdtempSync(path.join(tmpdir(), 'vilm-dist-membership-'));
test.after(() => rmSync(root, { recursive: true, force: true }));
const base = loadConfig('configs/test.yaml');
const config: RunConfig = { model: { ...base.model, vocab_size: 128, d_model: 16 }, train: { ...base.train, checkpoint_every: 100, eval_every: 100 } };
const data = syntheticData(path.join(root, 'data'), 128, 3, 12);
let n = 0;
const TOKEN = 'a shared secret of some length';

function run(extra: Partial<TrainLoopOptions>) {
  return runTrainingLoop({
    config, dataDir: data, outDir: path.join(root, `run-${n++}`), resume: false, backend: 'cpu', replicaModule: TOY_REPLICA,
    inProcess: false, threads: 0, testSequences: 8, ...extra,
  });
}

test('every worker leaves mid-run: the coordinator checkpoints, waits, and finishes with the same bytes when one returns', { timeout: 300_000 }, async () => {
  const losses: number[] = [];
  const ref = await run({ inProcess: true, observers: [{ onStep: (e) => losses.push(e.loss) }] });
  // the reference really trained (else "same bytes" below would prove nothing)
  assert.notEqual(ref.weightsSha256, weightsSha256(initParams(buildLayout(config.model), config.model, config.train.seed)));
  assert.ok(losses[losses.length - 1] < losses[0], `loss ${losses[0]} → ${losses[losses.length - 1]}`);
  const out = path.join(root, 'rejoin');
  const counts: number[] = [];
  let second: Promise<void> | undefined;
  let checkpointedAlone = -1;
  let port = 0;
  const r = await runTrainingLoop({
    config, dataDir: data, outDir: out, resume: false, backend: 'cpu', replicaModule: TOY_REPLICA, inProcess: false, threads: 0, testSequences: 8,
    remote: { host: '127.0.0.1', port: 0 },
    observers: [{
      onWorkers: (c: Record<Transport, number>) => counts.push(c.ws),
      onCheckpoint: (e) => {
        // the checkpoint written while nobody is left: a worker comes back
        if (e.step === 2 && !second) {
          checkpointedAlone = loadCheckpoint(out).step;
          second = toyWorker({ url: `ws://127.0.0.1:${port}`, name: 'second', retryMs: 2000 });
        }
      },
    }],
    hooks: {
      started: (fleet) => {
        port = fleet.remote!.port;
        // the first worker disconnects during step 3 (its socket is dropped by the coordinator's side)
        void toyWorker({ url: `ws://127.0.0.1:${port}`, name: 'first', retryMs: 0 }).catch(() => undefined);
      },
      stepStarted: (step, fleet) => {
        if (step === 2) for (const id of fleet.scheduler.ids()) fleet.scheduler.kick(id, 'test: go away');
      },
    },
  });
  await second;
  assert.equal(checkpointedAlone, 2);
  assert.equal(r.weightsSha256, ref.weightsSha256);
  assert.ok(counts.includes(0), `worker counts: ${counts.join(',')}`);
});

test('wss:// with a self-signed certificate and HMAC authentication', async () => {
  const cert = path.join(root, 'cert.pem'), key = path.join(root, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  const ref = await run({ inProcess: true });
  let worker: Promise<void> | undefined;
  let untrusted: Promise<unknown> | undefined;
  const r = await run({
    remote: { host: '127.0.0.1', port: 0, token: TOKEN, tlsCert: cert, tlsKey: key },
    hooks: {
      started: (fleet) => {
        const url = `wss://127.0.0.1:${fleet.remote!.port}`;
        // a worker that does not trust the certificate cannot connect
        untrusted = toyWorker({ url, token: TOKEN, retryMs: 0 }).then(() => 'connected', (e: Error) => e.message);
        worker = toyWorker({ url, token: TOKEN, caFile: cert, retryMs: 0 });
      },
    },
  });
  await worker;
  assert.equal(r.weightsSha256, ref.weightsSha256);
  assert.match(String(await untrusted), /self.signed|certificate/i);
});

test('a task that fails on every worker fails the step instead of looping forever', async () => {
  let calls = 0;
  const broken: WorkerLink = {
    id: 'broken', identity: 'broken', transport: 'thread',
    run: async () => { calls++; throw new LinkError('died', 'model: sequence too long'); },
    bytes: () => ({ sent: 0, received: 0 }),
    kick: () => undefined,
  };
  const s = new Scheduler({ observers: [], shape: { vocab: 16, d: 4, restSize: 10 }, taskDeadlineMs: Infinity, maxStrikes: 3, noWorkerTimeoutMs: Infinity });
  s.addLink(broken);
  await assert.rejects(s.runStep(0, 0, { tokens: new Uint16Array(8).fill(1), rows: 4, seqLen: 2 }, 4, 64), /tasks keep failing .*sequence too long/);
  assert.ok(calls > 4 && calls < 100, `${calls} attempts`);
});
