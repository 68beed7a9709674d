import type { WsServerTuning } from './ws-server.js';
/**
 * The coordinator's fleet: the scheduler plus whatever workers feed it — one in-process replica
 * (`vilm train`), N piscina threads sharing the weights through a SharedArrayBuffer, and remote
 * workers over WebSocket (src/dist/ws-server.ts). The training loop (src/train/loop.ts) owns the
 * weights array (`weights`, shared with the threads) and calls `publish(version)` after each
 * optimizer step.
 */
import type { BackendName } from '../backend/types.js';
import type { RunConfig } from '../config/index.js';
import type { TrainerObserver } from '../train/events.js';
import { log } from '../util/log.js';
import { Scheduler, type StepOutcome } from './scheduler.js';
import { InProcessLink, SharedWeights, ThreadPool } from './thread-pool.js';
import type { ReplicaSpec } from './task.js';
import type { TokenBatch } from '../model/types.js';
import type { LanguageModel } from '../model/api.js';
import { buildLayout } from '../model/layout.js';

export interface RemoteOptions {
  host: string;
  port: number;
  /** shared secret for the HMAC challenge–response; without it only 127.0.0.1 is allowed */
  token?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** heartbeat period/timeout and protocol-error limit (tests shorten them) */
  tuning?: Partial<WsServerTuning>;
}

export interface CoordinatorOptions {
  config: RunConfig;
  backend: BackendName;
  /** 'vilm' (the real model) or 'toy' (test double) */
  replica: ReplicaSpec['kind'];
  /** a replica in this thread (single-process `vilm train`) */
  inProcess: boolean;
  /** local worker threads */
  threads: number;
  remote?: RemoteOptions;
  observers: TrainerObserver[];
  /** per-task deadline before the task is also given to another worker */
  taskDeadlineMs?: number;
  /** how long to wait with no worker at all before giving up (default: forever) */
  noWorkerTimeoutMs?: number;
  maxStrikes?: number;
  /** called when the last worker leaves while a step is in progress */
  onNoWorkers?: () => void;
}

/** What a remote transport needs from the coordinator (implemented by Coordinator). */
export interface FleetView {
  readonly spec: ReplicaSpec;
  readonly config: RunConfig;
  readonly weights: Float32Array;
  readonly version: number;
  readonly scheduler: Scheduler;
}

export interface RemoteServer {
  /** the bound port (useful with port 0) */
  readonly port: number;
  /** tell connected workers the new weights */
  publish(version: number): void;
  /** say bye to every worker and stop listening */
  close(reason: string): Promise<void>;
}

export class Coordinator implements FleetView {
  readonly scheduler: Scheduler;
  readonly spec: ReplicaSpec;
  readonly shared: SharedWeights;
  threadPool: ThreadPool | undefined;
  inProcess: InProcessLink | undefined;
  remote: RemoteServer | undefined;

  private constructor(readonly config: RunConfig, spec: ReplicaSpec, shared: SharedWeights, scheduler: Scheduler) {
    this.spec = spec;
    this.shared = shared;
    this.scheduler = scheduler;
  }

  /** Start the fleet with `initial` weights published as `version`. */
  static async start(opts: CoordinatorOptions, initial: Float32Array, version: number): Promise<Coordinator> {
    const layout = buildLayout(opts.config.model);
    const spec: ReplicaSpec = { kind: opts.replica, model: opts.config.model, backend: opts.backend };
    const shared = new SharedWeights(layout.total, initial);
    shared.publish(version);
    const scheduler = new Scheduler({
      observers: opts.observers,
      vocab: opts.config.model.vocab_size,
      d: opts.config.model.d_model,
      restSize: layout.total - layout.embedding.size,
      taskDeadlineMs: opts.taskDeadlineMs ?? 300_000,
      noWorkerTimeoutMs: opts.noWorkerTimeoutMs ?? Infinity,
      maxStrikes: opts.maxStrikes ?? 3,
      onNoWorkers: opts.onNoWorkers,
    });
    const c = new Coordinator(opts.config, spec, shared, scheduler);
    if (opts.inProcess) {
      c.inProcess = await InProcessLink.create(spec, () => shared.weights);
      scheduler.addLink(c.inProcess);
    }
    if (opts.threads > 0) {
      c.threadPool = new ThreadPool(opts.threads, spec, shared);
      for (const l of c.threadPool.links) scheduler.addLink(l);
      await c.threadPool.warm;
      log.info('worker threads started', { threads: opts.threads });
    }
    if (opts.remote) {
      const { startWsServer } = await import('./ws-server.js');
      c.remote = await startWsServer(c, opts.remote, opts.observers, opts.remote.tuning);
    }
    return c;
  }

  /** Workers: every local thread (even those beyond the per-core task slots), in-process, remote. */
  get workerCount(): number {
    const extraThreads = this.threadPool ? this.threadPool.size - this.threadPool.links.length : 0;
    return this.scheduler.size + extraThreads;
  }

  /** Wait until `n` workers are there (see workerCount); false if stopped first. */
  waitForWorkers(n: number): Promise<boolean> {
    const extraThreads = this.threadPool ? this.threadPool.size - this.threadPool.links.length : 0;
    return this.scheduler.waitForWorkers(Math.max(0, n - extraThreads));
  }

  get weights(): Float32Array { return this.shared.weights; }
  get version(): number { return this.shared.version; }

  runStep(step: number, batch: TokenBatch, shards: number, maxTokens: number): Promise<StepOutcome> {
    return this.scheduler.runStep(step, this.version, batch, shards, maxTokens);
  }

  /** The weights were updated in place: make them version `version` for every worker. */
  publish(version: number): void {
    this.shared.publish(version);
    this.remote?.publish(version);
  }

  /** A model replica in this thread for evaluation (the in-process worker's when there is one). */
  private evalModel: Promise<LanguageModel> | undefined;
  async localModel(): Promise<LanguageModel> {
    if (this.inProcess) return this.inProcess.model;
    const { createReplica } = await import('./task.js');
    this.evalModel ??= createReplica(this.spec);
    return this.evalModel;
  }

  private closing: Promise<void> | undefined;
  /** Stop the scheduler, say bye to remote workers, stop the threads (idempotent). */
  close(reason: string): Promise<void> {
    this.closing ??= (async () => {
      this.scheduler.stop();
      await this.remote?.close(reason);
      await this.threadPool?.close();
      this.inProcess?.model.dispose();
      if (this.evalModel) (await this.evalModel).dispose();
    })();
    return this.closing;
  }
}
