/**
 * Scaling benchmark of the distributed trainer, in ONE run so the numbers compare side by side:
 * training tokens/s with 1, 2, 4, 8 local worker threads and with 2 WebSocket worker processes on
 * 127.0.0.1; the coordinator's own time per step (reduce + optimizer + publish) as a fraction of
 * the step; bytes sent/received per worker per step. Prints a table and writes
 * bench-results/bench-scaling.json.
 *
 *   npx tsx scripts/bench-scaling.ts [--config configs/tiny.yaml] [--data DIR] [--workers-list 1,2,4,8]
 *                                    [--ws 2] [--steps 4] [--warmup 1] [--repeat 3]
 *
 * The configurations run interleaved (1, 2, 4, 8, ws, then again) `--repeat` times and each row is
 * the run with the median tokens/s, so a noisy neighbour on a shared VM hits every row alike. [--set train.micro_shards=16 …]
 *
 * `--verify P` (0 < P ≤ 1) adds a row `verify-N` per thread count N ≥ 2: the same run with
 * `--verify-fraction P` (a fraction P of tasks computed twice, bytes compared), so the table shows
 * verification's cost beside the unverified run — ideally tokens/s × 1/(1 + P) — and the weights
 * must stay the same. Cheap: `--workers-list 2 --ws 0 --verify 0.25 --repeat 1 --config configs/test.yaml`.
 *
 * Without --data it uses /work/shared/prepared when present, else writes random token rows of the
 * config's vocabulary (speed does not depend on the text) to a temp dir.
 * Targets on a 2-core machine: 2 workers ≥ 1.8× one; 8 not slower than 2 by > 10 %;
 * coordinator ≤ 5 % of the step; WebSocket ≥ 85 % of threads (same worker count).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { applyOverrides, loadConfig } from '../src/config/index.ts';
import { writeSyntheticData } from '../test/support/synthetic-data.ts';
import { runTrainingLoop } from '../src/train/loop.ts';
import type { StepEvent, WorkerResultEvent } from '../src/events/index.ts';
import { writeFileAtomic } from '../src/util/atomic.ts';
import { setQuiet } from '../src/util/log.ts';

const { values: args } = parseArgs({
  options: {
    config: { type: 'string', default: 'configs/tiny.yaml' },
    data: { type: 'string' },
    'workers-list': { type: 'string', default: '1,2,4,8' },
    ws: { type: 'string', default: '2' },
    steps: { type: 'string', default: '4' },
    warmup: { type: 'string', default: '1' },
    repeat: { type: 'string', default: '3' },
    out: { type: 'string', default: 'bench-results/bench-scaling.json' },
    set: { type: 'string', multiple: true, default: [] },
    verify: { type: 'string', default: '0' },
  },
});

interface Row {
  name: string;
  /** --verify-fraction of the run (0: none) */
  verifyFraction: number;
  /** micro-shards computed per micro-shard of the batch (1: each once; verification computes some twice) */
  workFactor: number;
  transport: 'thread' | 'ws';
  workers: number;
  steps: number;
  tokensPerSec: number;
  paddedTokensPerSec: number;
  stepSeconds: number;
  coordinatorSeconds: number;
  coordinatorFraction: number;
  waitStragglersFraction: number;
  bytesSentPerWorkerStep: number;
  bytesReceivedPerWorkerStep: number;
  weightsSha256: string;
}

const warmup = Number(args.warmup), measured = Number(args.steps);
const base = loadConfig(args.config);
const cfg = applyOverrides(base, [`train.steps=${warmup + measured}`, 'train.eval_every=0', 'train.checkpoint_every=0', 'train.log_every=1000', 'train.eval_sequences=1', ...(args.set ?? [])]);
const root = mkdtempSync(path.join(tmpdir(), 'vilm-bench-scaling-'));
const shared = '/work/shared/prepared';
const data = args.data ?? (existsSync(path.join(shared, 'manifest.json')) ? shared : writeSyntheticData(path.join(root, 'data'), {
  vocab: cfg.model.vocab_size, buckets: [50, 100, 150, 200, 250].filter((b) => b <= cfg.model.max_len), rowsPerBucket: 200, seed: 1,
}));
setQuiet(true);

async function measure(name: string, transport: 'thread' | 'ws', workers: number, verifyFraction = 0): Promise<Row> {
  const steps: StepEvent[] = [];
  const perWorker: WorkerResultEvent[] = [];
  let current = 0;
  const children: ChildProcess[] = [];
  const r = await runTrainingLoop({
    config: cfg, dataDir: data, outDir: path.join(root, name), resume: false, backend: 'auto', inProcess: false,
    threads: transport === 'thread' ? workers : 0, testSequences: 8, verifyFraction,
    remote: transport === 'ws' ? { host: '127.0.0.1', port: 0 } : undefined, minWorkers: transport === 'ws' ? workers : 1,
    observers: [{
      onStep: (e) => { current = e.step; if (e.step > warmup) steps.push(e); },
      onWorkerResult: (e) => { if (current > warmup) perWorker.push(e); },
    }],
    hooks: {
      started: (fleet) => {
        if (transport !== 'ws') return;
        for (let i = 0; i < workers; i++) {
          // VILM_BENCH_CLI: the vilm entry to run the workers with (a bundled build elsewhere)
          const cli = process.env.VILM_BENCH_CLI ?? 'bin/vilm.js';
          children.push(spawn(process.execPath, [cli, 'worker', '--connect', `ws://127.0.0.1:${fleet.remote!.port}`, '--name', `bench-${i}`], { stdio: 'ignore' }));
        }
      },
    },
  });
  await Promise.all(children.map((c) => new Promise((res) => { if (c.exitCode !== null) res(null); else c.on('exit', res); })));
  const sum = (f: (e: StepEvent) => number) => steps.reduce((a, e) => a + f(e), 0);
  const total = sum((e) => e.timing.total);
  const coord = sum((e) => e.timing.reduce + e.timing.optimizer + e.timing.publish);
  const workerSteps = Math.max(1, perWorker.length);
  return {
    name, verifyFraction, transport, workers, steps: steps.length,
    workFactor: perWorker.reduce((a, e) => a + e.microShards, 0) / Math.max(1, steps.length * cfg.train.micro_shards),
    tokensPerSec: sum((e) => e.tokens) / total,
    paddedTokensPerSec: sum((e) => e.paddedTokens) / total,
    stepSeconds: total / steps.length,
    coordinatorSeconds: coord / steps.length,
    coordinatorFraction: coord / total,
    waitStragglersFraction: sum((e) => e.timing.waitStragglers) / total,
    bytesSentPerWorkerStep: perWorker.reduce((a, e) => a + e.bytesSent, 0) / workerSteps,
    bytesReceivedPerWorkerStep: perWorker.reduce((a, e) => a + e.bytesReceived, 0) / workerSteps,
    weightsSha256: r.weightsSha256,
  };
}

async function main(): Promise<void> {
  const runs = new Map<string, Row[]>();
  const list = args['workers-list'].split(',').map(Number).filter((n) => n > 0);
  const nWs = Number(args.ws);
  const verify = Number(args.verify);
  if (!(verify >= 0 && verify <= 1)) throw new Error(`--verify: a fraction 0..1, got ${args.verify}`);
  const repeat = Math.max(1, Number(args.repeat));
  const add = (r: Row) => { const key = r.name.replace(/-\d+$/, ''); const a = runs.get(key) ?? []; a.push(r); runs.set(key, a); };
  for (let k = 1; k <= repeat; k++) {
    for (const n of list) {
      process.stderr.write(`[${k}/${repeat}] threads ${n}…\n`);
      add(await measure(`threads-${n}-${k}`, 'thread', n));
      if (verify > 0 && n >= 2) {
        process.stderr.write(`[${k}/${repeat}] threads ${n}, --verify-fraction ${verify}…\n`);
        add(await measure(`verify-${n}-${k}`, 'thread', n, verify));
      }
    }
    if (nWs > 0) {
      process.stderr.write(`[${k}/${repeat}] websocket ${nWs}…\n`);
      add(await measure(`ws-${nWs}-${k}`, 'ws', nWs));
    }
  }
  // the median run of each configuration (by tokens/s)
  const rows: Row[] = [...runs.values()].map((rs) => {
    const sorted = [...rs].sort((a, b) => a.tokensPerSec - b.tokensPerSec);
    const med = sorted[Math.floor((sorted.length - 1) / 2)];
    return { ...med, name: med.name.replace(/-\d+$/, '') };
  });
  const allRuns = [...runs.values()].flat();
  rmSync(root, { recursive: true, force: true });

  const by = (name: string) => rows.find((r) => r.name === name);
  const one = by('threads-1'), two = by('threads-2'), eight = by('threads-8'), ws = by(`ws-${nWs}`), wsThreads = by(`threads-${nWs}`);
  const ratio = (a?: Row, b?: Row) => (a && b ? a.tokensPerSec / b.tokensPerSec : null);
  const summary = {
    speedup2vs1: ratio(two, one),
    eight_vs_two: ratio(eight, two),
    maxCoordinatorFraction: Math.max(...rows.map((r) => r.coordinatorFraction)),
    ws_vs_threads: ratio(ws, wsThreads),
    sameWeights: new Set(allRuns.map((r) => r.weightsSha256)).size === 1,
    // tokens/s with --verify-fraction over the same thread count without (ideal: 1 / (1 + P))
    verifyCost: verify > 0 ? Object.fromEntries(list.filter((k) => k >= 2).map((k) => [`threads-${k}`, ratio(by(`verify-${k}`), by(`threads-${k}`))])) : null,
    verifyIdeal: verify > 0 ? 1 / (1 + verify) : null,
    targets: { speedup2vs1: '>= 1.8', eight_vs_two: '>= 0.9', maxCoordinatorFraction: '<= 0.05', ws_vs_threads: '>= 0.85' },
  };
  const fmt = (x: number, d = 0) => x.toFixed(d).padStart(10);
  const lines = [
    `config ${args.config}, ${cfg.train.batch_tokens} tokens/batch, ${cfg.train.micro_shards} micro-shards, ${measured} measured steps after ${warmup} warm-up, median of ${repeat} interleaved runs, ${cpus().length} cores`,
    `${'run'.padEnd(12)}${'tokens/s'.padStart(10)}${'padded/s'.padStart(10)}${'step s'.padStart(10)}${'coord ms'.padStart(10)}${'coord %'.padStart(10)}${'wait %'.padStart(10)}${'work ×'.padStart(8)}${'sent/w/st'.padStart(12)}${'recv/w/st'.padStart(12)}`,
    ...rows.map((r) => `${r.name.padEnd(12)}${fmt(r.tokensPerSec)}${fmt(r.paddedTokensPerSec)}${fmt(r.stepSeconds, 2)}${fmt(r.coordinatorSeconds * 1000, 1)}${fmt(r.coordinatorFraction * 100, 1)}${fmt(r.waitStragglersFraction * 100, 1)}${r.workFactor.toFixed(2).padStart(8)}${String(Math.round(r.bytesSentPerWorkerStep)).padStart(12)}${String(Math.round(r.bytesReceivedPerWorkerStep)).padStart(12)}`),
    '',
    `2 vs 1 thread: ${summary.speedup2vs1?.toFixed(2) ?? '-'}× (target ≥ 1.8)   8 vs 2: ${summary.eight_vs_two?.toFixed(2) ?? '-'}× (target ≥ 0.9)   ` +
      `coordinator ≤ ${(summary.maxCoordinatorFraction * 100).toFixed(1)} % (target ≤ 5 %)   ws vs threads: ${summary.ws_vs_threads?.toFixed(2) ?? '-'}× (target ≥ 0.85)   same weights: ${summary.sameWeights}`,
    ...(summary.verifyCost ? [`--verify-fraction ${verify}: tokens/s ${Object.entries(summary.verifyCost).map(([k, v]) => `${k} ${v?.toFixed(2) ?? '-'}×`).join(', ')} of unverified (ideal ${summary.verifyIdeal!.toFixed(2)}×: a fraction ${verify} of tasks computed twice)`] : []),
  ];
  process.stdout.write(lines.join('\n') + '\n');
  mkdirSync(path.dirname(args.out), { recursive: true });
  await writeFileAtomic(args.out, JSON.stringify({ time: new Date().toISOString(), config: args.config, data, cores: cpus().length, warmup, measured, repeat, rows, runs: allRuns, summary }, null, 2) + '\n');
}

void main().catch((e: unknown) => { process.stderr.write(`bench-scaling: ${(e as Error).stack ?? String(e)}\n`); process.exit(1); });
