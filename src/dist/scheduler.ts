/**
 * The step scheduler: hands a step's tasks (aligned blocks of micro-shards) to whichever worker is
 * free — workers PULL work, so a fast worker does more — collects the results, and requeues a task
 * whose worker died, disconnected, missed the deadline or sent a bad result (split into its two
 * halves so the remaining workers share it). The step's gradient sum is then the fixed-tree
 * reduction of whatever blocks came back (src/dist/reduce.ts), so the bytes do not depend on any of
 * this.
 */
import type { ReassignReason, RejectReason, Transport, TrainerObserver } from '../train/events.js';
import type { TokenBatch } from '../model/types.js';
import { log } from '../util/log.js';
import { blockKey, blockRows, children, combine, covered, planBlocks, reduceNode, rootBlock, type Block, type GradSum } from './reduce.js';
import { checkResult, resultToPartial, type ResultMsg, type TaskMsg } from './task.js';

/** A failure of one task on one worker; `reason` decides how it is counted. */
export class LinkError extends Error {
  constructor(readonly reason: ReassignReason | 'stale', message: string, readonly rejectReason?: RejectReason) {
    super(message);
  }
}

/** One compute slot: a thread of the pool, the in-process replica, or a WebSocket connection. */
export interface WorkerLink {
  readonly id: string;
  readonly transport: Transport;
  /** Run one task. Rejects with a LinkError when the worker dies, disconnects or answers stale. */
  run(task: TaskMsg): Promise<ResultMsg>;
  /** Bytes sent to / received from this worker so far (0 for in-process and threads). */
  bytes(): { sent: number; received: number };
  /** Drop the worker (repeat offender). */
  kick(reason: string): void;
}

export interface SchedulerOptions {
  observers: TrainerObserver[];
  vocab: number;
  d: number;
  restSize: number;
  /** a task not answered within this many ms is also given to another worker */
  taskDeadlineMs: number;
  /** bad results (NaN/Inf, wrong shape, stale, protocol) before a worker is disconnected */
  maxStrikes: number;
  /** how long a step waits with no worker at all before failing (Infinity = forever) */
  noWorkerTimeoutMs: number;
  /** called when a step is left with no worker at all (the loop checkpoints) */
  onNoWorkers?: () => void;
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

interface LinkState {
  link: WorkerLink;
  busy: boolean;
  strikes: number;
  gone: boolean;
}

export class NoWorkersError extends Error {}

export class Scheduler {
  private links = new Map<string, LinkState>();
  private wake: (() => void) | undefined;
  private nextTaskId = 1;
  private stopped = false;
  /** per worker: bytes counted up to its last step */
  private byteMark = new Map<string, { sent: number; received: number }>();

  constructor(private readonly opts: SchedulerOptions) {}

  private emit<K extends keyof TrainerObserver>(k: K, ...args: Parameters<NonNullable<TrainerObserver[K]>>): void {
    for (const o of this.opts.observers) {
      const f = o[k] as ((...a: unknown[]) => void) | undefined;
      if (f) f.apply(o, args);
    }
  }

  private countsChanged(): void {
    const c: Record<Transport, number> = { inprocess: 0, thread: 0, ws: 0 };
    for (const s of this.links.values()) c[s.link.transport]++;
    this.emit('onWorkers', c);
  }

  addLink(link: WorkerLink): void {
    this.links.set(link.id, { link, busy: false, strikes: 0, gone: false });
    this.countsChanged();
    queueMicrotask(() => this.wake?.());
  }

  removeLink(id: string): void {
    const s = this.links.get(id);
    if (!s) return;
    s.gone = true;
    this.links.delete(id);
    this.byteMark.delete(id);
    this.countsChanged();
    queueMicrotask(() => this.wake?.());
  }

  get size(): number { return this.links.size; }

  /** Ids of the connected workers. */
  ids(): string[] { return [...this.links.keys()]; }

  /** Disconnect a worker (operator action or test); its task in flight is requeued. */
  kick(id: string, reason: string): void {
    const s = this.links.get(id);
    if (!s) return;
    s.link.kick(reason);
    this.removeLink(id);
  }

  /** Resolves when at least `n` workers are connected (or the scheduler stops). */
  async waitForWorkers(n: number, timeoutMs = Infinity): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (this.links.size < n && !this.stopped) {
      const left = until - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((res) => {
        const t = setTimeout(res, Math.min(left, 1000));
        this.wake = () => { clearTimeout(t); res(); };
      });
      this.wake = undefined;
    }
    return this.links.size >= n;
  }

  /** Stop waiting (shutdown): a step in progress fails with NoWorkersError. */
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  /**
   * Compute the gradient sum of one step's batch: M = `shards` micro-shards, weights `version`.
   * Tasks are planned for the current worker count; results are validated here for every transport.
   */
  async runStep(step: number, version: number, batch: TokenBatch, shards: number, maxTokens: number): Promise<StepOutcome> {
    const t0 = performance.now();
    const anyRemote = [...this.links.values()].some((s) => s.link.transport === 'ws');
    const queue: Block[] = planBlocks(shards, Math.max(1, this.links.size), anyRemote ? 2 : 4);
    const done = new Map<string, GradSum | null>();
    const inflight = new Map<number, { block: Block; link: LinkState; timer: NodeJS.Timeout | undefined; expired: boolean }>();
    const stats = new Map<string, WorkerStepStats>();
    const root = rootBlock(shards);
    let reassigned = 0;
    let firstIdle: number | undefined;
    let lastResult = t0;
    const isDone = () => covered(root, shards, (b) => done.has(blockKey(b)));

    // Reduce as results arrive: once both children of a node are in, add them (in the fixed tree
    // order, so the bytes are the same) while the stragglers still compute.
    const collapse = (b: Block) => {
      let cur = b;
      while (cur.level < root.level) {
        const parent: Block = { level: cur.level + 1, index: cur.index >> 1 };
        if (done.has(blockKey(parent))) return;
        const left: Block = { level: cur.level, index: parent.index * 2 };
        const right: Block = { level: cur.level, index: parent.index * 2 + 1 };
        const rightAbsent = right.index * 2 ** right.level >= shards;
        const l = done.get(blockKey(left)), r = rightAbsent ? null : done.get(blockKey(right));
        if (l === undefined || r === undefined) return;
        done.set(blockKey(parent), combine(l, r, this.opts.d));
        done.delete(blockKey(left));
        done.delete(blockKey(right));
        cur = parent;
      }
    };

    const requeue = (block: Block, reason: ReassignReason) => {
      if (covered(block, shards, (b) => done.has(blockKey(b)))) return;
      const parts = children(block, shards);
      // split so the remaining workers share the lost work; a shard is the smallest unit
      if (parts.length > 0) queue.unshift(...parts); else queue.unshift(block);
      reassigned++;
      this.emit('onReassigned', { count: 1, reason });
    };

    const makeTask = (block: Block): TaskMsg => {
      const [r0, r1] = blockRows(block, batch.rows, shards);
      return {
        step, version, taskId: this.nextTaskId++, level: block.level, index: block.index, shards,
        batchRows: batch.rows, seqLen: batch.seqLen, rowStart: r0,
        tokens: batch.tokens.slice(r0 * batch.seqLen, r1 * batch.seqLen), maxTokens,
      };
    };

    return await new Promise<StepOutcome>((resolve, reject) => {
      let finished = false;
      let noWorkerTimer: NodeJS.Timeout | undefined;
      let noWorkers = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        this.wake = undefined;
        if (noWorkerTimer) clearTimeout(noWorkerTimer);
        for (const f of inflight.values()) if (f.timer) clearTimeout(f.timer);
        const tEnd = lastResult;
        const r0 = performance.now();
        let sum: GradSum | null;
        try {
          sum = reduceNode(root, shards, this.opts.d, (b) => done.get(blockKey(b)));
        } catch (e) { reject(e); return; }
        if (sum === null) { reject(new Error(`step ${step}: empty batch`)); return; }
        const reduce = (performance.now() - r0) / 1000;
        for (const [id, st] of stats) {
          const s = this.links.get(id);
          if (!s) continue;
          // bytes since this worker's last counted step: the weights published after that step,
          // this step's tasks and results
          const b = s.link.bytes(), m = this.byteMark.get(id) ?? { sent: 0, received: 0 };
          st.bytesSent = b.sent - m.sent;
          st.bytesReceived = b.received - m.received;
          this.byteMark.set(id, b);
        }
        resolve({
          root: sum, compute: (tEnd - t0) / 1000,
          waitStragglers: firstIdle !== undefined ? Math.max(0, tEnd - firstIdle) / 1000 : 0,
          reduce, workers: [...stats.values()], reassigned,
        });
      };

      const onFailure = (st: LinkState, block: Block, err: unknown) => {
        const e = err instanceof LinkError ? err : new LinkError('died', String((err as Error)?.message ?? err));
        // a task that fails everywhere (a bug or bad input, not a flaky worker) must not loop forever
        if (reassigned >= 4 * shards + 8) {
          finished = true;
          for (const f of inflight.values()) if (f.timer) clearTimeout(f.timer);
          reject(new Error(`step ${step + 1}: tasks keep failing (${reassigned} reassignments); last: ${e.message}`));
          return;
        }
        requeue(block, e.reason === 'stale' ? 'rejected' : e.reason);
        if (e.rejectReason || e.reason === 'stale') {
          this.emit('onRejected', { workerId: st.link.id, reason: e.rejectReason ?? 'stale' });
          st.strikes++;
          if (st.strikes >= this.opts.maxStrikes && !st.gone) {
            log.warn(`worker ${st.link.id}: ${st.strikes} rejected results, disconnecting`);
            st.link.kick(`${st.strikes} rejected results`);
            this.removeLink(st.link.id);
          }
        } else {
          log.warn(`worker ${st.link.id}: task failed (${e.reason}): ${e.message}`);
        }
      };

      const dispatch = (st: LinkState, block: Block) => {
        const task = makeTask(block);
        st.busy = true;
        if (!stats.has(st.link.id)) {
          stats.set(st.link.id, { id: st.link.id, transport: st.link.transport, microShards: 0, computeSeconds: 0, bytesSent: 0, bytesReceived: 0 });
        }
        const entry = { block, link: st, timer: undefined as NodeJS.Timeout | undefined, expired: false };
        if (Number.isFinite(this.opts.taskDeadlineMs)) {
          entry.timer = setTimeout(() => {
            entry.expired = true;
            if (!finished) { log.warn(`worker ${st.link.id}: task ${task.taskId} missed the ${this.opts.taskDeadlineMs} ms deadline, reassigning`); requeue(block, 'deadline'); pump(); }
          }, this.opts.taskDeadlineMs);
        }
        inflight.set(task.taskId, entry);
        st.link.run(task).then((r) => {
          if (entry.timer) clearTimeout(entry.timer);
          inflight.delete(task.taskId);
          st.busy = false;
          if (finished) return;
          const bad = r.step !== step || r.version !== version || r.taskId !== task.taskId || r.level !== block.level || r.index !== block.index
            ? 'stale' as const
            : checkResult(r, this.opts.restSize, this.opts.vocab, this.opts.d);
          if (bad) {
            onFailure(st, block, new LinkError('rejected', `bad result: ${bad}`, bad));
          } else {
            if (!covered(block, shards, (b) => done.has(blockKey(b)))) {
              done.set(blockKey(block), resultToPartial(r));
              collapse(block);
            }
            lastResult = performance.now();
            // the first worker to run out of work: from here on the step waits for stragglers
            if (firstIdle === undefined && queue.length === 0) firstIdle = lastResult;
            const s = stats.get(st.link.id)!;
            const [a, b] = [Math.min(block.index * 2 ** block.level, shards), Math.min((block.index + 1) * 2 ** block.level, shards)];
            s.microShards += b - a;
            s.computeSeconds += r.computeSeconds;
          }
          pump();
        }, (err: unknown) => {
          if (entry.timer) clearTimeout(entry.timer);
          inflight.delete(task.taskId);
          st.busy = false;
          if (finished) return;
          onFailure(st, block, err);
          pump();
        });
      };

      const pump = () => {
        if (finished) return;
        if (isDone()) { finish(); return; }
        // drop queued blocks already covered (a late result may have covered them)
        for (let i = queue.length - 1; i >= 0; i--) if (covered(queue[i], shards, (b) => done.has(blockKey(b)))) queue.splice(i, 1);
        for (const st of this.links.values()) {
          if (queue.length === 0) break;
          if (st.busy || st.gone) continue;
          dispatch(st, queue.shift()!);
        }
        // blocks lost with a worker that left without an answer are requeued by its run() rejecting;
        // an expired task still running keeps its worker busy; if nothing is in flight or queued
        // for an uncovered block, requeue it.
        if (queue.length === 0 && inflight.size === 0 && !isDone()) {
          for (const b of planBlocks(shards, 1)) requeue(b, 'died');
        }
        if (this.links.size === 0) {
          if (this.stopped) { finished = true; reject(new NoWorkersError('stopped')); return; }
          if (!noWorkers) { noWorkers = true; this.opts.onNoWorkers?.(); }
          if (!noWorkerTimer && Number.isFinite(this.opts.noWorkerTimeoutMs)) {
            noWorkerTimer = setTimeout(() => {
              if (!finished && this.links.size === 0) { finished = true; reject(new NoWorkersError(`no worker for ${this.opts.noWorkerTimeoutMs} ms`)); }
            }, this.opts.noWorkerTimeoutMs);
          }
        } else {
          noWorkers = false;
          if (noWorkerTimer) { clearTimeout(noWorkerTimer); noWorkerTimer = undefined; }
        }
      };

      this.wake = () => {
        if (this.stopped && !finished) { finished = true; reject(new NoWorkersError('stopped')); return; }
        pump();
      };
      pump();
    });
  }
}
