/**
 * The scheduler: the set of connected workers across steps — joins and leaves, strikes against
 * workers that send bad results, waiting for workers, stopping — and one StepRun (./step-run.ts)
 * per step, which hands out that step's tasks and reduces the results.
 */
import { broadcast, transportCounts, type ReassignReason, type TrainerObserver } from '../../events/index.js';
import type { TokenBatch } from '../../model/types.js';
import { log } from '../../util/log.js';
import type { ResultShape } from './result-check.js';
import { StepRun, type StepHost, type StepOutcome, type WorkerSlot } from './step-run.js';
import type { LinkError, WorkerLink } from './worker-link.js';

export interface SchedulerOptions {
  observers: readonly TrainerObserver[];
  /** what every result is checked against */
  shape: ResultShape;
  /** a task not answered within this many ms is also given to another worker */
  taskDeadlineMs: number;
  /** bad results (NaN/Inf, wrong shape, stale, protocol) before a worker is disconnected */
  maxStrikes: number;
  /** how long a step waits with no worker at all before failing (Infinity = forever) */
  noWorkerTimeoutMs: number;
  /** called when a step is left with no worker at all (the loop checkpoints) */
  onNoWorkers?: () => void;
}

export class Scheduler implements StepHost {
  private links = new Map<string, WorkerSlot>();
  private wake: (() => void) | undefined;
  private nextTaskId = 1;
  private isStopped = false;
  /** per worker: bytes counted up to its last step */
  private byteMark = new Map<string, { sent: number; received: number }>();

  constructor(private readonly opts: SchedulerOptions) {}

  get shape(): ResultShape { return this.opts.shape; }
  get taskDeadlineMs(): number { return this.opts.taskDeadlineMs; }
  get noWorkerTimeoutMs(): number { return this.opts.noWorkerTimeoutMs; }
  get stopped(): boolean { return this.isStopped; }
  get size(): number { return this.links.size; }

  slots(): Iterable<WorkerSlot> { return this.links.values(); }
  newTaskId(): number { return this.nextTaskId++; }
  setWake(wake: (() => void) | undefined): void { this.wake = wake; }
  onReassigned(reason: ReassignReason): void { broadcast(this.opts.observers, 'onReassigned', { count: 1, reason }); }
  onNoWorkers(): void { this.opts.onNoWorkers?.(); }

  bytesSinceLastStep(slot: WorkerSlot): { sent: number; received: number } {
    const b = slot.link.bytes(), m = this.byteMark.get(slot.link.id) ?? { sent: 0, received: 0 };
    this.byteMark.set(slot.link.id, b);
    return { sent: b.sent - m.sent, received: b.received - m.received };
  }

  strike(slot: WorkerSlot, e: LinkError): void {
    broadcast(this.opts.observers, 'onRejected', { workerId: slot.link.id, reason: e.rejectReason ?? 'stale' });
    slot.strikes++;
    if (slot.strikes >= this.opts.maxStrikes && !slot.gone) {
      log.warn(`worker ${slot.link.id}: ${slot.strikes} rejected results, disconnecting`);
      slot.link.kick(`${slot.strikes} rejected results`);
      this.removeLink(slot.link.id);
    }
  }

  private countsChanged(): void {
    const c = transportCounts();
    for (const s of this.links.values()) c[s.link.transport]++;
    broadcast(this.opts.observers, 'onWorkers', c);
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
    while (this.links.size < n && !this.isStopped) {
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
    this.isStopped = true;
    this.wake?.();
  }

  /**
   * Compute the gradient sum of one step's batch: M = `shards` micro-shards, weights `version`.
   * Tasks are planned for the current worker count; results are validated for every transport.
   */
  runStep(step: number, version: number, batch: TokenBatch, shards: number, maxTokens: number): Promise<StepOutcome> {
    return new StepRun(this, step, version, batch, shards, maxTokens).run();
  }
}
