/**
 * Scheduler-level doubles for the result checks, divergence and verification tests: a WorkerLink
 * that computes tasks honestly with the pure-JS toy model in this thread and then lets a test
 * tamper with the result (a lying or broken worker), a Scheduler wired to record its events, and
 * the reference gradient of a batch computed directly. No sockets, no threads: the scheduler sees
 * exactly what a worker of any transport would hand it.
 */
import { createHash } from 'node:crypto';
import { loadConfig, type RunConfig } from '../../src/config/index.ts';
import type { RejectReason, ReassignReason, Transport } from '../../src/events/index.ts';
import type { ResultMsg, TaskMsg } from '../../src/fleet/contract.ts';
import { Scheduler, type SchedulerOptions } from '../../src/fleet/coordinator/scheduler.ts';
import { LinkError, type WorkerLink } from '../../src/fleet/coordinator/worker-link.ts';
import { finalizeGradient, resultToGradSum, type GradSum } from '../../src/fleet/reduce.ts';
import { rootBlock } from '../../src/fleet/shard-tree.ts';
import { computeTask } from '../../src/fleet/worker/compute.ts';
import type { LanguageModel } from '../../src/model/api.ts';
import { buildLayout, initParams } from '../../src/model/layout.ts';
import type { TokenBatch } from '../../src/model/types.ts';
import { Rng } from '../../src/util/rng.ts';
import { createToyModel } from './toy-model.ts';

export const sha = (a: Float32Array) => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

/** A toy-model config small enough for hundreds of tasks a second. */
export function toyConfig(shards = 4): RunConfig {
  const c = loadConfig('configs/test.yaml');
  return { model: { ...c.model, vocab_size: 64, d_model: 8, n_heads: 2, n_layers: 1, ff_dim: 16 }, train: { ...c.train, micro_shards: shards } };
}

export function toyWeights(cfg: RunConfig, seed = 1): Float32Array {
  return initParams(buildLayout(cfg.model), cfg.model, seed);
}

/** Random rows of `rows` × `seqLen` with a random amount of <pad> (0) at the end of each row. */
export function paddedBatch(seed: number, rows = 12, seqLen = 10, vocab = 64): TokenBatch {
  const rng = new Rng(seed);
  const tokens = new Uint16Array(rows * seqLen);
  for (let r = 0; r < rows; r++) {
    const len = 2 + rng.int(seqLen - 1);
    for (let t = 0; t < len; t++) tokens[r * seqLen + t] = 1 + rng.int(vocab - 1);
  }
  return { tokens, rows, seqLen };
}

/** The batch's gradient sum computed directly, in one task over the whole tree. */
export function referenceSum(cfg: RunConfig, weights: Float32Array, b: TokenBatch): GradSum {
  const shards = cfg.train.micro_shards;
  const root = rootBlock(shards);
  const r = computeTask(createToyModel(cfg.model), weights, {
    step: 0, version: 0, taskId: 0, level: root.level, index: root.index, shards,
    batchRows: b.rows, seqLen: b.seqLen, rowStart: 0, tokens: b.tokens, maxTokens: 1024, codec: 'fp32',
  });
  return resultToGradSum(r)!;
}

/** sha256 of the step gradient (the bytes the optimizer would see) of a root sum. */
export function gradientSha(cfg: RunConfig, root: GradSum): string {
  return sha(finalizeGradient(root, cfg.model.vocab_size, cfg.model.d_model));
}

/** Edits an honest result in place (`n`: this link's task count so far, from 0). */
export type Tamper = (r: ResultMsg, task: TaskMsg, n: number) => void;

/** A worker that computes honestly with the toy model, then lets `tamper` change the result. */
export class FakeLink implements WorkerLink {
  readonly identity: string;
  readonly transport: Transport;
  /** tasks run (computed), in order */
  readonly tasks: TaskMsg[] = [];
  /** reasons it was kicked with */
  readonly kicked: string[] = [];
  /** changes each honest result (a lying or broken worker); may be set later */
  tamper: Tamper | undefined;
  /** tasks it may hold at once (WorkerLink.depth) */
  readonly depth: number | undefined;
  /** most tasks it held at once */
  maxHeld = 0;
  private held = 0;
  private readonly model: LanguageModel;

  constructor(readonly id: string, cfg: RunConfig, private readonly weights: () => Float32Array, opts: { identity?: string; transport?: Transport; tamper?: Tamper; depth?: number } = {}) {
    this.identity = opts.identity ?? id;
    this.transport = opts.transport ?? 'thread';
    this.model = createToyModel(cfg.model);
    this.tamper = opts.tamper;
    this.depth = opts.depth;
  }

  async run(task: TaskMsg): Promise<ResultMsg> {
    this.maxHeld = Math.max(this.maxHeld, ++this.held);
    try {
      // answer asynchronously, as every real transport does
      await new Promise<void>((r) => setImmediate(r));
      if (this.kicked.length > 0) throw new LinkError('disconnected', `kicked: ${this.kicked[0]}`);
      const n = this.tasks.length;
      this.tasks.push(task);
      const r = computeTask(this.model, this.weights(), task);
      this.tamper?.(r, task, n);
      return r;
    } finally { this.held--; }
  }

  bytes() { return { sent: 0, received: 0 }; }
  kick(reason: string): void { this.kicked.push(reason); }
}

export interface SchedulerEvents {
  rejected: { workerId: string; reason: RejectReason }[];
  reassigned: ReassignReason[];
}

/** A scheduler for the toy config that records rejections and reassignments. */
export function toyScheduler(cfg: RunConfig, extra: Partial<SchedulerOptions> = {}): { scheduler: Scheduler; ev: SchedulerEvents } {
  const ev: SchedulerEvents = { rejected: [], reassigned: [] };
  const L = buildLayout(cfg.model);
  const scheduler = new Scheduler({
    observers: [{ onRejected: (e) => ev.rejected.push(e), onReassigned: (e) => ev.reassigned.push(e.reason) }],
    shape: { vocab: cfg.model.vocab_size, d: cfg.model.d_model, restSize: L.total - L.embedding.size },
    taskDeadlineMs: Infinity, maxStrikes: 3, noWorkerTimeoutMs: Infinity, ...extra,
  });
  return { scheduler, ev };
}

/** `p`, or a rejection after `ms` naming `what`: every wait in these tests has a deadline. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms); });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}
