/**
 * Local workers: N piscina threads, each with its own backend and model replica, reading the
 * coordinator's weights from one SharedArrayBuffer (published per step by bumping a version
 * counter — no copy per step), and the in-process worker used by `vilm train`.
 */
import { Piscina } from 'piscina';
import { availableParallelism } from 'node:os';
import { log } from '../util/log.js';
import type { LanguageModel } from '../model/api.js';
import { LinkError, type WorkerLink } from './scheduler.js';
import { computeTask, createReplica, type ReplicaSpec, type ResultMsg, type TaskMsg } from './task.js';
import type { ThreadReply, ThreadWorkerData } from './thread-worker.js';

/** Weights shared with the thread workers: `weights` is what the optimizer updates in place. */
export class SharedWeights {
  readonly weightsSab: SharedArrayBuffer;
  readonly controlSab: SharedArrayBuffer;
  readonly weights: Float32Array;
  private readonly control: Int32Array;

  constructor(total: number, initial?: Float32Array) {
    this.weightsSab = new SharedArrayBuffer(total * 4);
    this.controlSab = new SharedArrayBuffer(4);
    this.weights = new Float32Array(this.weightsSab);
    this.control = new Int32Array(this.controlSab);
    if (initial) this.weights.set(initial);
  }

  /** Make `version` the current weights version (after the optimizer wrote the weights). */
  publish(version: number): void { Atomics.store(this.control, 0, version); }
  get version(): number { return Atomics.load(this.control, 0); }
}

export class ThreadPool {
  readonly pool: Piscina;
  readonly links: WorkerLink[] = [];

  constructor(readonly size: number, spec: ReplicaSpec, shared: SharedWeights) {
    const workerData: ThreadWorkerData = { spec, weights: shared.weightsSab, control: shared.controlSab };
    this.pool = new Piscina({
      // VILM_THREAD_ENTRY: the worker module of a bundled build (the sources need the tsx loader)
      filename: process.env.VILM_THREAD_ENTRY ?? new URL('./thread-entry.mjs', import.meta.url).href,
      minThreads: size, maxThreads: size,
      // one task per thread at a time: the scheduler decides the assignment granularity
      concurrentTasksPerWorker: 1,
      idleTimeout: 2 ** 31 - 1,
      // idle threads would otherwise sit in Atomics.wait
      atomics: 'disabled',
      // Sticky placement: an idle thread with the lowest id gets the task. With more threads than
      // cores (see `slots` below) the same `cores` threads then do the work step after step and
      // keep their caches warm; the others are warm standbys that take over when one dies.
      // (Piscina's default picks any idle thread, which spread 8 threads' tasks over all 8 wasm
      // heaps: measured 8 threads at 0.75× of 2 on 2 cores.)
      loadBalancer: (_task, workers) => {
        let best: (typeof workers)[number] | null = null;
        for (const w of workers) if (w.currentUsage === 0 && (best === null || w.id < best.id)) best = w;
        return best;
      },
      workerData,
    });
    // More tasks at once than cores only time-slice the cores (and thrash their caches): N threads
    // hold N replicas, but at most `cores` of them compute at the same time. Piscina hands each
    // task to an idle thread.
    const slots = Math.min(size, Math.max(1, availableParallelism()));
    if (slots < size) log.info(`${size} worker threads on ${slots} cores: at most ${slots} tasks run at once`);
    for (let i = 0; i < slots; i++) this.links.push(new ThreadLink(`thread-${i}`, this.pool));
    // build every thread's replica now, in parallel (one warm-up task per idle thread), so the
    // first steps do not pay for it; tasks queue behind these in piscina
    this.warm = Promise.all(Array.from({ length: size }, () => this.pool.run({ warm: true }))).then(() => undefined, () => undefined);
  }

  /** Resolves when every thread has built its replica (or failed to: tasks will report it). */
  readonly warm: Promise<void>;

  /** Test hook: terminate one live thread (as if it crashed). Piscina starts a replacement. */
  killOne(): boolean {
    const t = this.pool.threads[0];
    if (!t) return false;
    void t.terminate();
    return true;
  }

  async close(): Promise<void> { await this.pool.destroy(); }
}

/**
 * One slot of the pool. Piscina picks the thread; with as many slots as threads and one task per
 * slot at a time, every running task has a thread of its own.
 */
class ThreadLink implements WorkerLink {
  readonly transport = 'thread' as const;
  constructor(readonly id: string, private readonly pool: Piscina) {}
  async run(task: TaskMsg): Promise<ResultMsg> {
    let reply: ThreadReply;
    try {
      reply = await this.pool.run(task, { transferList: [task.tokens.buffer as ArrayBuffer] }) as ThreadReply;
    } catch (e) {
      throw new LinkError('died', `thread failed: ${(e as Error).message}`);
    }
    if (reply.stale) throw new LinkError('stale', `thread saw weights version ${reply.version}, task needs ${task.version}`, 'stale');
    return reply.result;
  }
  bytes() { return { sent: 0, received: 0 }; }
  kick(): void { /* threads are not kicked; a crash is handled by piscina */ }
}

/** The single-process worker: the model replica runs in the caller's thread. */
export class InProcessLink implements WorkerLink {
  readonly id = 'inprocess';
  readonly transport = 'inprocess' as const;
  private constructor(readonly model: LanguageModel, private readonly weights: () => Float32Array) {}
  static async create(spec: ReplicaSpec, weights: () => Float32Array): Promise<InProcessLink> {
    return new InProcessLink(await createReplica(spec), weights);
  }
  async run(task: TaskMsg): Promise<ResultMsg> {
    // let timers/sockets run between tasks
    await new Promise<void>((r) => setImmediate(r));
    return computeTask(this.model, this.weights(), task);
  }
  bytes() { return { sent: 0, received: 0 }; }
  kick(): void { /* never */ }
}
