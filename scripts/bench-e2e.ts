/**
 * End-to-end training benchmark (issue 11, "Benchmarks measure what training does"): the real
 * `vilm coordinator` CLI, run as a child process for `--steps` steps on a real prepared data set,
 * with 1, 2, 4 and 8 local worker threads (`--workers N --local-only`), with 1 thread again beside
 * a busy neighbour process (when 1 is among --threads: what a second busy core costs a worker),
 * and with 2 WebSocket workers (`--workers 0 --port 0` plus two
 * `vilm worker --connect ws://127.0.0.1:PORT` processes), those also with the fp16 gradient codec (`train.grad_codec=fp16`; `--ws-codecs fp32` skips it; its
 * weights are its own, so it is left out of the same-weights check) for the bytes on the wire,
 * next to the "ceiling": scripts/bench-step.ts's shape mode (single thread, model calls only) at
 * exactly the shapes of that config and data, run in the same invocation. In one go:
 *
 *   npx tsx scripts/bench-e2e.ts [--config configs/tiny.yaml] [--steps 30] [--data DIR]
 *                                [--threads 1,2,4,8] [--ws 2] [--bench-steps 5] [--timeout SECONDS]
 *                                [--set train.micro_shards=4 …] [--ws-codecs fp32,fp16] [--repeat 1] [--out bench-results/e2e.json] [--keep]
 *
 * Data: --data, else runs/wiki/data (the README's viwiki commands) when it exists, else the
 * built-in sample (data/sample) prepared into a temp dir the way test/support/fixtures.ts
 * preparedData does (clean, 512-token BPE, prepare) but with the README's buckets
 * 50,100,150,200,250 up to the model's max_len, so the shapes are training's shapes.
 *
 * tokens/s of a run = the non-pad tokens of its steps 2..N (the `step` records of OUT/log.jsonl)
 * over the wall time from step 1's record to step N's (step 1, the warm-up, excluded). The ceiling
 * for the same batches is Σ over those steps of bench-step's single-thread best time for one
 * batch of that step's bucket (every micro-shard's model calls at their real rows × length, in
 * order, on new weights as every step has; the best of bench-step's rounds, see `around`);
 * "% of ceiling" = ceiling seconds ÷ wall seconds, so the units (real tokens vs padded positions)
 * cancel. Every run uses the same config and seed, so the same batches in the same order.
 *
 * This machine drifts by tens of percent over minutes (a shared VM), so the ceiling is measured in
 * a round before the first run and after every run, and each run is compared with the mean of the
 * rounds around it; the rounds' spread is printed. Before the runs, two rounds run at once: what two
 * independent single-thread processes get together on this machine ("machine pair"), the hardware's
 * own bound for "2 threads ÷ 1 thread", printed beside it. `--repeat K` runs the whole plan K times,
 * interleaved, and the ratios use each kind's median run (single runs here flip 0.93 ↔ 1.13 between
 * invocations: measured).
 *
 * Targets (issue 11; printed as pass/fail, not asserted): 1 thread ≥ 90 % of the ceiling;
 * 2 threads ≥ 1.8× 1 thread; 8 threads ≥ 0.95× 2 threads; 2 WebSocket workers ≥ 95 % of 2 threads.
 * Every child has a deadline (--timeout, default 60 s + 20 s a step per run) and is killed past it;
 * the script exits 1 when a child fails (the JSON is still written, with the failures).
 * Writes --out atomically (src/util/atomic.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { applyOverrides, loadConfig } from '../src/config/index.ts';
import type { Manifest } from '../src/data/types.ts';
import { writeFileAtomic } from '../src/util/atomic.ts';
import { buildLayout } from '../src/model/layout.ts';
import { planBlocks } from '../src/fleet/shard-tree.ts';

const { values: args } = parseArgs({
  options: {
    config: { type: 'string', default: 'configs/tiny.yaml' },
    steps: { type: 'string', default: '30' },
    data: { type: 'string' },
    threads: { type: 'string', default: '1,2,4,8' },
    ws: { type: 'string', default: '2' },
    'bench-steps': { type: 'string', default: '5' },
    timeout: { type: 'string' },
    set: { type: 'string', multiple: true, default: [] },
    out: { type: 'string', default: 'bench-results/e2e.json' },
    keep: { type: 'boolean', default: false },
    'ws-codecs': { type: 'string', default: 'fp32,fp16' },
    repeat: { type: 'string', default: '1' },
  },
});

const steps = Number(args.steps);
if (!Number.isInteger(steps) || steps < 2) throw new Error(`--steps: an integer ≥ 2 (step 1 is not counted), got ${args.steps}`);
const threadCounts = args.threads.split(',').filter(Boolean).map(Number);
if (threadCounts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--threads: positive integers, got ${args.threads}`);
const nWs = Number(args.ws);
if (!Number.isInteger(nWs) || nWs < 0) throw new Error(`--ws: a non-negative integer, got ${args.ws}`);
const repeat = Number(args.repeat);
if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat: a positive integer, got ${args.repeat}`);
const wsCodecs = args['ws-codecs'].split(',').filter(Boolean) as ('fp32' | 'fp16')[];
if (wsCodecs.some((c) => c !== 'fp32' && c !== 'fp16')) throw new Error(`--ws-codecs: fp32 and/or fp16, got ${args['ws-codecs']}`);
const runTimeoutMs = 1000 * (args.timeout !== undefined ? Number(args.timeout) : 60 + 20 * steps);
if (!(runTimeoutMs > 0)) throw new Error(`--timeout: seconds > 0, got ${args.timeout}`);
const sets = args.set ?? [];
const cfg = applyOverrides(loadConfig(args.config), sets);
const denseFloats = buildLayout(cfg.model).total;
const root = mkdtempSync(path.join(tmpdir(), 'vilm-bench-e2e-'));
const NODE_TSX = [process.execPath, '--import', 'tsx'];

// ---------------------------------------------------------------------------------------------
// children with deadlines

interface ChildRun { code: number | null; signal: NodeJS.Signals | null; timedOut: boolean; tail: string; seconds: number }

class ChildFailed extends Error {}

/** Spawn `node --import tsx ARGS` with a deadline; `onLine` sees stderr+stdout lines. Resolves when it exits. */
function startChild(label: string, argv: string[], timeoutMs: number, onLine?: (line: string) => void): { child: ChildProcess; done: Promise<ChildRun> } {
  const t0 = performance.now();
  const child = spawn(NODE_TSX[0], [...NODE_TSX.slice(1), ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VILM_LOG_FORMAT: 'text' } });
  let tail = '', partial = '';
  const feed = (buf: Buffer) => {
    const s = buf.toString('utf8');
    tail = (tail + s).slice(-6000);
    if (onLine) {
      partial += s;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) onLine(l);
    }
  };
  child.stdout!.on('data', feed);
  child.stderr!.on('data', feed);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    process.stderr.write(`  ${label}: past its ${Math.round(timeoutMs / 1000)} s deadline, killed\n`);
    child.kill('SIGTERM');
    setTimeout(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); }, 5000).unref();
  }, timeoutMs);
  const done = new Promise<ChildRun>((resolve) => {
    child.on('error', (e) => { tail += `\n${label}: ${e.message}`; });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut, tail, seconds: (performance.now() - t0) / 1000 });
    });
  });
  return { child, done };
}

function check(label: string, r: ChildRun): void {
  if (r.code === 0 && !r.timedOut) return;
  const why = r.timedOut ? 'timed out' : r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  throw new ChildFailed(`${label}: ${why}\n--- last output ---\n${r.tail.trim().split('\n').slice(-25).join('\n')}`);
}

async function runChild(label: string, argv: string[], timeoutMs: number): Promise<ChildRun> {
  const r = await startChild(label, argv, timeoutMs).done;
  check(label, r);
  return r;
}

// ---------------------------------------------------------------------------------------------
// data

const DEFAULT_BUCKETS = [50, 100, 150, 200, 250];

/** data/sample → clean → 512-token BPE → prepare with the README's buckets (≤ max_len) into `dir`. */
async function prepareSample(dir: string): Promise<string> {
  const files = readdirSync('data/sample').filter((f) => f.endsWith('.jsonl')).map((f) => path.join('data/sample', f));
  if (files.length === 0) throw new Error('data/sample: no sample corpus');
  const clean = path.join(dir, 'clean.jsonl'), tok = path.join(dir, 'tokenizer.json'), data = path.join(dir, 'data');
  const buckets = DEFAULT_BUCKETS.filter((b) => b <= cfg.model.max_len);
  const vocab = String(Math.min(512, cfg.model.vocab_size));
  await runChild('data clean', ['src/cli/main.ts', 'data', 'clean', '--in', ...files, '--out', clean], 120_000);
  await runChild('tokenizer train', ['src/cli/main.ts', 'tokenizer', 'train', '--in', clean, '--vocab-size', vocab, '--out', tok], 120_000);
  await runChild('data prepare', ['src/cli/main.ts', 'data', 'prepare', '--in', clean, '--tokenizer', tok, '--out', data,
    '--max-len', String(cfg.model.max_len), '--buckets', buckets.join(',')], 120_000);
  copyFileSync(tok, path.join(data, 'tokenizer.json'));
  return data;
}

async function resolveData(): Promise<{ dir: string; source: string }> {
  if (args.data) return { dir: args.data, source: 'given' };
  if (existsSync('runs/wiki/data/manifest.json')) return { dir: 'runs/wiki/data', source: 'viwiki (runs/wiki/data)' };
  process.stderr.write('runs/wiki/data absent: preparing the built-in sample (data/sample)…\n');
  return { dir: await prepareSample(root), source: 'sample (data/sample, prepared here)' };
}

// ---------------------------------------------------------------------------------------------
// the ceiling: bench-step's shape mode at this config's and data's shapes

interface CeilingBucket { bucket: number; batchRows: number; shardRows: number[]; calls: { chunkRows: number[]; seqLen: number; count: number }[]; batchMs: number; batchMedianMs: number; tokensPerSec: number; mfu: number }
interface Ceiling { label: string; peakGflops: number; buckets: Map<number, CeilingBucket>; json: unknown }

let ceilingRound = 0;

/** One round of bench-step's shape mode (a child process) at this config's and data's shapes. */
function measureCeiling(dataDir: string, buckets: number[], label = `ceiling-${ceilingRound++}`): Promise<Ceiling> {
  const out = path.join(root, `${label}.json`);
  const argv = ['scripts/bench-step.ts', '--shapes-from', args.config, '--buckets', buckets.join(','), '--data', dataDir,
    '--steps', args['bench-steps'], '--out', out, ...sets.flatMap((s) => ['--set', s])];
  return startChild(`bench-step ${label}`, argv, 600_000).done.then((r) => {
    check(`bench-step ${label}`, r);
    const json = JSON.parse(readFileSync(out, 'utf8')) as { peakMatmul: { gflops: number }; configs: { buckets: CeilingBucket[] }[] };
    return { label, peakGflops: json.peakMatmul.gflops, buckets: new Map(json.configs[0].buckets.map((b) => [b.bucket, b])), json };
  });
}

/**
 * The machine drifts (a shared VM: the same call measured 135 then 196 ms minutes apart, nothing
 * else running), so a run is compared with the ceiling measured right before and right after it:
 * per bucket, the mean of the two rounds' best batch times. (Best, not median: within one round
 * the median ran up to 60 % above the best while the best stayed within ~10 % from round to round —
 * the slow calls are the host's bursts, not the model; measured 2026-12-02.)
 */
function around(a: Ceiling, b: Ceiling): Ceiling {
  const buckets = new Map<number, CeilingBucket>();
  for (const [k, x] of a.buckets) {
    const y = b.buckets.get(k) ?? x;
    const ms = (x.batchMs + y.batchMs) / 2;
    buckets.set(k, { ...x, batchMs: ms, batchMedianMs: (x.batchMedianMs + y.batchMedianMs) / 2, tokensPerSec: (x.tokensPerSec * x.batchMs) / ms, mfu: (x.mfu * x.batchMs) / ms });
  }
  return { label: `${a.label}+${b.label}`, peakGflops: Math.max(a.peakGflops, b.peakGflops), buckets, json: null };
}

/** Σ best (or median) batch ms over the buckets, weighted by `mix` (bucket → batches). */
function mixMs(c: Ceiling, mix: Record<string, number>, stat: 'batchMs' | 'batchMedianMs' = 'batchMs'): number {
  let ms = 0;
  for (const [k, n] of Object.entries(mix)) ms += n * (c.buckets.get(Number(k))?.[stat] ?? 0);
  return ms;
}

// ---------------------------------------------------------------------------------------------
// one run of the coordinator

interface StepRecord {
  type: 'step'; time: string; step: number; tokens: number; paddedTokens: number; bucket: number; loss: number;
  timing: { total: number; waitStragglers: number; optimizer: number };
}
interface WorkerRecord { type: 'worker'; step: number; workerId: string; bytesSent: number; bytesReceived: number; microShards: number; computeSeconds: number }

/**
 * Where a counted step's wall time goes (means over the counted steps, seconds): the workers busy
 * computing (Σ of their tasks' compute time, per worker that computed in the step: with more
 * threads than cores, per core slot), the wait for the last task once the
 * first worker ran out of work, the optimizer (with the gradient's finalisation and clipping), and
 * what is left on the critical path: step − optimizer − the busiest worker's compute (handing out
 * tasks and taking results: what overlapping the next task with the current one could hide).
 * workerSeconds: Σ of all workers' compute a step — the same batches in every run, so against the
 * 1-thread run it shows what computing side by side costs (cores slowing each other, smaller calls).
 */
interface StepAnatomy { step: number; busyPerWorker: number; stragglers: number; optimizer: number; gaps: number; workerSeconds: number }

interface Row {
  name: string;
  transport: 'thread' | 'ws';
  workers: number;
  /** steps counted (2..N) */
  counted: number;
  wallSeconds: number;
  tokens: number;
  tokensPerSec: number;
  /** input positions (rows × (bucket − 1)) per second, the unit bench-step counts */
  positionsPerSec: number;
  /** bench-step's single-thread seconds for the same batches */
  ceilingSeconds: number;
  /** the ceiling in this run's units: tokens / ceilingSeconds */
  ceilingTokensPerSec: number;
  ofCeiling: number;
  bucketsSeen: Record<string, number>;
  bytesSentPerWorkerStep: number | null;
  bytesReceivedPerWorkerStep: number | null;
  weightsSha256: string | null;
  /** which of the --repeat rounds */
  round: number;
  /** mean training loss of the last 5 steps (nats/token): the fp16 codec's effect on what is learnt */
  lossLast5: number;
  childSeconds: number;
  anatomy: StepAnatomy;
}

function anatomyOf(steps: StepRecord[], workers: WorkerRecord[]): StepAnatomy {
  const busy = new Map<number, Map<string, number>>();
  for (const w of workers) {
    const m = busy.get(w.step) ?? new Map<string, number>();
    m.set(w.workerId, (m.get(w.workerId) ?? 0) + w.computeSeconds);
    busy.set(w.step, m);
  }
  const a: StepAnatomy = { step: 0, busyPerWorker: 0, stragglers: 0, optimizer: 0, gaps: 0, workerSeconds: 0 };
  for (const s of steps) {
    const per = [...(busy.get(s.step)?.values() ?? [])];
    a.step += s.timing.total;
    const sum = per.reduce((x, y) => x + y, 0);
    a.workerSeconds += sum;
    a.busyPerWorker += sum / Math.max(1, per.length); // the workers (slots) that computed
    a.stragglers += s.timing.waitStragglers;
    a.optimizer += s.timing.optimizer;
    a.gaps += s.timing.total - s.timing.optimizer - Math.max(0, ...per);
  }
  const n = Math.max(1, steps.length);
  return { step: a.step / n, busyPerWorker: a.busyPerWorker / n, stragglers: a.stragglers / n, optimizer: a.optimizer / n, gaps: a.gaps / n, workerSeconds: a.workerSeconds / n };
}

function readLog(outDir: string): { steps: StepRecord[]; workers: WorkerRecord[] } {
  const lines = readFileSync(path.join(outDir, 'log.jsonl'), 'utf8').split('\n').filter((l) => l.trim());
  const recs = lines.map((l) => JSON.parse(l) as { type: string });
  return {
    steps: recs.filter((r): r is StepRecord => r.type === 'step').sort((a, b) => a.step - b.step),
    workers: recs.filter((r): r is WorkerRecord => r.type === 'worker'),
  };
}

function summarize(name: string, transport: 'thread' | 'ws', workers: number, outDir: string, ceiling: Ceiling, childSeconds: number): Row {
  const log = readLog(outDir);
  if (log.steps.length < 2) throw new Error(`${name}: ${log.steps.length} step record(s) in ${outDir}/log.jsonl, need ≥ 2`);
  const first = log.steps[0], last = log.steps[log.steps.length - 1];
  const counted = log.steps.slice(1);
  const wall = (Date.parse(last.time) - Date.parse(first.time)) / 1000;
  let tokens = 0, positions = 0, ceilingSeconds = 0;
  const bucketsSeen: Record<string, number> = {};
  for (const s of counted) {
    const c = ceiling.buckets.get(s.bucket);
    if (!c) throw new Error(`${name}: step ${s.step} is from bucket ${s.bucket}, which the ceiling did not measure`);
    tokens += s.tokens;
    positions += (s.paddedTokens / s.bucket) * (s.bucket - 1);
    ceilingSeconds += c.batchMs / 1000;
    bucketsSeen[s.bucket] = (bucketsSeen[s.bucket] ?? 0) + 1;
  }
  const w = log.workers.filter((r) => r.step > first.step);
  let weightsSha256: string | null = null;
  try { weightsSha256 = (JSON.parse(readFileSync(path.join(outDir, 'final.json'), 'utf8')) as { weightsSha256?: string }).weightsSha256 ?? null; } catch { /* no final.json */ }
  return {
    name, transport, workers, counted: counted.length, wallSeconds: wall, tokens,
    tokensPerSec: tokens / wall, positionsPerSec: positions / wall,
    ceilingSeconds, ceilingTokensPerSec: tokens / ceilingSeconds, ofCeiling: ceilingSeconds / wall, bucketsSeen,
    bytesSentPerWorkerStep: transport === 'ws' && w.length ? w.reduce((a, r) => a + r.bytesSent, 0) / w.length : null,
    bytesReceivedPerWorkerStep: transport === 'ws' && w.length ? w.reduce((a, r) => a + r.bytesReceived, 0) / w.length : null,
    weightsSha256, childSeconds, round: 1, lossLast5: log.steps.slice(-5).reduce((a, r) => a + r.loss, 0) / Math.min(5, log.steps.length),
    anatomy: anatomyOf(counted, w),
  };
}

function coordinatorArgs(dataDir: string, outDir: string, extra: string[] = []): string[] {
  return ['src/cli/main.ts', 'coordinator', '--config', args.config, '--data', dataDir, '--out', outDir, '--fresh',
    '--steps', String(steps), '--metrics-port', '0', '--test-sequences', '8',
    // no validation or checkpoint between steps; the end-of-run evaluation on a few sequences
    '--set', 'train.eval_every=0', '--set', 'train.checkpoint_every=0', '--set', 'train.eval_sequences=8', '--set', 'train.log_every=1000',
    ...[...sets, ...extra].flatMap((s) => ['--set', s])];
}

/** A finished coordinator run, to be summarized once the ceiling after it is measured. */
interface RunDone { name: string; transport: 'thread' | 'ws'; workers: number; outDir: string; seconds: number }

async function runThreads(n: number, dataDir: string, round: number): Promise<RunDone> {
  const name = `threads-${n}`, outDir = path.join(root, `${name}-round${round}`);
  const r = await runChild(`coordinator ${name}`, [...coordinatorArgs(dataDir, outDir), '--workers', String(n), '--local-only'], runTimeoutMs);
  return { name, transport: 'thread', workers: n, outDir, seconds: r.seconds };
}

/**
 * One thread beside a busy neighbour: the 1-thread run again while another process (bench-step's
 * shape mode at the same shapes, looping until killed) keeps the other core computing. Against the
 * 1-thread run, the worker-seconds a step show what a second busy core costs one worker on this
 * machine: with two threads each pays it, so 2 ÷ that factor bounds "2 threads ÷ 1 thread"
 * whatever the trainer does. (The machine pair, two benchmark rounds at once, read 1.84–2.15× in
 * three runs on 2026-12-03; this run measures the trainer's own worker, for as long as a run.)
 */
async function runThreadsBesideNeighbour(dataDir: string, buckets: number[], round: number): Promise<RunDone> {
  const name = 'threads-1-neighbour', outDir = path.join(root, `${name}-round${round}`);
  let computing: () => void = () => {};
  const started = new Promise<void>((res) => { computing = res; });
  let ready = false;
  const neighbour = startChild(`neighbour ${name}`, ['scripts/bench-step.ts', '--shapes-from', args.config, '--buckets', buckets.join(','), '--data', dataDir,
    '--steps', '1000000', '--out', path.join(root, `${name}-round${round}-neighbour.json`), ...sets.flatMap((s) => ['--set', s])], runTimeoutMs + 120_000, (line) => {
    if (/^peak matmul \(before\)/.test(line)) computing(); // next: its warm-up and rounds, until killed
  });
  const ended = neighbour.done.then((r) => {
    if (!ready) throw new ChildFailed(`neighbour ${name}: ended before the run (${r.code ?? r.signal})\n${r.tail.slice(-1500)}`);
  });
  ended.catch(() => undefined); // the race below reports it
  try {
    await Promise.race([started, ended]);
    ready = true;
    const r = await runChild(`coordinator ${name}`, [...coordinatorArgs(dataDir, outDir), '--workers', '1', '--local-only'], runTimeoutMs);
    return { name, transport: 'thread', workers: 1, outDir, seconds: r.seconds };
  } finally {
    neighbour.child.kill('SIGTERM');
    await neighbour.done;
  }
}

async function runWs(n: number, dataDir: string, round: number, codec: 'fp32' | 'fp16' = 'fp32'): Promise<RunDone> {
  const name = codec === 'fp32' ? `ws-${n}` : `ws-${n}-${codec}`, outDir = path.join(root, `${name}-round${round}`);
  const workers: { label: string; child: ChildProcess; done: Promise<ChildRun> }[] = [];
  let portSeen = false;
  const coord = startChild(`coordinator ${name}`, [...coordinatorArgs(dataDir, outDir, codec === 'fp32' ? [] : [`train.grad_codec=${codec}`]), '--workers', '0', '--port', '0', '--min-workers', String(n)], runTimeoutMs, (line) => {
    const m = /vilm-coordinator-port\D*?(\d+)/.exec(line);
    if (!m || portSeen) return;
    portSeen = true;
    for (let i = 0; i < n; i++) {
      const label = `worker ${name}/${i}`;
      workers.push({ label, ...startChild(label, ['src/cli/main.ts', 'worker', '--connect', `ws://127.0.0.1:${m[1]}`, '--name', `bench-e2e-${i}`, '--retry', '10'], runTimeoutMs) });
    }
  });
  const c = await coord.done;
  if (c.code !== 0 || c.timedOut) for (const w of workers) w.child.kill('SIGTERM');
  check(`coordinator ${name}`, c);
  if (!portSeen) throw new ChildFailed(`coordinator ${name}: never printed vilm-coordinator-port`);
  // the coordinator says bye at the end: the workers leave on their own, within 30 s
  for (const w of workers) {
    const grace = setTimeout(() => { process.stderr.write(`  ${w.label}: still running 30 s after the coordinator, killed\n`); w.child.kill('SIGKILL'); }, 30_000);
    const r = await w.done;
    clearTimeout(grace);
    check(w.label, r);
  }
  return { name, transport: 'ws', workers: n, outDir, seconds: c.seconds };
}

// ---------------------------------------------------------------------------------------------

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((v, c) => (c === 0 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join('  '));
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const data = await resolveData();
  const manifest = JSON.parse(readFileSync(path.join(data.dir, 'manifest.json'), 'utf8')) as Manifest;
  const buckets = manifest.buckets.filter((b) => b <= cfg.model.max_len);
  process.stderr.write(`data ${data.dir} (${data.source}), buckets ${buckets.join(',')}; config ${args.config}${sets.length ? ' ' + sets.join(' ') : ''}; ${steps} steps a run; ${cpus().length} CPUs\n`);

  const failures: string[] = [];
  const rows: Row[] = [];
  const ceilings: Ceiling[] = [];
  let pair: { rounds: [Ceiling, Ceiling]; alone: Ceiling } | null = null;
  try {
    process.stderr.write('ceiling: bench-step --shapes-from (one thread, model calls only), before and after every run…\n');
    ceilings.push(await measureCeiling(data.dir, buckets));
    // What two independent single-thread processes get on this machine at once: the hardware's own
    // "2 threads ÷ 1 thread" (shared caches, memory bandwidth, the host), no vilm coordination in it.
    process.stderr.write('machine: two bench-step rounds at once…\n');
    const rounds = await Promise.all([measureCeiling(data.dir, buckets, 'pair-a'), measureCeiling(data.dir, buckets, 'pair-b')]);
    ceilings.push(await measureCeiling(data.dir, buckets));
    pair = { rounds, alone: around(ceilings[0], ceilings[1]) };
    const plan: { name: string; run: (round: number) => Promise<RunDone> }[] = [
      ...threadCounts.map((n) => ({ name: `threads-${n}`, run: (round: number) => runThreads(n, data.dir, round) })),
      ...(threadCounts.includes(1) ? [{ name: 'threads-1-neighbour', run: (round: number) => runThreadsBesideNeighbour(data.dir, buckets, round) }] : []),
      ...(nWs > 0 ? wsCodecs.map((c) => ({ name: c === 'fp32' ? `ws-${nWs}` : `ws-${nWs}-${c}`, run: (round: number) => runWs(nWs, data.dir, round, c) })) : []),
    ];
    // --repeat K: the whole plan K times, interleaved, so a slow spell of the VM hits every kind of run
    for (let round = 1; round <= repeat; round++) for (const p of plan) {
      process.stderr.write(`${p.name}${repeat > 1 ? ` (round ${round}/${repeat})` : ''}: vilm coordinator, ${steps} steps…\n`);
      try {
        const done = await p.run(round);
        const before = ceilings[ceilings.length - 1];
        ceilings.push(await measureCeiling(data.dir, buckets));
        const row = summarize(done.name, done.transport, done.workers, done.outDir, around(before, ceilings[ceilings.length - 1]), done.seconds);
        row.round = round;
        rows.push(row);
        process.stderr.write(`  ${row.tokensPerSec.toFixed(0)} tokens/s, ${(100 * row.ofCeiling).toFixed(1)} % of the ceiling around it (${row.childSeconds.toFixed(0)} s)\n`);
      } catch (e) {
        if (!(e instanceof Error)) throw e;
        failures.push(e.message);
        process.stderr.write(`  FAILED: ${e.message}\n`);
      }
    }
  } catch (e) {
    if (!(e instanceof Error)) throw e;
    failures.push(e.message);
    process.stderr.write(`FAILED: ${e.message}\n`);
  }

  const median = (xs: number[]) => { const v = [...xs].sort((a, b) => a - b); return v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2; };
  // the run of that kind with the median tokens/s (of its --repeat rounds; the lower middle one when even)
  const by = (name: string): Row | undefined => {
    const runs = rows.filter((r) => r.name === name).sort((a, b) => a.tokensPerSec - b.tokensPerSec);
    return runs[(runs.length - 1) >> 1];
  };
  const ratio = (what: string, target: number, num: Row | undefined, den: Row | undefined, f: (n: Row, d: Row) => number, atMost = false) => {
    const value = num && den ? f(num, den) : null;
    return { what, target, atMost, value, pass: value === null ? null : atMost ? value <= target : value >= target };
  };
  const t1 = by('threads-1'), t2 = by('threads-2'), t8 = by('threads-8'), ws2 = by('ws-2');
  // the machine's own 2-at-once factor at the data's bucket mix (the first run's buckets)
  const mix = rows[0]?.bucketsSeen ?? Object.fromEntries(buckets.map((b) => [String(b), 1]));
  // medians, not best times: two processes at once each catch moments when the other is between
  // rounds (its peak matmul, its start), so their best times are close to one alone. 2026-12-03:
  // one run's pair read 2.14× by best times, 1.90× by medians; 12 consecutive calls gave ~1.75×
  const machinePair = pair ? (2 * mixMs(pair.alone, mix, 'batchMedianMs')) / ((mixMs(pair.rounds[0], mix, 'batchMedianMs') + mixMs(pair.rounds[1], mix, 'batchMedianMs')) / 2) : null;
  const targets = [
    ratio('1 thread ÷ ceiling (bench-step, 1 thread, same shapes)', 0.9, t1, t1, () => median(rows.filter((r) => r.name === 'threads-1').map((r) => r.ofCeiling))),
    ratio('2 threads ÷ 1 thread', 1.8, t2, t1, (n, d) => n.tokensPerSec / d.tokensPerSec),
    ratio('8 threads ÷ 2 threads', 0.95, t8, t2, (n, d) => n.tokensPerSec / d.tokensPerSec),
    ratio('2 WebSocket workers ÷ 2 threads', 0.95, ws2, t2, (n, d) => n.tokensPerSec / d.tokensPerSec),
    ratio('fp16 codec: gradient bytes per worker·step ÷ dense fp32', 0.5, by(`ws-${nWs}-fp16`), by(`ws-${nWs}-fp16`),
      (n) => (n.bytesReceivedPerWorkerStep ?? NaN) / (4 * denseFloats * (planBlocks(cfg.train.micro_shards, nWs, 2).length / nWs)), true),
  ];

  if (ceilings.length) {
    const c0 = ceilings[0];
    console.log(`\nceiling (bench-step --shapes-from ${args.config}, one thread, model calls only; round 0, peak matmul ${c0.peakGflops.toFixed(2)} GFLOP/s):`);
    printTable([
      ['bucket', 'batch rows×L', 'micro-shard rows', 'ms/batch (best)', 'ms/batch (median)', 'positions/s', 'MFU', `best ms, rounds 0..${ceilings.length - 1}`],
      ...[...c0.buckets.values()].map((b) => [String(b.bucket), `${b.batchRows}×${b.bucket}`, b.shardRows.join(','), b.batchMs.toFixed(0), b.batchMedianMs.toFixed(0),
        b.tokensPerSec.toFixed(0), `${(100 * b.mfu).toFixed(1)} %`, ceilings.map((c) => c.buckets.get(b.bucket)?.batchMs.toFixed(0) ?? '?').join(' ')]),
    ]);
    const drift = ceilings.map((c) => mixMs(c, mix));
    console.log(`drift of the ceiling between rounds (data mix): ${(Math.min(...drift) / 1000).toFixed(2)}–${(Math.max(...drift) / 1000).toFixed(2)} s (${(100 * (Math.max(...drift) / Math.min(...drift) - 1)).toFixed(0)} %); each run is compared with the rounds just before and after it`);
    if (machinePair !== null) console.log(`machine: two single-thread bench-step rounds at once give ${machinePair.toFixed(2)}× one alone (the hardware's own ceiling for "2 threads ÷ 1 thread")`);
  }
  if (rows.length) {
    console.log(`\nend to end (vilm coordinator, ${steps} steps, steps 2..${steps} counted; data ${data.source}):`);
    const mb = (x: number | null) => (x === null ? '' : (x / 1e6).toFixed(2));
    printTable([
      ['run', 'tokens/s', 'positions/s', 'ceiling tokens/s', '% of ceiling', 'wall s', 'MB to worker/step', 'MB from worker/step', 'loss, last 5 steps', 'weights'],
      ...rows.map((r) => [repeat > 1 ? `${r.name} #${r.round}` : r.name, r.tokensPerSec.toFixed(0), r.positionsPerSec.toFixed(0), r.ceilingTokensPerSec.toFixed(0), `${(100 * r.ofCeiling).toFixed(1)} %`,
        r.wallSeconds.toFixed(1), mb(r.bytesSentPerWorkerStep), mb(r.bytesReceivedPerWorkerStep), r.lossLast5.toFixed(4), r.weightsSha256?.slice(0, 12) ?? '?']),
    ]);
    console.log('\nwhere a step goes (means over the counted steps; gaps = step − optimizer − the busiest worker\'s compute: handing out tasks and taking results):');
    const pctOf = (x: number, r: Row) => `${(100 * x / r.anatomy.step).toFixed(1)} %`;
    printTable([
      ['run', 'step s', 'workers busy', 'waiting for the last task', 'optimizer', 'gaps', 'worker-seconds a step'],
      ...rows.map((r) => [repeat > 1 ? `${r.name} #${r.round}` : r.name, r.anatomy.step.toFixed(3), pctOf(r.anatomy.busyPerWorker, r),
        pctOf(r.anatomy.stragglers, r), pctOf(r.anatomy.optimizer, r), pctOf(r.anatomy.gaps, r), r.anatomy.workerSeconds.toFixed(3)]),
    ]);
    const one = rows.filter((r) => r.name === 'threads-1');
    if (one.length > 0) {
      const base = median(one.map((r) => r.anatomy.workerSeconds));
      const kinds = [...new Set(rows.map((r) => r.name))].filter((k) => k !== 'threads-1' && !k.endsWith('-fp16'));
      const factor = (k: string) => median(rows.filter((r) => r.name === k).map((r) => r.anatomy.workerSeconds)) / base;
      console.log(`the same batches' worker-seconds a step against 1 thread (median runs; what computing side by side costs): ${kinds.map((k) => `${k} ${factor(k).toFixed(2)}×`).join(', ')}`);
      if (kinds.includes('threads-1-neighbour')) {
        const f = factor('threads-1-neighbour');
        console.log(`one worker beside a busy neighbour core computes the same batches in ${f.toFixed(2)}× its time alone, so on this machine 2 threads can reach at most 2 ÷ ${f.toFixed(2)} = ${(2 / f).toFixed(2)}× one thread (before any tail, optimizer or hand-over)`);
      }
    }
    const shas = new Set(rows.filter((r) => !r.name.endsWith('-fp16')).map((r) => r.weightsSha256));
    console.log(`buckets of the counted steps: ${JSON.stringify(rows[0].bucketsSeen)}; weights ${shas.size === 1 ? 'identical in every fp32 run' : 'DIFFER between runs'} (the fp16 codec is another run, its own bytes)`);
    const wsFull = by(`ws-${nWs}`), wsHalf = by(`ws-${nWs}-fp16`);
    if (wsFull?.bytesReceivedPerWorkerStep && wsHalf?.bytesReceivedPerWorkerStep) {
      // the scheduler's plan for remote fleets: about 2 tasks per worker, each result one block sum
      const perWorker = planBlocks(cfg.train.micro_shards, nWs, 2).length / nWs;
      const dense = 4 * denseFloats * perWorker;
      console.log(`gradient bytes from a WebSocket worker per step: fp32 ${(wsFull.bytesReceivedPerWorkerStep / 1e6).toFixed(2)} MB, fp16 codec ${(wsHalf.bytesReceivedPerWorkerStep / 1e6).toFixed(2)} MB (${(100 * wsHalf.bytesReceivedPerWorkerStep / wsFull.bytesReceivedPerWorkerStep).toFixed(1)} % of fp32) = ${(100 * wsHalf.bytesReceivedPerWorkerStep / dense).toFixed(1)} % of dense fp32 gradients (${perWorker} results × ${(4 * denseFloats / 1e6).toFixed(2)} MB)`);
    }
    console.log('tokens = non-pad target tokens (the run log); positions = rows × (L − 1), the unit bench-step counts; the ceiling is bench-step\'s single-thread time for the same batches');
  }
  console.log('\ntargets (issue 11):');
  printTable([
    ['ratio', 'value', 'target', 'result'],
    ...targets.map((t) => [t.what, t.value === null ? 'not run' : `${t.value.toFixed(2)}`, `${t.atMost ? '≤' : '≥'} ${t.target}`, t.pass === null ? '—' : t.pass ? 'pass' : 'FAIL']),
  ]);
  if (t1 && t2 && machinePair !== null) {
    const r = t2.tokensPerSec / t1.tokensPerSec;
    console.log(`2 threads ÷ 1 thread ${r.toFixed(2)} against the machine pair ${machinePair.toFixed(2)}: vilm gets ${(100 * (r - 1) / (machinePair - 1)).toFixed(0)} % of the second core the machine gives`);
  }

  const result = {
    date: new Date().toISOString(), config: args.config, overrides: sets, steps, cpus: cpus().length,
    data: { dir: data.dir, source: data.source, buckets },
    method: 'tokens/s = non-pad tokens of steps 2..N over the wall time between the step-1 and step-N log records; ceiling = Σ over the counted steps of bench-step\'s single-thread best batch time for the step\'s bucket, the mean of the rounds measured just before and just after the run; machinePair = 2 × one round alone ÷ two rounds at once (data mix, median batch times)',
    ceilings: ceilings.map((c) => ({ label: c.label, result: c.json })), machinePair, pairRounds: pair?.rounds.map((c) => ({ label: c.label, result: c.json })) ?? null,
    runs: rows, targets, failures, seconds: (Date.now() - t0) / 1000,
  };
  await writeFileAtomic(args.out, JSON.stringify(result, null, 2) + '\n');
  console.log(`wrote ${args.out}`);
  if (!args.keep) rmSync(root, { recursive: true, force: true });
  else console.log(`kept ${root}`);
  if (failures.length) {
    console.error(`${failures.length} child run(s) failed`);
    process.exit(1);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
