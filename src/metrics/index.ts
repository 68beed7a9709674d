import { readFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import {
  REASSIGN_REASONS, REJECT_REASONS, TRANSPORTS, type StartEvent, type StepEvent, type StepTiming, type TrainerObserver, type WorkerResultEvent,
} from '../events/index.js';

/**
 * Prometheus metrics for the coordinator (prom-client).
 *
 * Naming follows the Prometheus conventions: one prefix (`vilm_`), base units (seconds, bytes),
 * `_total` on counters, histograms for durations. Throughput is NOT exported as a gauge: it is
 * derived in PromQL, e.g. `rate(vilm_tokens_total[1m])` gives tokens/s. The standard Node.js
 * process metrics (prom-client's defaults) keep their usual names, WITHOUT the prefix
 * (`process_cpu_seconds_total`, `nodejs_eventloop_lag_seconds`, …), so the stock Node.js
 * dashboards and alerts find them.
 *
 * Every trainer event (see src/events) updates the metrics through `metrics.observer`. The HTTP
 * server is ./server.ts; the coordinator's metrics in one call, ./coordinator.ts; a remote
 * worker's own metrics, ./worker.ts.
 */
export const METRIC_PREFIX = 'vilm_';

/**
 * The parts of one step, as the `part` label of `vilm_step_part_duration_seconds`. They are
 * disjoint and cover the step, so `sum without (part) (…_sum)` equals `vilm_step_duration_seconds_sum`:
 * `compute` is the event's compute time LESS the time spent waiting for stragglers (which the
 * event's `compute` includes), and `other` is the rest of the step (drawing the batch, handing out
 * the tasks, bookkeeping).
 */
export const STEP_PARTS = ['compute', 'wait_stragglers', 'reduce', 'optimizer', 'publish', 'other'] as const;
export type StepPart = (typeof STEP_PARTS)[number];

/** The disjoint parts (seconds) of one step's timing; they sum to `t.total`. */
export function stepParts(t: StepTiming): Record<StepPart, number> {
  const wait = Math.max(0, Math.min(t.waitStragglers, t.compute));
  const known = t.compute + t.reduce + t.optimizer + t.publish;
  return {
    compute: t.compute - wait, wait_stragglers: wait, reduce: t.reduce, optimizer: t.optimizer, publish: t.publish,
    other: Math.max(0, t.total - known),
  };
}

/** Steps the ETA's mean step time is taken over (wall-clock, evaluations and checkpoints included). */
export const ETA_WINDOW = 20;

/** Label value that per-worker series beyond the cap are folded into. */
export const OTHER_WORKER = 'other';

/** Step / phase durations: a few ms (tiny configs on threads) up to minutes (big batches on slow remotes). */
const STEP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const CHECKPOINT_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30];

export interface MetricsOptions {
  /** Most distinct worker ids kept as label values; later ids share the label `other`. Default 32. */
  maxWorkerLabels?: number;
  /** Numeric backend name for `vilm_build_info` (e.g. 'wasm', 'tensorflow'). Default 'unknown'. */
  backend?: string;
  /** Version for `vilm_build_info`. Default: package.json's version. */
  version?: string;
  /** Also export the standard Node.js process metrics (`process_*`, `nodejs_*`, no prefix). Default true. */
  processMetrics?: boolean;
  /** Registry to register into. Default: a fresh one (never the prom-client global). */
  registry?: Registry;
  /** Clock (milliseconds) for the ETA. Default performance.now; tests pass their own. */
  now?: () => number;
}

export interface VilmMetrics {
  registry: Registry;
  /** Pass to the trainer/coordinator; every event updates the metrics. */
  observer: TrainerObserver;
  /** Update `vilm_build_info` once the numeric backend is known. */
  setBackend(name: string): void;
  /** The label a worker id is exported under (its own id, or `other` past the cap). */
  workerLabel(workerId: string): string;
}

/**
 * Caps the number of distinct label values: the first `cap` ids keep their own label, any later
 * id maps to `other`. Worker ids are unbounded in principle (every reconnect of a remote worker may
 * bring a new id), and each label value is a time series in Prometheus that lives until retention.
 */
export class BoundedLabels {
  private readonly seen = new Set<string>();
  constructor(readonly cap: number) {
    if (!Number.isInteger(cap) || cap < 1) throw new Error(`BoundedLabels: cap must be a positive integer, got ${cap}`);
  }
  label(id: string): string {
    if (this.seen.has(id)) return id;
    if (this.seen.size < this.cap && id !== OTHER_WORKER) { this.seen.add(id); return id; }
    return OTHER_WORKER;
  }
  get size(): number { return this.seen.size; }
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function createMetrics(opts: MetricsOptions = {}): VilmMetrics {
  const registry = opts.registry ?? new Registry();
  const registers = [registry];
  const p = METRIC_PREFIX;
  if (opts.processMetrics ?? true) registerProcessMetrics(registry);

  const tokens = new Counter({ name: `${p}tokens_total`, help: 'Non-padding target tokens trained on.', registers });
  const paddedTokens = new Counter({ name: `${p}padded_tokens_total`, help: 'Padded positions processed (rows × sequence length).', registers });
  const steps = new Counter({ name: `${p}steps_total`, help: 'Optimizer steps completed.', registers });
  const stepDuration = new Histogram({
    name: `${p}step_duration_seconds`, help: 'Wall-clock duration of one optimizer step.', buckets: STEP_BUCKETS, registers,
  });
  const stepPart = new Histogram({
    name: `${p}step_part_duration_seconds`,
    help: 'Disjoint parts of one step, summing to the step duration: compute (tasks out until the first worker ran out of work), wait_stragglers (then until the last result), reduce, optimizer, publish, other (batch sampling, dispatch, bookkeeping).',
    labelNames: ['part'], buckets: STEP_BUCKETS, registers,
  });
  const globalStep = new Gauge({ name: `${p}global_step`, help: 'Step of the run (continues across resume; vilm_steps_total counts this process\'s steps).', registers });
  const plannedSteps = new Gauge({ name: `${p}planned_steps`, help: 'Steps the run is planned to take (train.steps).', registers });
  const eta = new Gauge({
    name: `${p}eta_seconds`, help: `Estimated seconds until the last planned step, from the wall-clock time of the last ${ETA_WINDOW} steps (NaN before the first step).`, registers,
  });
  const loss = new Gauge({ name: `${p}loss`, help: 'Mean next-token loss (nats) of the last training batch.', registers });
  const valLoss = new Gauge({ name: `${p}validation_loss`, help: 'Mean next-token loss (nats) on the validation split, last evaluation (NaN before the first).', registers });
  const testLoss = new Gauge({ name: `${p}test_loss`, help: 'Mean next-token loss (nats) on the test split, at the end of the run (NaN before).', registers });
  const testPpl = new Gauge({ name: `${p}test_perplexity`, help: 'Perplexity (exp of the loss) on the test split, at the end of the run (NaN before).', registers });
  const gradNorm = new Gauge({ name: `${p}gradient_norm`, help: 'Global L2 norm of the gradient before clipping, last step.', registers });
  const lr = new Gauge({ name: `${p}learning_rate`, help: 'Learning rate used by the last step.', registers });
  const workersConnected = new Gauge({ name: `${p}workers_connected`, help: 'Connected workers by transport.', labelNames: ['transport'], registers });
  const workerShards = new Counter({
    name: `${p}worker_micro_shards_total`, help: 'Micro-shards whose result was accepted, per worker (ids past the cap are labelled "other").',
    labelNames: ['worker'], registers,
  });
  const workerCompute = new Counter({
    name: `${p}worker_compute_seconds_total`, help: 'Seconds workers spent computing accepted micro-shards, per worker (ids past the cap are labelled "other").',
    labelNames: ['worker'], registers,
  });
  const sent = new Counter({ name: `${p}network_sent_bytes_total`, help: 'Bytes the coordinator sent to workers (tasks and weights), by transport.', labelNames: ['transport'], registers });
  const received = new Counter({ name: `${p}network_received_bytes_total`, help: 'Bytes the coordinator received from workers (results), by transport.', labelNames: ['transport'], registers });
  const reassigned = new Counter({ name: `${p}micro_shards_reassigned_total`, help: 'Micro-shards handed to another worker, by reason.', labelNames: ['reason'], registers });
  const rejected = new Counter({ name: `${p}results_rejected_total`, help: 'Worker results rejected, by reason.', labelNames: ['reason'], registers });
  const checkpoint = new Histogram({ name: `${p}checkpoint_duration_seconds`, help: 'Time to write one checkpoint.', buckets: CHECKPOINT_BUCKETS, registers });
  const checkpointBytes = new Gauge({ name: `${p}checkpoint_size_bytes`, help: 'Size of the last checkpoint written.', registers });
  const buildInfo = new Gauge({ name: `${p}build_info`, help: 'Build information (always 1).', labelNames: ['version', 'backend', 'node'], registers });

  // Initialise every known label value so each series exists (at 0) from the first scrape:
  // rate()/increase() over a counter that appears only on its first increment misses that increment,
  // and dashboard panels would show "no data" instead of 0.
  for (const t of TRANSPORTS) { workersConnected.set({ transport: t }, 0); sent.inc({ transport: t }, 0); received.inc({ transport: t }, 0); }
  for (const r of REASSIGN_REASONS) reassigned.inc({ reason: r }, 0);
  for (const r of REJECT_REASONS) rejected.inc({ reason: r }, 0);
  for (const part of STEP_PARTS) stepPart.zero({ part });
  // figures not measured yet are NaN (no point on a graph), not a misleading 0
  for (const g of [valLoss, testLoss, testPpl, eta, globalStep, plannedSteps]) g.set(NaN);

  const version = opts.version ?? packageVersion();
  let backend = opts.backend ?? 'unknown';
  const setBackend = (name: string): void => {
    buildInfo.reset();
    backend = name;
    buildInfo.set({ version, backend, node: process.version }, 1);
  };
  setBackend(backend);

  const labels = new BoundedLabels(opts.maxWorkerLabels ?? 32);

  // ETA: the planned steps left times the mean wall-clock time of the recent steps (from the start
  // event to the first step, then between steps), so evaluations and checkpoints are counted too
  const now = opts.now ?? (() => performance.now());
  let planned = NaN;
  const stamps: number[] = [];
  const observer: TrainerObserver = {
    onStart(e: StartEvent) {
      setBackend(e.backend);
      planned = e.steps;
      plannedSteps.set(e.steps);
      globalStep.set(e.step);
      stamps.length = 0;
      stamps.push(now());
      eta.set(e.step >= e.steps ? 0 : NaN);
    },
    onStep(e: StepEvent) {
      const t = now();
      if (stamps.length === 0) stamps.push(t - e.timing.total * 1000);
      stamps.push(t);
      if (stamps.length > ETA_WINDOW + 1) stamps.splice(0, stamps.length - ETA_WINDOW - 1);
      globalStep.set(e.step);
      if (Number.isFinite(planned)) {
        const perStep = (stamps[stamps.length - 1] - stamps[0]) / 1000 / (stamps.length - 1);
        eta.set(Math.max(0, planned - e.step) * perStep);
      }
      steps.inc();
      tokens.inc(e.tokens);
      paddedTokens.inc(e.paddedTokens);
      loss.set(e.loss);
      lr.set(e.lr);
      gradNorm.set(e.gradNorm);
      stepDuration.observe(e.timing.total);
      const parts = stepParts(e.timing);
      for (const part of STEP_PARTS) stepPart.observe({ part }, parts[part]);
    },
    onValidation(e) { if (!e.whole) valLoss.set(e.loss); },
    onTest(e) { testLoss.set(e.loss); testPpl.set(e.ppl); eta.set(0); },
    onWorkerResult(e: WorkerResultEvent) {
      const worker = labels.label(e.workerId);
      workerShards.inc({ worker }, e.microShards);
      workerCompute.inc({ worker }, e.computeSeconds);
      sent.inc({ transport: e.transport }, e.bytesSent);
      received.inc({ transport: e.transport }, e.bytesReceived);
    },
    onWorkers(counts) {
      for (const t of TRANSPORTS) workersConnected.set({ transport: t }, counts[t] ?? 0);
    },
    onReassigned(e) { reassigned.inc({ reason: e.reason }, e.count); },
    onRejected(e) { rejected.inc({ reason: e.reason }); },
    onCheckpoint(e) { checkpoint.observe(e.seconds); checkpointBytes.set(e.bytes); },
  };

  return { registry, observer, setBackend, workerLabel: (id) => labels.label(id) };
}

/**
 * prom-client's default Node.js metrics under their standard names (no prefix), as every Node.js
 * dashboard expects them. prom-client names three gauges `…_total`, which `promtool check metrics`
 * rejects (only counters end in _total); the same figures remain as nodejs_active_{handles,requests,resources}.
 */
export function registerProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const n of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(n);
}
