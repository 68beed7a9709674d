/**
 * One step's run: hand the step's tasks (aligned blocks of micro-shards, ../shard-tree.ts) to
 * whichever worker is free — workers PULL work, so a fast worker does more — check and collect the
 * results, and requeue a task whose worker died, disconnected, missed the deadline or sent a bad
 * result (split into its two halves so the remaining workers share it). The results are reduced as
 * they arrive with the fixed tree (../reduce.ts), so the bytes depend on none of this.
 *
 * Results are checked (./result-check.ts) against what the coordinator knows of the task. A HARD
 * refusal (stale, wrong shape, token count or emptiness not the task's) is a strike and the task
 * is requeued. A SOFT one (non-finite, implausibly large) may be the model itself: the block goes
 * into a BALLOT, as does a block drawn for verification (`--verify-fraction`, given to a second
 * worker from the start). A ballot collects computations of the same block from different workers
 * and compares their bytes (exact results make this tolerance-free):
 *
 *   - the same bytes from two different workers: the majority. Plausible → accepted; non-finite or
 *     implausible → the model diverged: the step fails with a DivergedError, nobody is blamed.
 *   - only one worker in the fleet: it recomputes the block (a recheck); the same bytes twice
 *     decide in the same way (the computation is deterministic).
 *   - one plausible answer against only suspect ones: the plausible one is accepted.
 *   - else another worker (one that has not voted) computes it too.
 *
 * A worker whose bytes differ from the decision is struck: a suspect result once, a plausible but
 * different result — a liar, or broken hardware — is removed and its identity banned. Two workers
 * that disagree with no third to decide: a local worker (in-process, thread) is trusted over a
 * remote one; two remote ones are both struck once and the block is computed afresh (a liar in a
 * two-worker fleet costs the honest worker too — it cannot be told apart). Verification with a
 * single worker is impossible (warned once, results accepted as they come).
 *
 * The scheduler (./scheduler.ts) owns the workers across steps; a StepRun lives for one step.
 */
import type { ReassignReason, RejectReason, Transport } from '../../events/index.js';
import type { TokenBatch } from '../../model/types.js';
import { DivergedError } from '../../util/errors.js';
import { log } from '../../util/log.js';
import type { ResultMsg, TaskMsg } from '../contract.js';
import { TreeAccumulator, resultToGradSum, type GradSum, type NodeRule } from '../reduce.js';
import type { GradCodecName } from '../grad-codec.js';
import { blockKey, blockRows, blockShardCount, children, planBlocks, type Block } from '../shard-tree.js';
import { checkResult, isSoft, resultDigest, taskFacts, type ResultShape, type SoftReason, type TaskFacts } from './result-check.js';
import { LinkError, type WorkerLink } from './worker-link.js';

/** What a step needs from the scheduler that owns the workers. */
export interface StepHost {
  readonly shape: ResultShape;
  /** the run's gradient codec (sent with every task) and how tree nodes are formed under it */
  readonly codec: GradCodecName;
  readonly rule: NodeRule;
  /** a task not answered within this many ms is also given to another worker */
  readonly taskDeadlineMs: number;
  /** how long a step waits with no worker at all before failing (Infinity = forever) */
  readonly noWorkerTimeoutMs: number;
  readonly stopped: boolean;
  /** the connected workers, in join order */
  slots(): Iterable<WorkerSlot>;
  readonly size: number;
  newTaskId(): number;
  /**
   * A result was refused: count a strike against the worker's identity (it may be dropped and
   * banned); `expel`: drop and ban it at once.
   */
  strikeLink(link: WorkerLink, reason: RejectReason, expel?: boolean): void;
  onReassigned(reason: ReassignReason): void;
  /** the step is left with no worker at all (the loop checkpoints) */
  onNoWorkers(): void;
  /** bytes since this worker's last counted step */
  bytesSinceLastStep(slot: WorkerSlot): { sent: number; received: number };
  /** install (or clear) the wake-up the scheduler calls when workers come or go */
  setWake(wake: (() => void) | undefined): void;
  /** draw whether a fresh task is also given to a second worker (--verify-fraction) */
  drawVerify(): boolean;
  /** a task drawn for verification found no second worker (the scheduler warns once) */
  cannotVerify(): void;
}

/** A worker as the scheduler tracks it. */
export interface WorkerSlot {
  link: WorkerLink;
  /** its tasks in flight (at most link.depth) */
  running: number;
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

/** Computations of one ballot before it is given up as unresolvable. */
const MAX_VOTES = 5;

/** One computation of a ballot's block. */
interface Vote {
  link: WorkerLink;
  digest: string;
  /** null: the result passed every check; else why it is suspect */
  verdict: SoftReason | null;
  result: ResultMsg;
}

/** Several computations of one block, compared byte for byte (see the file comment). */
class Ballot {
  readonly votes: Vote[] = [];
  decided = false;
  constructor(readonly block: Block, readonly kind: 'verify' | 'suspect') {}
  identities(): Set<string> { return new Set(this.votes.map((v) => v.link.identity)); }
}

/** A block waiting for a worker; with `ballot`, one more computation for that ballot. */
interface QueueItem {
  block: Block;
  ballot?: Ballot;
  /** a ballot's computation that may go to a worker that already voted (no other one is there) */
  anyone?: boolean;
}

interface InFlight {
  block: Block;
  slot: WorkerSlot;
  timer: NodeJS.Timeout | undefined;
  ballot: Ballot | undefined;
}

/**
 * The decision of a ballot (see the file comment), or null when more computations are needed.
 * Returns the votes that agree with the decision (all with the same bytes).
 */
export function decideBallot<V extends { link: { identity: string }; digest: string; verdict: string | null }>(votes: readonly V[]): V[] | null {
  const groups = new Map<string, V[]>();
  for (const v of votes) {
    const g = groups.get(v.digest);
    if (g) g.push(v); else groups.set(v.digest, [v]);
  }
  const ids = (g: readonly V[]) => new Set(g.map((v) => v.link.identity)).size;
  // a majority: the same bytes from two (or more) different workers
  let best: V[] | null = null;
  for (const g of groups.values()) if (ids(g) >= 2 && (best === null || ids(g) > ids(best))) best = g;
  if (best) return best;
  // a single worker (nobody else to ask) that gave the same bytes twice: its computation is deterministic
  if (ids(votes) === 1) for (const g of groups.values()) if (g.length >= 2) return g;
  // exactly one plausible answer, contradicted only by suspect ones
  const plausible = [...groups.values()].filter((g) => g[0].verdict === null);
  if (plausible.length === 1 && votes.some((v) => v.verdict !== null)) return plausible[0];
  return null;
}

export class StepRun {
  private readonly queue: QueueItem[];
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
    this.queue = planBlocks(shards, Math.max(1, host.size)).map((block) => ({ block }));
    this.tree = new TreeAccumulator(shards, host.rule);
  }

  /** Run the step to its end: the batch's gradient sum, or NoWorkersError / DivergedError / a failure. */
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

  /** The task of a block, and the figures its result must have (counted here, before the task's tokens may be transferred). */
  private makeTask(block: Block): { task: TaskMsg; facts: TaskFacts } {
    const { batch, shards } = this;
    const [r0, r1] = blockRows(block, batch.rows, shards);
    const tokens = batch.tokens.slice(r0 * batch.seqLen, r1 * batch.seqLen);
    return {
      task: {
        step: this.step, version: this.version, taskId: this.host.newTaskId(), level: block.level, index: block.index, shards,
        batchRows: batch.rows, seqLen: batch.seqLen, rowStart: r0, tokens, maxTokens: this.maxTokens, codec: this.host.codec,
      },
      facts: taskFacts(tokens, r1 - r0, batch.seqLen),
    };
  }

  /** Count a reassignment; false (and the step failed) when tasks keep failing. */
  private countReassign(reason: ReassignReason, why: string): boolean {
    // a task that fails everywhere (a bug or bad input, not a flaky worker) must not loop forever
    if (this.reassigned >= 4 * this.shards + 8) {
      this.fail(new Error(`step ${this.step + 1}: tasks keep failing (${this.reassigned} reassignments); last: ${why}`));
      return false;
    }
    this.reassigned++;
    this.host.onReassigned(reason);
    return true;
  }

  private requeue(block: Block, reason: ReassignReason, why: string): void {
    if (this.tree.covers(block)) return;
    if (!this.countReassign(reason, why)) return;
    const parts = children(block, this.shards);
    // split so the remaining workers share the lost work; a shard is the smallest unit
    if (parts.length > 0) this.queue.unshift(...parts.map((b) => ({ block: b }))); else this.queue.unshift({ block });
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

  private statsOf(link: WorkerLink): WorkerStepStats {
    let s = this.stats.get(link.id);
    if (!s) {
      s = { id: link.id, transport: link.transport, microShards: 0, computeSeconds: 0, bytesSent: 0, bytesReceived: 0 };
      this.stats.set(link.id, s);
    }
    return s;
  }

  /** `r` is the block's sum: into the tree; every worker that computed these bytes gets the credit. */
  private accept(block: Block, r: ResultMsg, by: readonly WorkerLink[]): void {
    this.tree.add(block, resultToGradSum(r));
    this.lastResult = performance.now();
    // the first worker to run out of work (nothing queued, nothing in its hands): from here on
    // the step waits for stragglers
    if (this.firstIdle === undefined && this.queue.length === 0 && [...this.host.slots()].some((s) => !s.gone && s.running === 0)) this.firstIdle = this.lastResult;
    for (const link of new Set(by)) this.statsOf(link).microShards += blockShardCount(block, this.shards);
  }

  // --- ballots

  /** Whether a computation for `b` is queued or running. */
  private hasCopy(b: Ballot): boolean {
    return this.queue.some((i) => i.ballot === b) || [...this.inflight.values()].some((f) => f.ballot === b);
  }

  private dropQueued(b: Ballot): void {
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i].ballot === b) this.queue.splice(i, 1);
  }

  /** Identities that must not compute `b` again: its voters and those computing it now. */
  private excluded(b: Ballot): Set<string> {
    const s = b.identities();
    for (const f of this.inflight.values()) if (f.ballot === b) s.add(f.slot.link.identity);
    return s;
  }

  /** After a vote or a lost computation: decide, or make sure one more computation is on its way. */
  private settle(b: Ballot, reason: ReassignReason = 'rejected'): void {
    if (b.decided || this.finished) return;
    if (this.tree.covers(b.block)) { b.decided = true; this.dropQueued(b); return; }
    const agree = decideBallot(b.votes);
    if (agree) { this.conclude(b, agree); return; }
    if (b.votes.length >= MAX_VOTES) { this.unresolved(b); return; }
    if (!this.hasCopy(b) && this.countReassign(reason, `block ${blockKey(b.block)} needs another computation`)) {
      this.queue.unshift({ block: b.block, ballot: b });
    }
  }

  /** `agree` is the decision: strike those who differ; accept it, or fail the step as diverged. */
  private conclude(b: Ballot, agree: readonly Vote[]): void {
    b.decided = true;
    this.dropQueued(b);
    const w = agree[0];
    const struck = new Set<string>();
    for (const v of b.votes) {
      if (v.digest === w.digest || struck.has(v.link.identity)) continue;
      struck.add(v.link.identity);
      if (v.verdict === null) {
        // a plausible gradient that is not the block's: deliberate, or broken hardware
        log.warn(`worker ${v.link.id}: its result for step ${this.step + 1} contradicts ${new Set(agree.map((a) => a.link.identity)).size} other worker(s); removing it`, { identity: v.link.identity });
        this.host.strikeLink(v.link, 'disagree', true);
      } else {
        this.host.strikeLink(v.link, v.verdict);
      }
    }
    if (w.verdict !== null) {
      // confirmed by a recomputation: the model, not a worker
      this.fail(new DivergedError(w.verdict === 'nonfinite' ? 'non-finite loss/gradient' : 'implausibly large loss/gradient'));
      return;
    }
    this.accept(b.block, w.result, agree.map((v) => v.link));
  }

  /**
   * No majority is possible. The coordinator's own workers (in-process, threads: its code, its
   * machine) are trusted over remote ones: plausible local results that agree decide. Else strike
   * every voter once and compute the block afresh.
   */
  private unresolved(b: Ballot): void {
    const local = b.votes.filter((v) => v.link.transport !== 'ws');
    if (local.length > 0 && local.length < b.votes.length && local[0].verdict === null && local.every((v) => v.digest === local[0].digest)) {
      this.conclude(b, local);
      return;
    }
    b.decided = true;
    this.dropQueued(b);
    const voters = new Map(b.votes.map((v) => [v.link.identity, v.link]));
    log.warn(`step ${this.step + 1}: ${voters.size} worker(s) gave ${new Set(b.votes.map((v) => v.digest)).size} different results for one block and no other worker can decide; each is struck and the block computed again`, { workers: [...voters.values()].map((l) => l.id).join(',') });
    for (const link of voters.values()) this.host.strikeLink(link, 'disagree');
    if (!this.tree.covers(b.block) && this.countReassign('rejected', 'workers disagree')) this.queue.unshift({ block: b.block });
  }

  /**
   * Ballot computations that no connected worker may take (every one has voted or is computing
   * it) and nothing is running for: with one worker, let it recheck (or accept an unverifiable
   * result); with several that disagree, give up on the ballot.
   */
  private unstick(): void {
    if (this.host.size === 0) return; // everybody left: wait for workers, decide nothing
    const slots = [...this.host.slots()].filter((s) => !s.gone);
    for (const item of [...this.queue]) {
      const b = item.ballot;
      if (!b || item.anyone || b.decided) continue;
      const ex = this.excluded(b);
      if (slots.some((s) => !ex.has(s.link.identity))) continue;
      if ([...this.inflight.values()].some((f) => f.ballot === b)) continue;
      if (b.votes.length === 0) {
        // its computations were all lost: an ordinary task again
        b.decided = true;
        this.dropQueued(b);
        this.queue.unshift({ block: b.block });
      } else if (b.identities().size === 1) {
        if (b.kind === 'verify' && b.votes.length === 1 && b.votes[0].verdict === null) {
          this.host.cannotVerify();
          this.conclude(b, b.votes);
        } else {
          item.anyone = true;
        }
      } else {
        this.unresolved(b);
      }
    }
  }

  // --- results

  private onResult(f: InFlight, task: TaskMsg, facts: TaskFacts, r: ResultMsg): void {
    const { slot, block, ballot } = f;
    const bad = checkResult(r, task, facts, this.host.shape);
    if (bad !== null && !isSoft(bad)) {
      // the coordinator can tell on its own: a strike, the task elsewhere
      if (ballot) this.settle(ballot);
      else this.requeue(block, 'rejected', `bad result: ${bad}`);
      this.host.strikeLink(slot.link, bad);
      return;
    }
    this.statsOf(slot.link).computeSeconds += r.computeSeconds;
    if (!ballot && bad === null) { this.accept(block, r, [slot.link]); return; }
    if (this.tree.covers(block)) return;
    const b = ballot ?? new Ballot(block, 'suspect');
    if (b.decided) return;
    b.votes.push({ link: slot.link, digest: resultDigest(r), verdict: bad, result: r });
    this.settle(b);
  }

  private onFailure(f: InFlight, err: unknown): void {
    const { slot, block, ballot } = f;
    const e = err instanceof LinkError ? err : new LinkError('died', String((err as Error)?.message ?? err));
    const reason: ReassignReason = e.reason === 'stale' ? 'rejected' : e.reason;
    if (ballot) this.settle(ballot, reason);
    else this.requeue(block, reason, e.message);
    if (this.finished) return;
    if (e.rejectReason || e.reason === 'stale') this.host.strikeLink(slot.link, e.rejectReason ?? 'stale');
    else log.warn(`worker ${slot.link.id}: task failed (${e.reason}): ${e.message}`);
  }

  private dispatch(slot: WorkerSlot, item: QueueItem): void {
    const { block } = item;
    const { task, facts } = this.makeTask(block);
    let ballot = item.ballot;
    if (!ballot && this.host.drawVerify()) {
      // verification: a second, different worker computes the same block; both must agree
      if (new Set([...this.host.slots()].filter((s) => !s.gone).map((s) => s.link.identity)).size >= 2) {
        ballot = new Ballot(block, 'verify');
        this.queue.unshift({ block, ballot });
      } else {
        this.host.cannotVerify();
      }
    }
    slot.running++;
    this.statsOf(slot.link);
    const entry: InFlight = { block, slot, timer: undefined, ballot };
    // a task queued behind others on its worker starts when they end: its deadline is that much later
    const deadline = this.host.taskDeadlineMs * slot.running;
    if (Number.isFinite(deadline)) {
      entry.timer = setTimeout(() => {
        if (this.finished) return;
        log.warn(`worker ${slot.link.id}: task ${task.taskId} missed the ${deadline} ms deadline, reassigning`);
        if (!entry.ballot) this.requeue(block, 'deadline', 'deadline');
        else if (!entry.ballot.decided && !this.queue.some((i) => i.ballot === entry.ballot) && this.countReassign('deadline', 'deadline')) {
          this.queue.unshift({ block, ballot: entry.ballot });
        }
        this.pump();
      }, deadline);
    }
    this.inflight.set(task.taskId, entry);
    slot.link.run(task).then((r) => {
      if (entry.timer) clearTimeout(entry.timer);
      this.inflight.delete(task.taskId);
      slot.running--;
      if (this.finished) return;
      this.onResult(entry, task, facts, r);
      this.pump();
    }, (err: unknown) => {
      if (entry.timer) clearTimeout(entry.timer);
      this.inflight.delete(task.taskId);
      slot.running--;
      if (this.finished) return;
      this.onFailure(entry, err);
      this.pump();
    });
  }

  private eligible(item: QueueItem, slot: WorkerSlot): boolean {
    return !item.ballot || item.anyone === true || !this.excluded(item.ballot).has(slot.link.identity);
  }

  private pump(): void {
    if (this.finished) return;
    if (this.tree.complete) { this.finish(); return; }
    const queue = this.queue;
    // drop queued blocks already covered (a late result may have covered them)
    for (let i = queue.length - 1; i >= 0; i--) if (this.tree.covers(queue[i].block)) queue.splice(i, 1);
    this.unstick();
    if (this.finished) return;
    if (this.tree.complete) { this.finish(); return; }
    // a task to every idle worker first; then, while tasks are left, the next one to each worker
    // that may hold more (link.depth): the work is spread before anyone gets a second task
    const maxDepth = Math.max(1, ...[...this.host.slots()].map((s) => s.link.depth ?? 1));
    for (let held = 0; held < maxDepth && queue.length > 0; held++) {
      for (const slot of this.host.slots()) {
        if (queue.length === 0) break;
        if (slot.gone || slot.running !== held || held >= (slot.link.depth ?? 1)) continue;
        const i = queue.findIndex((item) => this.eligible(item, slot));
        if (i < 0) continue;
        const [item] = queue.splice(i, 1);
        this.dispatch(slot, item);
      }
    }
    // blocks lost with a worker that left without an answer are requeued by its run() rejecting;
    // an expired task still running keeps its worker busy; if nothing is in flight or queued
    // for an uncovered block, requeue it.
    if (queue.length === 0 && this.inflight.size === 0 && !this.tree.complete) {
      for (const b of planBlocks(this.shards, 1)) this.requeue(b, 'died', 'lost');
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
