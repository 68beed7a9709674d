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
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { BackendName } from '../backend/types.js';
import type { RunConfig } from '../config/index.js';
import { loadDataset, type PreparedSplit } from '../data/dataset.js';
import { BatchSampler, evalBatches } from '../data/sampler.js';
import { broadcast, type StepEvent, type TrainerObserver } from '../events/index.js';
import { openRunLog } from '../events/run-log.js';
import { Coordinator } from '../fleet/coordinator/coordinator.js';
import { NoWorkersError } from '../fleet/coordinator/step-run.js';
import type { RemoteOptions } from '../fleet/coordinator/ws-server.js';
import { finalizeGradient } from '../fleet/reduce.js';
import type { LanguageModel } from '../model/api.js';
import { buildLayout, initParams } from '../model/layout.js';
import { clipGlobalNorm, createOptimizer, decayMaskFor, learningRate } from '../optim/index.js';
import { UserError } from '../util/errors.js';
import { log } from '../util/log.js';
import { writeFileAtomic } from '../util/atomic.js';
import { CHECKPOINT_FILE, loadCheckpoint, saveCheckpoint, weightsSha256, type Checkpoint } from './checkpoint.js';
import { tokenizerFromJson } from '../tokenizer/index.js';

export interface FinalReport {
  step: number;
  weightsSha256: string;
  trainLoss: number | null;
  valLoss: number | null;
  testLoss: number;
  testPpl: number;
  testBitsPerByte: number;
}

export interface TrainLoopOptions {
  config: RunConfig;
  dataDir: string;
  outDir: string;
  /** continue from RUN/checkpoint.vilm (its config wins, except `train.steps` when `steps` is given) */
  resume: boolean;
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
  /** tokenizer.json for bits per byte and the checkpoint (default: DATA/tokenizer.json) */
  tokenizerFile?: string;
  /** test-split batches evaluated at the end (default: all) */
  testBatches?: number;
  taskDeadlineMs?: number;
  noWorkerTimeoutMs?: number;
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

export interface TrainLoopResult {
  final: FinalReport | null;
  step: number;
  weightsSha256: string;
}

/** Loss summed over the first `maxBatches` batches of a split (all when undefined), in fixed order. */
export function evaluateSplit(
  model: LanguageModel, weights: Float32Array, split: PreparedSplit, batchTokens: number, maxTokens: number,
  maxBatches: number | undefined, bytesOf?: (tokens: Uint16Array) => number,
): { lossSum: number; tokens: number; bytes: number } {
  let lossSum = 0, tokens = 0, bytes = 0;
  for (const b of evalBatches(split, { batchTokens, maxBatches })) {
    const chunk = Math.max(1, Math.floor(maxTokens / b.seqLen));
    for (let r = 0; r < b.rows; r += chunk) {
      const rows = Math.min(chunk, b.rows - r);
      const sub = { tokens: b.tokens.subarray(r * b.seqLen, (r + rows) * b.seqLen), rows, seqLen: b.seqLen };
      const res = model.evaluate(weights, sub);
      lossSum += res.lossSum;
      tokens += res.tokenCount;
    }
    if (bytesOf) {
      for (let r = 0; r < b.rows; r++) bytes += bytesOf(b.tokens.subarray(r * b.seqLen, (r + 1) * b.seqLen));
    }
  }
  return { lossSum, tokens, bytes };
}

export async function runTrainingLoop(o: TrainLoopOptions): Promise<TrainLoopResult> {
  // --- state: fresh or from the checkpoint
  let ck: Checkpoint | undefined;
  mkdirSync(o.outDir, { recursive: true });
  if (!o.resume) {
    if (existsSync(path.join(o.outDir, CHECKPOINT_FILE))) throw new UserError(`${o.outDir}: already holds a run (checkpoint.vilm); pass --resume to continue it or choose another --out`);
  } else {
    if (!existsSync(path.join(o.outDir, CHECKPOINT_FILE))) throw new UserError(`${path.join(o.outDir, CHECKPOINT_FILE)}: no checkpoint to resume from`);
    ck = loadCheckpoint(o.outDir);
  }
  const config: RunConfig = ck ? { model: ck.config.model, train: { ...ck.config.train } } : { model: o.config.model, train: { ...o.config.train } };
  if (o.steps !== undefined) config.train.steps = o.steps;
  const train = config.train;
  const layout = buildLayout(config.model);
  const V = config.model.vocab_size, d = config.model.d_model;

  const ds = loadDataset(o.dataDir);
  const tokFile = o.tokenizerFile ?? path.join(o.dataDir, 'tokenizer.json');
  const tokenizerJson = ck?.tokenizerJson ?? (existsSync(tokFile) ? readFileSync(tokFile, 'utf8') : '');
  const trainSplit = ds.split('train');
  const samplerOpts = { batchTokens: train.batch_tokens, seed: train.seed };
  const sampler = ck?.sampler ? BatchSampler.restore(trainSplit, samplerOpts, ck.sampler) : new BatchSampler(trainSplit, samplerOpts);
  const optimizer = createOptimizer(train, layout.total, { decayMask: decayMaskFor(layout) });
  if (ck) optimizer.setState(ck.optimizer);
  const startStep = ck?.step ?? 0;
  let lastTrainLoss: number | null = ck && typeof ck.meta.trainLoss === 'number' ? ck.meta.trainLoss : null;
  let lastValLoss: number | null = ck && typeof ck.meta.valLoss === 'number' ? ck.meta.valLoss : null;
  const initial = ck?.weights ?? initParams(layout, config.model, train.seed);
  // the run log is one more observer
  const observers = [...(o.observers ?? []), await openRunLog(o.outDir, ck ? startStep : null)];

  let saving: Promise<void> | undefined;
  let stepping = false;
  let backendName: string = o.backend;
  const fleet = await Coordinator.start({
    model: config.model, backend: o.backend, replicaModule: o.replicaModule, inProcess: o.inProcess, threads: o.threads,
    remote: o.remote, observers, taskDeadlineMs: o.taskDeadlineMs, noWorkerTimeoutMs: o.noWorkerTimeoutMs,
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

  // the sampler position matching the weights (before the batch of a step in progress was drawn)
  let cursor = sampler.cursor();
  let lastCheckpointStep = ck ? startStep : -1;
  const checkpoint = async () => {
    const t0 = performance.now();
    const res = await saveCheckpoint(o.outDir, {
      config, step, weights, optimizer: optimizer.getState(), sampler: cursor, rng: null,
      tokenizerJson, meta: { trainLoss: lastTrainLoss, valLoss: lastValLoss, backend: backendName },
    });
    lastCheckpointStep = step;
    broadcast(observers, 'onCheckpoint', { step, seconds: (performance.now() - t0) / 1000, bytes: res.bytes });
    log.info('checkpoint', { step, file: res.file });
  };
  const validate = async () => {
    const model = await fleet.localModel();
    const r = evaluateSplit(model, weights, ds.split('validation'), train.batch_tokens, train.max_micro_batch_tokens, train.eval_batches > 0 ? train.eval_batches : undefined);
    lastValLoss = r.tokens > 0 ? r.lossSum / r.tokens : null;
    if (lastValLoss !== null) {
      broadcast(observers, 'onValidation', { step, loss: lastValLoss, tokens: r.tokens });
      log.info('validation', { step, loss: lastValLoss, tokens: r.tokens });
    }
  };

  try {
    const minWorkers = o.minWorkers ?? 1;
    if (fleet.workerCount < minWorkers) {
      log.info(`waiting for ${minWorkers} worker(s)`, { connected: fleet.workerCount });
      await fleet.waitForWorkers(minWorkers);
    }
    // the backend this process runs validation/test on (workers log their own choice)
    backendName = await fleet.initLocalBackend();
    broadcast(observers, 'onStart', { backend: backendName, workers: fleet.workerCount, config });
    log.info('training', { from: startStep, to: train.steps, workers: fleet.workerCount, shards: train.micro_shards });

    const stopAt = Math.min(train.steps, o.stopAt ?? Infinity);
    while (step < stopAt && !o.stopSignal?.requested) {
      const tStep = performance.now();
      cursor = sampler.cursor();
      const batch = sampler.next();
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
          break;
        }
        throw e;
      }
      const tOpt = performance.now();
      finalizeGradient(out.root, V, d, grad);
      const gradNorm = clipGlobalNorm(grad, train.clip_norm);
      if (Number.isFinite(gradNorm)) optimizer.step(weights, grad, lr);
      else log.warn(`step ${step + 1}: gradient norm is ${gradNorm}, step skipped`);
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
      log.info('stopped before the last step', { step, steps: train.steps });
      return { final: null, step, weightsSha256: weightsSha256(weights) };
    }

    // --- the end: validation (if not just done) and the test split
    if (!(train.eval_every > 0 && step % train.eval_every === 0) || lastValLoss === null) await validate();
    const model = await fleet.localModel();
    const bytesOf = byteCounter(tokenizerJson);
    const t = evaluateSplit(model, weights, ds.split('test'), train.batch_tokens, train.max_micro_batch_tokens, o.testBatches, bytesOf);
    const testLoss = t.tokens > 0 ? t.lossSum / t.tokens : NaN;
    const testBitsPerByte = t.bytes > 0 ? t.lossSum / Math.LN2 / t.bytes : NaN;
    const final: FinalReport = {
      step, weightsSha256: weightsSha256(weights), trainLoss: lastTrainLoss, valLoss: lastValLoss,
      testLoss, testPpl: Math.exp(testLoss), testBitsPerByte,
    };
    broadcast(observers, 'onTest', { step, loss: testLoss, ppl: final.testPpl, bitsPerByte: testBitsPerByte });
    await writeFileAtomic(path.join(o.outDir, 'final.json'), JSON.stringify(final, null, 2) + '\n');
    log.info('done', { step, test_loss: testLoss, test_ppl: final.testPpl, bits_per_byte: testBitsPerByte, weights_sha256: final.weightsSha256.slice(0, 16) });
    return { final, step, weightsSha256: final.weightsSha256 };
  } finally {
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
