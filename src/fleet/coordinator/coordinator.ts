/**
 * The coordinator's fleet: the scheduler plus whatever workers feed it — one in-process replica
 * (`vilm train`), N piscina threads sharing the weights through a SharedArrayBuffer, and remote
 * workers over WebSocket (./ws-server.ts). The training loop (src/train/loop.ts) owns the
 * weights array (`weights`, shared with the threads) and calls `publish(version)` after each
 * optimizer step.
 */
import type { BackendName } from '../../backend/types.js';
import type { ModelConfig } from '../../config/index.js';
import type { TrainerObserver } from '../../events/index.js';
import type { LanguageModel } from '../../model/api.js';
import { buildLayout } from '../../model/layout.js';
import type { TokenBatch } from '../../model/types.js';
import { log } from '../../util/log.js';
import type { ReplicaSpec } from '../contract.js';
import type { GradCodecName } from '../grad-codec.js';
import { SharedWeights, ThreadPool } from '../thread-pool.js';
import { loadReplicaModule, type ReplicaModule } from '../worker/replica.js';
import { InProcessLink } from './in-process-link.js';
import { Scheduler } from './scheduler.js';
import type { StepOutcome } from './step-run.js';
import { threadLinks } from './thread-link.js';
import type { RemoteOptions, RemoteServer } from './ws-server.js';

export interface CoordinatorOptions {
  model: ModelConfig;
  backend: BackendName;
  /**
   * The replica module every local replica is built with (src/fleet/worker/replica.ts); default:
   * the real model. Tests name their pure-JS toy model here. Never sent to remote workers.
   */
  replicaModule?: string;
  /** a replica in this thread (single-process `vilm train`) */
  inProcess: boolean;
  /** local worker threads */
  threads: number;
  /** `train.grad_codec` (default fp32): part of the run's math, see ../grad-codec.ts */
  gradCodec?: GradCodecName;
  remote?: RemoteOptions;
  observers: TrainerObserver[];
  /** per-task deadline before the task is also given to another worker */
  taskDeadlineMs?: number;
  /** how long to wait with no worker at all before giving up (default: forever) */
  noWorkerTimeoutMs?: number;
  maxStrikes?: number;
  /** how long a worker identity is refused after maxStrikes (default 10 min) */
  banMs?: number;
  /** fraction of tasks also computed by a second worker and compared byte for byte (default 0) */
  verifyFraction?: number;
  /** seed of the draw of verified tasks (default: random) */
  verifySeed?: number;
  /** called when the last worker leaves while a step is in progress */
  onNoWorkers?: () => void;
}

export class Coordinator {
  threadPool: ThreadPool | undefined;
  inProcess: InProcessLink | undefined;
  remote: RemoteServer | undefined;
  /** threads beyond the per-core task slots: warm standbys, counted as workers */
  private standbyThreads = 0;

  private constructor(
    readonly spec: ReplicaSpec,
    readonly shared: SharedWeights,
    readonly scheduler: Scheduler,
    private readonly replicas: ReplicaModule,
  ) {}

  /** Start the fleet with `initial` weights published as `version`. */
  static async start(opts: CoordinatorOptions, initial: Float32Array, version: number): Promise<Coordinator> {
    const layout = buildLayout(opts.model);
    const spec: ReplicaSpec = { model: opts.model, backend: opts.backend };
    const shared = new SharedWeights(layout.total, initial);
    shared.publish(version);
    const scheduler = new Scheduler({
      observers: opts.observers,
      shape: { vocab: opts.model.vocab_size, d: opts.model.d_model, restSize: layout.total - layout.embedding.size },
      codec: { name: opts.gradCodec ?? 'fp32', layout },
      taskDeadlineMs: opts.taskDeadlineMs ?? 300_000,
      noWorkerTimeoutMs: opts.noWorkerTimeoutMs ?? Infinity,
      maxStrikes: opts.maxStrikes ?? 3,
      banMs: opts.banMs,
      verifyFraction: opts.verifyFraction,
      verifySeed: opts.verifySeed,
      onNoWorkers: opts.onNoWorkers,
    });
    const c = new Coordinator(spec, shared, scheduler, await loadReplicaModule(opts.replicaModule));
    if (opts.inProcess) {
      c.inProcess = new InProcessLink(await c.replicas.createReplica(spec), () => shared.weights);
      scheduler.addLink(c.inProcess);
    }
    if (opts.threads > 0) {
      c.threadPool = new ThreadPool(opts.threads, spec, shared, { replicaModule: opts.replicaModule });
      const links = threadLinks(c.threadPool);
      for (const l of links) scheduler.addLink(l);
      c.standbyThreads = opts.threads - links.length;
      await c.threadPool.warm;
      log.info('worker threads started', { threads: opts.threads });
    }
    if (opts.remote) {
      const { startWsServer } = await import('./ws-server.js');
      c.remote = await startWsServer(c, opts.remote, opts.observers);
    }
    return c;
  }

  /** Workers: every local thread (even those beyond the per-core task slots), in-process, remote. */
  get workerCount(): number {
    return this.scheduler.size + this.standbyThreads;
  }

  /** Wait until `n` workers are there (see workerCount); false if stopped first. */
  waitForWorkers(n: number): Promise<boolean> {
    return this.scheduler.waitForWorkers(Math.max(0, n - this.standbyThreads));
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

  /** Prepare this thread's backend for evaluation; the name of the backend in use. */
  initLocalBackend(): Promise<string> {
    return this.replicas.initReplicaBackend(this.spec);
  }

  /** A model replica in this thread for evaluation (the in-process worker's when there is one). */
  private evalModel: Promise<LanguageModel> | undefined;
  async localModel(): Promise<LanguageModel> {
    if (this.inProcess) return this.inProcess.model;
    this.evalModel ??= this.replicas.createReplica(this.spec);
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
