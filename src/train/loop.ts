/**
 * The training loop shared by `vilm train` (one in-process worker) and `vilm coordinator` (thread
 * and WebSocket workers): sample a batch, have the fleet compute its gradient sum (exact fixed-tree
 * reduction, src/fleet/reduce.ts), divide by the token count, clip, ONE central optimizer step on
 * the flat weights, publish them; validation every `eval_every` steps, checkpoints every
 * `checkpoint_every` steps and at the end, test loss / perplexity / bits per byte at the end.
 *
 * Files in RUN/: checkpoint.vilm (+ checkpoint.prev.vilm), log.jsonl (RunLogRecord lines),
 * final.json `{step, weightsSha256, trainLoss, valLoss, testLoss, testPpl, testBitsPerByte}`.
 */
import { availableParallelism } from 'node:os';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { BackendName } from '../backend/types.js';
import type { RunConfig } from '../config/index.js';
import { loadDataset, type PreparedSplit } from '../data/dataset.js';
import { BatchSampler, sampleSequences } from '../data/sampler.js';
import { broadcast, type StepEvent, type TrainerObserver, type ValidationEvent } from '../events/index.js';
import { openRunLog } from '../events/run-log.js';
import { Coordinator } from '../fleet/coordinator/coordinator.js';
import { NoWorkersError } from '../fleet/coordinator/step-run.js';
import type { RemoteOptions } from '../fleet/coordinator/ws-server.js';
import { finalizeGradient } from '../fleet/reduce.js';
import { shardsWithRows } from '../fleet/shard-tree.js';
import { buildLayout, initParams } from '../model/layout.js';
import { clipGlobalNorm, createOptimizer, decayMaskFor, learningRate, lrGroupsFor } from '../optim/index.js';
import { DivergedError, UserError } from '../util/errors.js';
import { log } from '../util/log.js';
import { writeFileAtomic } from '../util/atomic.js';
import { CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE, firstNonFinite, loadRunCheckpoint, saveCheckpoint, weightsSha256, type Checkpoint } from './checkpoint.js';
import { checkResumeMatches } from './run-match.js';
import { tokenizerFromJson } from '../tokenizer/index.js';
import { SequenceScorer } from './parallel-eval.js';
import { scoreSequencesWith, splitTokensPerByte } from './validation.js';

/** mixed into train.seed for the validation sample, so it does not follow the batch order's stream */
const VALIDATION_SEED = 0x5a11d;
const TEST_SEED = 0x7e57;

export interface FinalReport {
  step: number;
  weightsSha256: string;
  trainLoss: number | null;
  /** the last validation estimate (the run's sample) */
  valLoss: number | null;
  /** the whole validation split at the end */
  valWholeLoss: number | null;
  valWholeBitsPerByte: number | null;
  /** seconds of training steps (evaluation and checkpoints excluded) */
  trainSeconds: number;
  testLoss: number;
  testPpl: number;
  /** sequences of the test split scored (all of them unless --test-sequences) */
  testSequences: number;
  testBitsPerByte: number;
}

export interface TrainLoopOptions {
  config: RunConfig;
  dataDir: string;
  outDir: string;
  /**
   * true: continue from RUN/checkpoint.vilm, which must exist (its config wins, except `train.steps`
   * when `steps` is given). false: continue from it when it exists and matches `config` and the data
   * (src/train/run-match.ts), else start fresh.
   */
  resume: boolean;
  /** start over even when OUT holds a run (its checkpoints and final.json are removed) */
  fresh?: boolean;
  /** override of train.steps (the schedule length) */
  steps?: number;
  /** stop after this many completed steps (checkpoint written, no final.json): interrupt a run on purpose */
  stopAt?: number;
  backend: BackendName;
  /** single process: one in-process worker */
  inProcess: boolean;
  /** local worker threads */
  threads: number;
  remote?: RemoteOptions;
  /** do not start before this many workers are connected */
  minWorkers?: number;
  observers?: TrainerObserver[];
  /**
   * The module local replicas are built with (src/fleet/worker/replica.ts); default: the real
   * model. Tests of the distribution machinery name their pure-JS toy model (test/support).
   */
  replicaModule?: string;
  /** start from these weights instead of the seeded init (fine-tuning; optimizer state fresh) */
  initWeights?: Float32Array;
  /** tokenizer.json for bits per byte and the checkpoint (default: DATA/tokenizer.json) */
  tokenizerFile?: string;
  /**
   * test-split sequences scored at the end: a fixed seeded random sample (default: the whole split,
   * and then the last validation point is checked against the whole validation split too)
   */
  testSequences?: number;
  taskDeadlineMs?: number;
  noWorkerTimeoutMs?: number;
  /** --verify-fraction: fraction of tasks also computed by a second worker, bytes compared (default 0) */
  verifyFraction?: number;
  /** hooks for tests and tools */
  hooks?: {
    /** called right after a step's tasks were handed out (e.g. to kill a worker mid-step) */
    stepStarted?: (step: number, coordinator: Coordinator) => void;
    /** called once the fleet is up (e.g. to learn the bound port) */
    started?: (coordinator: Coordinator) => void;
  };
  /** set `requested` (e.g. from a signal handler) and call `notify()` to checkpoint and stop after the current step */
  stopSignal?: StopSignal;
}

export interface StopSignal {
  requested: boolean;
  /** installed by the loop: wakes a wait for workers */
  notify?: () => void;
}

/**
 * Why a run ended before its last step (each with a checkpoint written): 'signal' (SIGTERM/SIGINT;
 * restart the same command to continue), 'no-workers' (gave up after --wait-workers), 'stop-at'
 * (the --stop-at the user asked for).
 */
export type StopReason = 'signal' | 'no-workers' | 'stop-at';

export interface TrainLoopResult {
  /** null unless the run stopped early */
  stopped: StopReason | null;
  final: FinalReport | null;
  step: number;
  weightsSha256: string;
}

export async function runTrainingLoop(o: TrainLoopOptions): Promise<TrainLoopResult> {
  // --- state: fresh or from the checkpoint (src/train/run-match.ts: one command starts and restarts a run)
  let ck: Checkpoint | undefined;
  mkdirSync(o.outDir, { recursive: true });
  const ckFile = path.join(o.outDir, CHECKPOINT_FILE);
  const ds = loadDataset(o.dataDir);
  const identity = { dataManifestSha256: createHash('sha256').update(JSON.stringify(ds.manifest)).digest('hex') };
  if (o.resume && o.fresh) throw new UserError('--resume and --fresh contradict each other', 2);
  if (o.resume && !existsSync(ckFile)) throw new UserError(`${ckFile}: no checkpoint to resume from`);
  if (existsSync(ckFile) && o.fresh) {
    for (const f of [CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE, 'final.json']) rmSync(path.join(o.outDir, f), { force: true });
    log.warn(`--fresh: ${o.outDir} held a run; starting over`);
  } else if (existsSync(ckFile)) {
    ck = loadRunCheckpoint(o.outDir, (m) => log.warn(m));
    // explicit --resume: the checkpoint's config is the run's (as always); otherwise the command's
    // config must be the checkpoint's, field for field (reporting cadence and a longer schedule aside)
    if (!o.resume) {
      const want: RunConfig = { model: o.config.model, train: { ...o.config.train, ...(o.steps !== undefined ? { steps: o.steps } : {}) } };
      checkResumeMatches(ckFile, ck, want, identity);
      log.info('resuming the run in OUT', { out: o.outDir, step: ck.step });
    }
  }
  const config: RunConfig = ck
    ? { model: ck.config.model, train: o.resume ? { ...ck.config.train } : { ...o.config.train } }
    : { model: o.config.model, train: { ...o.config.train } };
  if (o.steps !== undefined) config.train.steps = o.steps;
  if (ck && config.train.steps !== ck.config.train.steps) {
    log.warn(`train.steps ${ck.config.train.steps} → ${config.train.steps}: the learning-rate schedule is stretched from step ${ck.step} on`);
  }
  const train = config.train;
  // the same command again after the run finished: nothing to do (a restarted Job, a re-run script)
  const finalFile = path.join(o.outDir, 'final.json');
  if (ck && !o.resume && ck.step >= train.steps && existsSync(finalFile)) {
    const done = JSON.parse(readFileSync(finalFile, 'utf8')) as FinalReport;
    if (done.step === ck.step) {
      log.info('the run in OUT is already finished', { out: o.outDir, step: ck.step });
      return { final: done, step: ck.step, weightsSha256: done.weightsSha256, stopped: null };
    }
  }
  const layout = buildLayout(config.model);
  const V = config.model.vocab_size, d = config.model.d_model;

  const tokFile = o.tokenizerFile ?? path.join(o.dataDir, 'tokenizer.json');
  const tokenizerJson = ck?.tokenizerJson ?? (existsSync(tokFile) ? readFileSync(tokFile, 'utf8') : '');
  const trainSplit = ds.split('train');
  checkSplitsFit(o.dataDir, ds, V);
  const samplerOpts = { batchTokens: train.batch_tokens, seed: train.seed };
  const sampler = ck?.sampler ? BatchSampler.restore(trainSplit, samplerOpts, ck.sampler) : new BatchSampler(trainSplit, samplerOpts);
  const optimizer = createOptimizer(train, layout.total, { decayMask: decayMaskFor(layout), lrGroups: lrGroupsFor(layout, train) });
  if (ck) optimizer.setState(ck.optimizer);
  const startStep = ck?.step ?? 0;
  let lastTrainLoss: number | null = ck && typeof ck.meta.trainLoss === 'number' ? ck.meta.trainLoss : null;
  let lastValLoss: number | null = ck && typeof ck.meta.valLoss === 'number' ? ck.meta.valLoss : null;
  if (o.initWeights && o.initWeights.length !== layout.total) throw new UserError(`init weights: ${o.initWeights.length} floats, the model's layout needs ${layout.total}`);
  // a resumed run continues its own weights; --init only seeds a fresh run
  const initial = ck?.weights ?? (o.initWeights ? o.initWeights.slice() : initParams(layout, config.model, train.seed));
  // the run log is one more observer
  const observers = [...(o.observers ?? []), await openRunLog(o.outDir, ck ? startStep : null)];

  let saving: Promise<void> | undefined;
  let stepping = false;
  let backendName: string = o.backend;
  const fleet = await Coordinator.start({
    model: config.model, backend: o.backend, replicaModule: o.replicaModule, inProcess: o.inProcess, threads: o.threads, gradCodec: config.train.grad_codec,
    remote: o.remote, observers, taskDeadlineMs: o.taskDeadlineMs, noWorkerTimeoutMs: o.noWorkerTimeoutMs, verifyFraction: o.verifyFraction,
    // every worker is gone mid-step: keep the last completed step safe while waiting for them
    onNoWorkers: () => { log.warn('no workers left; waiting for workers to (re)join'); saving ??= checkpoint().finally(() => { saving = undefined; }); },
  }, initial, startStep);
  if (o.stopSignal) {
    o.stopSignal.notify = () => { if (fleet.scheduler.size === 0 || !stepping) fleet.scheduler.stop(); };
    if (o.stopSignal.requested) fleet.scheduler.stop();
  }
  o.hooks?.started?.(fleet);
  const weights = fleet.weights;
  const grad = new Float32Array(layout.total);
  let step = startStep;
  // seconds spent in training steps (evaluation and checkpoints excluded): the time-to-quality clock
  let trainSeconds = ck && typeof ck.meta.trainSeconds === 'number' ? ck.meta.trainSeconds : 0;

  // the sampler position matching the weights (before the batch of a step in progress was drawn)
  let cursor = sampler.cursor();
  let lastCheckpointStep = ck ? startStep : -1;
  const checkpoint = async () => {
    const t0 = performance.now();
    const res = await saveCheckpoint(o.outDir, {
      config, step, weights, optimizer: optimizer.getState(), sampler: cursor, rng: null,
      tokenizerJson, meta: { trainLoss: lastTrainLoss, valLoss: lastValLoss, backend: backendName, trainSeconds, dataManifestSha256: identity.dataManifestSha256 },
    });
    lastCheckpointStep = step;
    broadcast(observers, 'onCheckpoint', { step, seconds: (performance.now() - t0) / 1000, bytes: res.bytes });
    log.info('checkpoint', { step, file: res.file });
  };
  // The run diverged at step n (a confirmed non-finite result, non-finite weights): the error's one
  // line names the step and the checkpoint kept; nothing is written (the last good one stays).
  const diverged = async (n: number, what: string): Promise<DivergedError> => {
    await saving?.catch(() => undefined);
    const kept = lastCheckpointStep >= 0 ? `last good checkpoint kept (${ckFile}, step ${lastCheckpointStep})` : 'no checkpoint was written before it';
    return new DivergedError(what, `diverged at step ${n}: ${what}; ${kept}`);
  };
  // validation: the same seeded random sample of sequences at every evaluation (src/data/sampler.ts)
  const valSplit = ds.split('validation');
  const valSample = sampleSequences(valSplit, train.eval_sequences, train.seed ^ VALIDATION_SEED);
  const bytesOf = byteCounter(tokenizerJson);
  const valTokensPerByte = bytesOf && valSplit.sequences > 0 ? await splitTokensPerByte(valSplit, bytesOf) : undefined;
  // Validation and test scoring (forward only, each sequence on its own, summed in a fixed order: the
  // same figure whatever the thread count; src/train/parallel-eval.ts) run on a pool of threads that
  // lives as long as the run — as many as the fleet's local threads, at least one, at most one per
  // core (more would only time-slice the cores and hold more replicas) — so the coordinator's main
  // thread stays free for /healthz and heartbeats while it scores. Only the single-process
  // `vilm train` scores in its own thread.
  let scorer: SequenceScorer | undefined;
  const openScorer = async (): Promise<SequenceScorer> => {
    scorer ??= await SequenceScorer.open({
      model: config.model, backend: o.backend, weights, threads: o.inProcess ? 0 : Math.max(1, Math.min(o.threads, availableParallelism())), offMainThread: !o.inProcess,
      replicaModule: o.replicaModule,
    });
    scorer.setWeights(weights);
    return scorer;
  };
  const validate = async (whole = false): Promise<ValidationEvent | null> => {
    if (valSplit.sequences === 0) return null;
    const refs = whole ? sampleSequences(valSplit, 0, 0) : valSample;
    const r = await scoreSequencesWith(await openScorer(), valSplit, refs, bytesOf, valTokensPerByte);
    if (r.tokens === 0) return null;
    const nullable = (x: number) => (Number.isFinite(x) ? x : null);
    const ev: ValidationEvent = {
      step, loss: r.loss, lossSe: r.lossSe, bitsPerByte: nullable(r.bitsPerByte), bitsPerByteSe: nullable(r.bitsPerByteSe),
      sequences: r.sequences, tokens: r.tokens, trainSeconds, whole,
    };
    if (!whole) lastValLoss = r.loss;
    broadcast(observers, 'onValidation', ev);
    log.info(whole ? 'validation (whole split)' : 'validation', {
      step, loss: r.loss, se: r.lossSe, bits_per_byte: ev.bitsPerByte, sequences: r.sequences,
    });
    return ev;
  };

  // A fleet larger than a step's micro-shards leaves workers idle, and nothing else would say so
  // (the bytes are fixed by train.micro_shards, so the coordinator cannot cut finer by itself).
  // Said once, and again only if the fleet grows further.
  let idleWarnedAt = 0;
  const warnIdleWorkers = (workers: number, rows: number, bucket: number): void => {
    const usable = shardsWithRows(rows, train.micro_shards);
    if (workers <= usable || workers <= idleWarnedAt) return;
    idleWarnedAt = workers;
    const idle = workers - usable;
    log.warn(`${workers} workers, but a step of the ${bucket} bucket has ${usable} micro-shards with rows ` +
      `(train.micro_shards ${train.micro_shards}, ${rows} rows): at most ${usable} compute at once and ` +
      `${idle === 1 ? '1 worker waits' : `${idle} workers wait`}; to use them, raise train.micro_shards ` +
      '(a different run: the weights depend on it)');
  };

  try {
    const minWorkers = o.minWorkers ?? 1;
    if (fleet.workerCount < minWorkers) {
      log.info(`waiting for ${minWorkers} worker(s)`, { connected: fleet.workerCount });
      await fleet.waitForWorkers(minWorkers);
    }
    // the backend this process runs validation/test on (workers log their own choice)
    backendName = await fleet.initLocalBackend();
    broadcast(observers, 'onStart', { backend: backendName, workers: fleet.workerCount, config, step, steps: train.steps });
    log.info('training', { from: startStep, to: train.steps, workers: fleet.workerCount, shards: train.micro_shards });

    const stopAt = Math.min(train.steps, o.stopAt ?? Infinity);
    // The scoring threads start with the run, not at the first validation: the run's memory (a
    // replica per scoring thread) is all there in its first minute, not first met mid-run by a
    // container's memory limit, and scoring threads that cannot start fail the run before it trains.
    // (Measured in the churn soak, 2026-12-03: opened at step 200, they added ~70 MiB after the
    // first minute.)
    if (step < stopAt) await openScorer();
    let gaveUp = false;
    while (step < stopAt && !o.stopSignal?.requested) {
      const tStep = performance.now();
      cursor = sampler.cursor();
      const batch = sampler.next();
      warnIdleWorkers(fleet.workerCount, batch.rows, batch.bucket);
      stepping = true;
      const lr = learningRate(step, train);
      const pending = fleet.runStep(step, batch, train.micro_shards, train.max_micro_batch_tokens);
      o.hooks?.stepStarted?.(step, fleet);
      let out;
      try {
        out = await pending;
      } catch (e) {
        stepping = false;
        if (e instanceof NoWorkersError) {
          // abandon this step: the sampler goes back to where the checkpoint says
          log.warn(`step ${step + 1} abandoned: ${e.message}`);
          gaveUp = true;
          break;
        }
        if (e instanceof DivergedError) throw await diverged(step + 1, e.what);
        throw e;
      }
      const tOpt = performance.now();
      finalizeGradient(out.root, V, d, grad);
      const gradNorm = clipGlobalNorm(grad, train.clip_norm);
      if (!Number.isFinite(gradNorm)) throw await diverged(step + 1, 'non-finite gradient norm');
      optimizer.step(weights, grad, lr);
      // one pass: weights that went non-finite are divergence at once (never published nor saved)
      if (firstNonFinite(weights) >= 0) throw await diverged(step + 1, 'non-finite weights after the optimizer step');
      const tPub = performance.now();
      step++;
      cursor = sampler.cursor();
      stepping = false;
      fleet.publish(step);
      const tEnd = performance.now();
      const loss = out.root.lossSum / out.root.tokenCount;
      lastTrainLoss = loss;
      const ev: StepEvent = {
        step, loss, tokens: out.root.tokenCount, paddedTokens: batch.rows * batch.seqLen, bucket: batch.bucket, lr, gradNorm,
        timing: {
          total: (tEnd - tStep) / 1000, compute: out.compute, waitStragglers: out.waitStragglers, reduce: out.reduce,
          optimizer: (tPub - tOpt) / 1000, publish: (tEnd - tPub) / 1000,
        },
        workers: out.workers.length,
      };
      trainSeconds += ev.timing.total;
      broadcast(observers, 'onStep', ev);
      for (const w of out.workers) {
        broadcast(observers, 'onWorkerResult', {
          step, workerId: w.id, transport: w.transport, microShards: w.microShards, computeSeconds: w.computeSeconds, bytesSent: w.bytesSent, bytesReceived: w.bytesReceived,
        });
      }
      if (train.log_every > 0 && (step % train.log_every === 0 || step === stopAt)) {
        log.info('step', { step, loss, lr, tokens_per_s: Math.round(ev.tokens / ev.timing.total), grad_norm: gradNorm, workers: ev.workers });
      }
      if (train.eval_every > 0 && step % train.eval_every === 0) await validate();
      if (train.checkpoint_every > 0 && step % train.checkpoint_every === 0) await checkpoint();
    }

    await saving;
    if (lastCheckpointStep !== step) await checkpoint();
    if (step < train.steps) {
      const stopped: StopReason = gaveUp ? 'no-workers' : step >= stopAt ? 'stop-at' : 'signal';
      log.info('stopped before the last step', { step, steps: train.steps, reason: stopped });
      return { final: null, step, weightsSha256: weightsSha256(weights), stopped };
    }

    // --- the end: validation (if not just done) and the test split
    if (!(train.eval_every > 0 && step % train.eval_every === 0) || lastValLoss === null) await validate();
    // the last point of the validation curve, checked against the whole split
    const wholeTest = o.testSequences === undefined || o.testSequences <= 0;
    const valWhole = wholeTest && valSample.length < valSplit.sequences ? await validate(true) : null;
    const testSplit = ds.split('test');
    const testTokensPerByte = !wholeTest && bytesOf && testSplit.sequences > 0 ? await splitTokensPerByte(testSplit, bytesOf) : undefined;
    const testRefs = sampleSequences(testSplit, o.testSequences ?? 0, train.seed ^ TEST_SEED);
    const t = await scoreSequencesWith(await openScorer(), testSplit, testRefs, bytesOf, testTokensPerByte);
    const testLoss = t.tokens > 0 ? t.loss : NaN;
    const testBitsPerByte = t.tokens > 0 && bytesOf ? t.bitsPerByte : NaN;
    const final: FinalReport = {
      step, weightsSha256: weightsSha256(weights), trainLoss: lastTrainLoss, valLoss: lastValLoss,
      valWholeLoss: valWhole?.loss ?? null, valWholeBitsPerByte: valWhole?.bitsPerByte ?? null, trainSeconds,
      testLoss, testPpl: Math.exp(testLoss), testBitsPerByte, testSequences: t.sequences,
    };
    broadcast(observers, 'onTest', { step, loss: testLoss, ppl: final.testPpl, bitsPerByte: testBitsPerByte });
    await writeFileAtomic(path.join(o.outDir, 'final.json'), JSON.stringify(final, null, 2) + '\n');
    log.info('done', { step, test_loss: testLoss, test_ppl: final.testPpl, bits_per_byte: testBitsPerByte, weights_sha256: final.weightsSha256.slice(0, 16) });
    return { final, step, weightsSha256: final.weightsSha256, stopped: null };
  } finally {
    await scorer?.close();
    await fleet.close(o.stopSignal?.requested ? 'coordinator interrupted' : 'training finished');
  }
}

/** UTF-8 bytes of the text a row of ids decodes to (special tokens and padding dropped). */
function byteCounter(tokenizerJson: string): ((tokens: Uint16Array) => number) | undefined {
  if (!tokenizerJson) {
    log.warn('no tokenizer.json with the data (--tokenizer): bits per byte is not computed');
    return undefined;
  }
  const tok = tokenizerFromJson(tokenizerJson);
  return (row) => {
    let n = row.length;
    while (n > 0 && row[n - 1] === tok.padId) n--;
    return Buffer.byteLength(tok.decode(row.subarray(0, n)), 'utf8');
  };
}

/**
 * The data must suit the model before the first step: every split holds sequences (validation and
 * test scores are part of a run's result), and every token id is inside the model's vocabulary
 * (else a worker's task fails on every retry, deep inside the model). One line naming the data set.
 */
function checkSplitsFit(dataDir: string, ds: ReturnType<typeof loadDataset>, vocabSize: number): void {
  const where = path.join(dataDir, 'manifest.json');
  for (const name of ['train', 'validation', 'test'] as const) {
    const split = ds.split(name);
    if (split.sequences === 0) {
      throw new UserError(`${where}: the ${name} split is empty (${ds.manifest.splits.train.docs + ds.manifest.splits.validation.docs + ds.manifest.splits.test.docs} documents in all); a run needs text in every split — prepare more documents`);
    }
    for (const b of split.buckets) {
      let max = 0;
      for (let i = 0; i < b.tokens.length; i++) if (b.tokens[i] > max) max = b.tokens[i];
      if (max >= vocabSize) {
        throw new UserError(`${path.join(dataDir, `${name}.bin`)}: token id ${max} is outside the model's vocabulary (model.vocab_size ${vocabSize}); prepare the data with the model's tokenizer or raise model.vocab_size`);
      }
    }
  }
}
