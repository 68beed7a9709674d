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
      filename: process.env.VILM_THREAD_ENTRY ?? new URL('./worker/thread-entry.mjs', import.meta.url).href,
      minThreads: size, maxThreads: size,
      // one task per thread at a time: the scheduler decides the assignment granularity
      concurrentTasksPerWorker: 1,
      idleTimeout: 2 ** 31 - 1,
      // idle threads would otherwise sit in Atomics.wait
      atomics: 'disabled',
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
    // build every thread's replica now, in parallel (one warm-up task per idle thread), so the
    // first steps do not pay for it; tasks queue behind these in piscina
    this.warm = Promise.all(Array.from({ length: size }, () => this.pool.run({ warm: true }))).then(() => undefined, () => undefined);
  }

  /** Resolves when every thread has built its replica (or failed to: tasks will report it). */
  readonly warm: Promise<void>;

  /** Run one task on an idle thread; the task's token buffer is transferred (not copied). */
  run(task: TaskMsg): Promise<ThreadReply> {
    return this.pool.run(task, { transferList: [task.tokens.buffer as ArrayBuffer] }) as Promise<ThreadReply>;
  }

  /** Test hook: terminate one live thread (as if it crashed). Piscina starts a replacement. */
  killOne(): boolean {
    const t = this.pool.threads[0];
    if (!t) return false;
    void t.terminate();
    return true;
  }

  async close(): Promise<void> { await this.pool.destroy(); }
}
