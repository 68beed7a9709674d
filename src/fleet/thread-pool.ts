/**
 * Local compute threads: N piscina threads, each with its own backend and model replica
 * (./worker/thread-worker.ts), reading the weights from one SharedArrayBuffer that the owner
 * publishes per step by bumping a version counter — no copy per step. The coordinator runs its
 * local workers on one (./coordinator/thread-link.ts); a remote worker computes on a pool of one
 * thread so its main thread stays free for heartbeats (./worker/remote-worker.ts).
 */
import { Piscina } from 'piscina';
import type { ReplicaSpec, TaskMsg, ThreadReply } from './contract.js';
import type { ThreadWorkerData } from './worker/thread-worker.js';

/** How much lower the compute threads' priority is than the main thread's (see ThreadPool). */
export const COMPUTE_NICE = 10;

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

export interface ThreadPoolOptions {
  /** a module exporting the replica factory (./worker/replica.ts); default: the real model */
  replicaModule?: string;
}

export class ThreadPool {
  private readonly pool: Piscina;

  constructor(readonly size: number, spec: ReplicaSpec, shared: SharedWeights, opts: ThreadPoolOptions = {}) {
    const workerData: ThreadWorkerData = { spec, weights: shared.weightsSab, control: shared.controlSab, replicaModule: opts.replicaModule };
    this.pool = new Piscina({
      // VILM_THREAD_ENTRY: the worker module of a bundled build (the sources need the tsx loader)
      // compiled (lib/, this file is .js): the worker module itself; from the sources: an entry that
      // registers the tsx loader first (a worker thread does not inherit it)
      filename: process.env.VILM_THREAD_ENTRY
        ?? new URL(import.meta.url.endsWith('.js') ? './worker/thread-worker.js' : './worker/thread-entry.mjs', import.meta.url).href,
      minThreads: size, maxThreads: size,
      // one task per thread at a time: the scheduler decides the assignment granularity
      concurrentTasksPerWorker: 1,
      idleTimeout: 2 ** 31 - 1,
      // idle threads would otherwise sit in Atomics.wait
      atomics: 'disabled',
      // Compute threads run at a lower priority (nice +10, through @napi-rs/nice; on Linux nice is
      // per thread) than the process's main thread, which answers /healthz and reads heartbeats:
      // with more busy threads than cores the main thread still gets a core at once. Measured by
      // scripts/soak-churn.ts (the /healthz rows).
      niceIncrement: COMPUTE_NICE,
      // Sticky placement: an idle thread with the lowest id gets the task. With more threads than
      // cores (the coordinator runs at most `cores` tasks at once) the same threads then do the
      // work step after step and keep their caches warm; the others are warm standbys that take
      // over when one dies. (Piscina's default picks any idle thread, which spread 8 threads'
      // tasks over all 8 wasm heaps: measured 8 threads at 0.75× of 2 on 2 cores.)
      loadBalancer: (_task, workers) => {
        let best: (typeof workers)[number] | null = null;
        for (const w of workers) if (w.currentUsage === 0 && (best === null || w.id < best.id)) best = w;
        return best;
      },
      workerData,
    });
    // threads that finished starting (piscina's workerCreate fires when a thread is ready)
    this.pool.on('workerCreate', (w: { id: number }) => { this.ready.add(w.id); });
    this.pool.on('workerDestroy', (w: { id: number }) => { this.ready.delete(w.id); });
    // every thread builds its replica while it starts (thread-worker.ts), in parallel; one warm-up
    // task per thread waits for them, so the first steps do not pay for it (tasks queue behind)
    this.warm = Promise.all(Array.from({ length: size }, () => this.pool.run({ warm: true }))).then(() => undefined, () => undefined);
  }

  /** Resolves when every thread has built its replica (or failed to: tasks will report it). */
  readonly warm: Promise<void>;

  /** Run one task on an idle thread; the task's token buffer is transferred (not copied). */
  run(task: TaskMsg): Promise<ThreadReply> {
    return this.pool.run(task, { transferList: [task.tokens.buffer as ArrayBuffer] }) as Promise<ThreadReply>;
  }

  /** Thread ids of the threads that finished starting. */
  private readonly ready = new Set<number>();

  /** How many threads have finished starting (replacements of killed ones count once started). */
  get readyThreads(): number { return this.ready.size; }

  /**
   * Test hook: terminate one started thread (as if it crashed); piscina starts a replacement.
   * Only a thread that finished starting: piscina stops replacing threads for good once one dies
   * during its start (its `workerFailsDuringBootstrap` rule), so a random kill of a starting
   * thread would shrink the pool rather than test a crash.
   */
  killOne(pick = 0): boolean {
    const live = this.pool.threads.filter((t) => this.ready.has(t.threadId));
    if (live.length === 0) return false;
    void live[pick % live.length].terminate();
    return true;
  }

  async close(): Promise<void> { await this.pool.destroy(); }
}
