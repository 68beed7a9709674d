/**
 * One step's run: hand the step's tasks (aligned blocks of micro-shards, ../shard-tree.ts) to
 * whichever worker is free — workers PULL work, so a fast worker does more — check and collect the
 * results, and requeue a task whose worker died, disconnected, missed the deadline or sent a bad
 * result (split into its two halves so the remaining workers share it). The results are reduced as
 * they arrive with the fixed tree (../reduce.ts), so the bytes depend on none of this.
 *
 * The scheduler (./scheduler.ts) owns the workers across steps; a StepRun lives for one step.
 */
import type { ReassignReason, Transport } from '../../events/index.js';
import type { TokenBatch } from '../../model/types.js';
import { log } from '../../util/log.js';
import type { TaskMsg } from '../contract.js';
import { TreeAccumulator, resultToGradSum, type GradSum } from '../reduce.js';
import { blockRows, blockShardCount, children, planBlocks, type Block } from '../shard-tree.js';
import { checkResult, type ResultShape } from './result-check.js';
import { LinkError, type WorkerLink } from './worker-link.js';

/** What a step needs from the scheduler that owns the workers. */
export interface StepHost {
  readonly shape: ResultShape;
  /** a task not answered within this many ms is also given to another worker */
  readonly taskDeadlineMs: number;
  /** how long a step waits with no worker at all before failing (Infinity = forever) */
  readonly noWorkerTimeoutMs: number;
  readonly stopped: boolean;
  /** the connected workers, in join order */
  slots(): Iterable<WorkerSlot>;
  readonly size: number;
  newTaskId(): number;
  /** a result was refused: count a strike against the worker (it may be dropped) */
  strike(slot: WorkerSlot, reason: LinkError): void;
  onReassigned(reason: ReassignReason): void;
  /** the step is left with no worker at all (the loop checkpoints) */
  onNoWorkers(): void;
  /** bytes since this worker's last counted step */
  bytesSinceLastStep(slot: WorkerSlot): { sent: number; received: number };
  /** install (or clear) the wake-up the scheduler calls when workers come or go */
  setWake(wake: (() => void) | undefined): void;
}

/** A worker as the scheduler tracks it. */
export interface WorkerSlot {
  link: WorkerLink;
  busy: boolean;
  strikes: number;
  gone: boolean;
}

export interface WorkerStepStats {
  id: string;
  transport: Transport;
  microShards: number;
  computeSeconds: number;
  bytesSent: number;
  bytesReceived: number;
}

export interface StepOutcome {
  root: GradSum;
  /** seconds from first dispatch to the last needed result */
  compute: number;
  /** seconds the step waited after the first worker ran out of work */
  waitStragglers: number;
  /** seconds of the final tree reduction on the coordinator */
  reduce: number;
  workers: WorkerStepStats[];
  reassigned: number;
}

/** The step was abandoned: no worker left (timeout) or the coordinator is stopping. */
export class NoWorkersError extends Error {}

interface InFlight {
  block: Block;
  slot: WorkerSlot;
  timer: NodeJS.Timeout | undefined;
}

export class StepRun {
  private readonly queue: Block[];
  private readonly tree: TreeAccumulator;
  private readonly inflight = new Map<number, InFlight>();
  private readonly stats = new Map<string, WorkerStepStats>();
  private readonly t0 = performance.now();
  private reassigned = 0;
  private firstIdle: number | undefined;
  private lastResult = this.t0;
  private finished = false;
  private noWorkers = false;
  private noWorkerTimer: NodeJS.Timeout | undefined;
  private resolve!: (o: StepOutcome) => void;
  private reject!: (e: Error) => void;

  constructor(
    private readonly host: StepHost,
    private readonly step: number,
    private readonly version: number,
    private readonly batch: TokenBatch,
    private readonly shards: number,
    private readonly maxTokens: number,
  ) {
    const anyRemote = [...host.slots()].some((s) => s.link.transport === 'ws');
    this.queue = planBlocks(shards, Math.max(1, host.size), anyRemote ? 2 : 4);
    this.tree = new TreeAccumulator(shards, host.shape.d);
  }

  /** Run the step to its end: the batch's gradient sum, or NoWorkersError / a failure. */
  run(): Promise<StepOutcome> {
    return new Promise<StepOutcome>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      this.host.setWake(() => {
        if (this.host.stopped && !this.finished) { this.fail(new NoWorkersError('stopped')); return; }
        this.pump();
      });
      this.pump();
    });
  }

  private makeTask(block: Block): TaskMsg {
    const { batch, shards } = this;
    const [r0, r1] = blockRows(block, batch.rows, shards);
    return {
      step: this.step, version: this.version, taskId: this.host.newTaskId(), level: block.level, index: block.index, shards,
      batchRows: batch.rows, seqLen: batch.seqLen, rowStart: r0,
      tokens: batch.tokens.slice(r0 * batch.seqLen, r1 * batch.seqLen), maxTokens: this.maxTokens,
    };
  }

  private requeue(block: Block, reason: ReassignReason): void {
    if (this.tree.covers(block)) return;
    const parts = children(block, this.shards);
    // split so the remaining workers share the lost work; a shard is the smallest unit
    if (parts.length > 0) this.queue.unshift(...parts); else this.queue.unshift(block);
    this.reassigned++;
    this.host.onReassigned(reason);
  }

  private clearTimers(): void {
    if (this.noWorkerTimer) clearTimeout(this.noWorkerTimer);
    for (const f of this.inflight.values()) if (f.timer) clearTimeout(f.timer);
  }

  private fail(e: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.host.setWake(undefined);
    this.clearTimers();
    this.reject(e);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.host.setWake(undefined);
    this.clearTimers();
    const tEnd = this.lastResult;
    const r0 = performance.now();
    let sum: GradSum | null;
    try {
      sum = this.tree.root();
    } catch (e) { this.reject(e as Error); return; }
    if (sum === null) { this.reject(new Error(`step ${this.step}: empty batch`)); return; }
    const reduce = (performance.now() - r0) / 1000;
    const live = new Map([...this.host.slots()].map((s) => [s.link.id, s]));
    for (const [id, st] of this.stats) {
      const s = live.get(id);
      if (!s) continue;
      // bytes since this worker's last counted step: the weights published after that step,
      // this step's tasks and results
      const b = this.host.bytesSinceLastStep(s);
      st.bytesSent = b.sent;
      st.bytesReceived = b.received;
    }
    this.resolve({
      root: sum, compute: (tEnd - this.t0) / 1000,
      waitStragglers: this.firstIdle !== undefined ? Math.max(0, tEnd - this.firstIdle) / 1000 : 0,
      reduce, workers: [...this.stats.values()], reassigned: this.reassigned,
    });
  }

  private onFailure(slot: WorkerSlot, block: Block, err: unknown): void {
    const e = err instanceof LinkError ? err : new LinkError('died', String((err as Error)?.message ?? err));
    // a task that fails everywhere (a bug or bad input, not a flaky worker) must not loop forever
    if (this.reassigned >= 4 * this.shards + 8) {
      this.fail(new Error(`step ${this.step + 1}: tasks keep failing (${this.reassigned} reassignments); last: ${e.message}`));
      return;
    }
    this.requeue(block, e.reason === 'stale' ? 'rejected' : e.reason);
    if (e.rejectReason || e.reason === 'stale') this.host.strike(slot, e);
    else log.warn(`worker ${slot.link.id}: task failed (${e.reason}): ${e.message}`);
  }

  private dispatch(slot: WorkerSlot, block: Block): void {
    const task = this.makeTask(block);
    slot.busy = true;
    if (!this.stats.has(slot.link.id)) {
      this.stats.set(slot.link.id, { id: slot.link.id, transport: slot.link.transport, microShards: 0, computeSeconds: 0, bytesSent: 0, bytesReceived: 0 });
    }
    const entry: InFlight = { block, slot, timer: undefined };
    const deadline = this.host.taskDeadlineMs;
    if (Number.isFinite(deadline)) {
      entry.timer = setTimeout(() => {
        if (this.finished) return;
        log.warn(`worker ${slot.link.id}: task ${task.taskId} missed the ${deadline} ms deadline, reassigning`);
        this.requeue(block, 'deadline');
        this.pump();
      }, deadline);
    }
    this.inflight.set(task.taskId, entry);
    slot.link.run(task).then((r) => {
      if (entry.timer) clearTimeout(entry.timer);
      this.inflight.delete(task.taskId);
      slot.busy = false;
      if (this.finished) return;
      const bad = checkResult(r, task, this.host.shape);
      if (bad) {
        this.onFailure(slot, block, new LinkError('rejected', `bad result: ${bad}`, bad));
      } else {
        this.tree.add(block, resultToGradSum(r));
        this.lastResult = performance.now();
        // the first worker to run out of work: from here on the step waits for stragglers
        if (this.firstIdle === undefined && this.queue.length === 0) this.firstIdle = this.lastResult;
        const s = this.stats.get(slot.link.id)!;
        s.microShards += blockShardCount(block, this.shards);
        s.computeSeconds += r.computeSeconds;
      }
      this.pump();
    }, (err: unknown) => {
      if (entry.timer) clearTimeout(entry.timer);
      this.inflight.delete(task.taskId);
      slot.busy = false;
      if (this.finished) return;
      this.onFailure(slot, block, err);
      this.pump();
    });
  }

  private pump(): void {
    if (this.finished) return;
    if (this.tree.complete) { this.finish(); return; }
    const queue = this.queue;
    // drop queued blocks already covered (a late result may have covered them)
    for (let i = queue.length - 1; i >= 0; i--) if (this.tree.covers(queue[i])) queue.splice(i, 1);
    for (const slot of this.host.slots()) {
      if (queue.length === 0) break;
      if (slot.busy || slot.gone) continue;
      this.dispatch(slot, queue.shift()!);
    }
    // blocks lost with a worker that left without an answer are requeued by its run() rejecting;
    // an expired task still running keeps its worker busy; if nothing is in flight or queued
    // for an uncovered block, requeue it.
    if (queue.length === 0 && this.inflight.size === 0 && !this.tree.complete) {
      for (const b of planBlocks(this.shards, 1)) this.requeue(b, 'died');
    }
    if (this.host.size === 0) {
      if (this.host.stopped) { this.fail(new NoWorkersError('stopped')); return; }
      if (!this.noWorkers) { this.noWorkers = true; this.host.onNoWorkers(); }
      const timeout = this.host.noWorkerTimeoutMs;
      if (!this.noWorkerTimer && Number.isFinite(timeout)) {
        this.noWorkerTimer = setTimeout(() => {
          if (!this.finished && this.host.size === 0) this.fail(new NoWorkersError(`no worker for ${timeout} ms`));
        }, timeout);
      }
    } else {
      this.noWorkers = false;
      if (this.noWorkerTimer) { clearTimeout(this.noWorkerTimer); this.noWorkerTimer = undefined; }
    }
  }
}
