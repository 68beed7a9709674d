/**
 * The scheduler: the set of connected workers across steps — joins and leaves, strikes and bans
 * against workers that send bad results (counted per worker identity, ./strikes.ts, so they
 * survive a reconnect), waiting for workers, stopping — and one StepRun (./step-run.ts) per step,
 * which hands out that step's tasks, checks and reduces the results.
 */
import { randomBytes } from 'node:crypto';
import { broadcast, transportCounts, type ReassignReason, type RejectReason, type TrainerObserver } from '../../events/index.js';
import type { TokenBatch } from '../../model/types.js';
import { log } from '../../util/log.js';
import { Rng } from '../../util/rng.js';
import type { ResultShape } from './result-check.js';
import { StepRun, type StepHost, type StepOutcome, type WorkerSlot } from './step-run.js';
import { DEFAULT_BAN_MS, StrikeBook } from './strikes.js';
import type { WorkerLink } from './worker-link.js';
import type { Layout } from '../../model/layout.js';
import { restSegments, type GradCodecName } from '../grad-codec.js';
import { nodeRule, type NodeRule } from '../reduce.js';

export interface SchedulerOptions {
  observers: readonly TrainerObserver[];
  /** what every result is checked against */
  shape: ResultShape;
  /** the run's gradient codec and the model layout it rounds by (../grad-codec.ts); default fp32 */
  codec?: { name: GradCodecName; layout: Layout };
  /** a task not answered within this many ms is also given to another worker */
  taskDeadlineMs: number;
  /** bad results (wrong shape or figures, stale, unassigned, NaN/Inf that a recomputation contradicts) before a worker is disconnected and banned */
  maxStrikes: number;
  /** how long a worker identity is refused after reaching maxStrikes (default 10 min) */
  banMs?: number;
  /**
   * Fraction P (0..1) of tasks also given to a second, different worker; the two results must be
   * the same bytes (./step-run.ts). Default 0. Never changes the run's bytes.
   */
  verifyFraction?: number;
  /** seed of the draw of verified tasks (default: random per process, so no worker can predict it) */
  verifySeed?: number;
  /** how long a step waits with no worker at all before failing (Infinity = forever) */
  noWorkerTimeoutMs: number;
  /** called when a step is left with no worker at all (the loop checkpoints) */
  onNoWorkers?: () => void;
  /** clock in ms for bans (tests) */
  now?: () => number;
}

/** A link's identity; a link that names none is its own (its id). */
function identityOf(link: WorkerLink): string {
  return link.identity || link.id;
}

export class Scheduler implements StepHost {
  private links = new Map<string, WorkerSlot>();
  private wake: (() => void) | undefined;
  private nextTaskId = 1;
  private isStopped = false;
  /** per worker: bytes counted up to its last step */
  private byteMark = new Map<string, { sent: number; received: number }>();
  private readonly book: StrikeBook;
  private readonly verifyFraction: number;
  private readonly verifyRng: Rng;
  private warnedCannotVerify = false;
  private nodeRuleOf: NodeRule | undefined;
  private segmentsOf: Int32Array | undefined;

  constructor(private readonly opts: SchedulerOptions) {
    const p = opts.verifyFraction ?? 0;
    if (!(p >= 0 && p <= 1)) throw new RangeError(`verifyFraction must be in [0, 1], got ${p}`);
    this.verifyFraction = p;
    this.verifyRng = new Rng(opts.verifySeed ?? randomBytes(4).readUInt32LE(0));
    this.book = new StrikeBook({ maxStrikes: opts.maxStrikes, banMs: opts.banMs ?? DEFAULT_BAN_MS, now: opts.now });
  }

  get shape(): ResultShape { return this.opts.shape; }
  get codec(): GradCodecName { return this.opts.codec?.name ?? 'fp32'; }
  /** how tree nodes are formed (the codec's rounding) */
  get rule(): NodeRule { return this.nodeRuleOf ??= this.opts.codec ? nodeRule(this.opts.codec.layout, this.opts.shape.d, this.opts.codec.name) : { d: this.opts.shape.d, round: null }; }
  /** the rest's tensor boundaries (decoding 16-bit results) */
  get segments(): Int32Array { return this.segmentsOf ??= this.opts.codec ? restSegments(this.opts.codec.layout) : Int32Array.of(0, this.opts.shape.restSize); }
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

  drawVerify(): boolean {
    const p = this.verifyFraction;
    return p > 0 && (p >= 1 || this.verifyRng.next() < p);
  }

  cannotVerify(): void {
    if (this.warnedCannotVerify) return;
    this.warnedCannotVerify = true;
    log.warn(`--verify-fraction ${this.verifyFraction}: only one worker, so its results cannot be compared with another's; tasks are not verified while it is alone`);
  }

  /**
   * Count a strike against `link`'s identity for a refused result (`reason`, reported to the
   * observers); `expel`: straight to maxStrikes. At maxStrikes every connection of that identity
   * is dropped and the identity is refused for banMs (see bannedFor). Also for links the
   * scheduler does not hold (yet, or any more): e.g. a WebSocket connection that sends a result
   * for a task it was never given.
   */
  strikeLink(link: WorkerLink, reason: RejectReason, expel = false): void {
    broadcast(this.opts.observers, 'onRejected', { workerId: link.id, reason });
    const identity = identityOf(link);
    const { strikes, banned } = this.book.strike(identity, expel);
    if (!banned) return;
    const why = expel ? `result contradicts the other workers (${reason})` : `${strikes} rejected results`;
    log.warn(`worker ${link.id}: ${why}; disconnecting it, its identity is refused for ${Math.round(this.book.banMs / 1000)} s`, { identity });
    let held = false;
    for (const s of [...this.links.values()]) {
      if (identityOf(s.link) !== identity) continue;
      held ||= s.link === link;
      s.link.kick(why);
      this.removeLink(s.link.id);
    }
    if (!held) link.kick(why);
  }

  /** ms for which `identity` is refused (0: not banned). Ask before accepting a connection. */
  bannedFor(identity: string): number {
    return this.book.bannedFor(identity);
  }

  /** Strikes `identity` holds now (tests, metrics). */
  strikesOf(identity: string): number {
    return this.book.strikesOf(identity);
  }

  /** Identities remembered by the strike table (bounded: ./strikes.ts). */
  get strikeRecords(): number { return this.book.size; }

  private countsChanged(): void {
    const c = transportCounts();
    for (const s of this.links.values()) c[s.link.transport]++;
    broadcast(this.opts.observers, 'onWorkers', c);
  }

  /** A worker joins; a banned identity is kicked instead (false). */
  addLink(link: WorkerLink): boolean {
    const banned = this.bannedFor(identityOf(link));
    if (banned > 0) {
      log.warn(`worker ${link.id}: refused, its identity is banned for ${Math.ceil(banned / 1000)} s more`, { identity: identityOf(link) });
      link.kick(`banned for ${Math.ceil(banned / 1000)} s after repeated rejected results`);
      return false;
    }
    this.links.set(link.id, { link, running: 0, gone: false });
    this.countsChanged();
    queueMicrotask(() => this.wake?.());
    return true;
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
