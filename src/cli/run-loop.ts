/**
 * Run the training loop for `vilm train` / `vilm coordinator`: config from --config/--set, signal
 * handlers, Prometheus metrics (on by default, 127.0.0.1:9464; --metrics-port 0 turns them off)
 * that stay up a while after the run for the final figures; prints final.json on stdout when the
 * run completes.
 */
import type { TrainerObserver } from '../events/index.js';
import { runTrainingLoop, type StopSignal, type TrainLoopOptions } from '../train/loop.js';
import { applyOverrides, loadConfig, type RunConfig } from '../config/index.js';
import { openTrained } from '../export/model-source.js';
import { UserError } from '../util/errors.js';
import { log } from '../util/log.js';
import { DEFAULT_METRICS_PORT, checkPort, checkSeconds, type CommonRunArgs } from './run-options.js';
import { installStopHandlers } from './signals.js';
import { sampleData, timestamp } from '../start/sample-data.js';
import { trainProgress } from '../train/progress.js'; // progress bar (issue 12)
import path from 'node:path';

/**
 * Exit codes of `vilm train` / `vilm coordinator` (README, "Exit codes"): 0 the run finished (or
 * reached --stop-at); 75 (EX_TEMPFAIL) interrupted by a signal after a checkpoint — run the same
 * command again to continue; 69 (EX_UNAVAILABLE) gave up waiting for workers (--wait-workers), a
 * checkpoint written; 65 (EX_DATAERR, EXIT_DIVERGED in src/util/errors.ts) the run diverged —
 * one line naming the step and the checkpoint kept, nothing written; 1 bad input; 2 bad usage;
 * 70 internal error; 130 a second signal.
 */
export const EXIT_INTERRUPTED = 75;
export const EXIT_NO_WORKERS = 69;

/** The loop options a command chooses itself; the rest comes from the shared flags. */
export type FleetOptions = Pick<TrainLoopOptions, 'inProcess' | 'threads'> & Partial<Pick<TrainLoopOptions, 'minWorkers' | 'remote' | 'taskDeadlineMs' | 'noWorkerTimeoutMs'>>;

/** The config file a run reads: --config, else the seed model's, else (no --data) the sample's. */
export function configFileOf(a: CommonRunArgs): string {
  return a.config ?? (a.data === undefined ? 'configs/sample.yaml' : 'configs/tiny.yaml');
}

export function resolveRunConfig(a: CommonRunArgs): RunConfig {
  let cfg = loadConfig(configFileOf(a));
  const sets = [...a.set];
  if (a.optimizer) sets.push(`train.optimizer=${a.optimizer}`);
  if (sets.length) cfg = applyOverrides(cfg, sets);
  for (const [flag, v] of [['--steps', a.steps], ['--stop-at', a['stop-at']], ['--test-sequences', a['test-sequences']]] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new UserError(`${flag}: must be a non-negative integer, got ${v}`);
  }
  const vf = a['verify-fraction'];
  if (vf !== undefined && !(vf >= 0 && vf <= 1)) throw new UserError(`--verify-fraction: must be a number from 0 to 1, got ${vf}`);
  return cfg;
}

/** A run's Prometheus metrics: observers for the loop, a ready hook, the linger after the run, close(). */
export interface RunMetrics {
  /** the bound port; null when metrics are off (--metrics-port 0) or the default port was taken */
  port: number | null;
  observers: TrainerObserver[];
  /**
   * The fleet is up: /readyz turns 200, and the line saying where the metrics are (or that the
   * default port was taken) is logged now, not before: a run refused for its input prints its one
   * error line and nothing else.
   */
  ready: () => void;
  /**
   * After a run that ended on its own: when something scraped /metrics during the run, keep
   * serving until one more scrape has taken the final figures, at most --metrics-linger seconds;
   * SIGINT or SIGTERM ends the wait at once. One log line says what it waits for.
   */
  linger: () => Promise<void>;
  close: () => Promise<void>;
}

type MetricsArgs = Pick<CommonRunArgs, 'metrics-port' | 'metrics-host' | 'metrics-linger' | 'backend'>;

/** The metrics flags, checked before any work: one line naming the flag. */
export function checkMetricsArgs(a: MetricsArgs): void {
  if (a['metrics-port'] !== undefined) checkPort('--metrics-port', a['metrics-port']);
  checkSeconds('--metrics-linger', a['metrics-linger']);
}

const NO_METRICS: RunMetrics = { port: null, observers: [], ready: () => undefined, linger: async () => undefined, close: async () => undefined };

/**
 * Metrics are on by default (DEFAULT_METRICS_PORT on --metrics-host). A port the user gave
 * (--metrics-port or VILM_METRICS_PORT) must be free: a taken one is a one-line error. The default
 * port taken (another run on this machine) is not worth failing a run for: one warning, and the
 * run goes on without metrics. `defaultPort` is for tests.
 */
export async function openRunMetrics(a: MetricsArgs, defaultPort = DEFAULT_METRICS_PORT): Promise<RunMetrics> {
  checkMetricsArgs(a);
  const explicit = a['metrics-port'] !== undefined;
  const port = a['metrics-port'] ?? defaultPort;
  if (port === 0) return NO_METRICS;
  const host = a['metrics-host'];
  const { serveCoordinatorMetrics } = await import('../metrics/coordinator.js');
  const { MetricsListenError } = await import('../metrics/server.js');
  let m;
  try {
    m = await serveCoordinatorMetrics({ port, host, backend: a.backend });
  } catch (e) {
    if (!(e instanceof MetricsListenError)) throw e;
    const why = e.code === 'EADDRINUSE' ? 'EADDRINUSE: the port is taken' : e.code ?? e.message;
    if (explicit) throw new UserError(`--metrics-port ${port}: cannot listen on ${host}:${port} (${why}); choose a free port, or 0 for no metrics`);
    if (e.code !== 'EADDRINUSE') throw new UserError(`--metrics-host ${host}: cannot serve metrics on ${host}:${port} (${why}); --metrics-port 0 turns metrics off`);
    let said = false;
    const warn = () => {
      if (!said) log.warn(`metrics: ${host}:${port} is taken (another run?), so this run has no metrics; --metrics-port P serves them on another port`);
      said = true;
    };
    return { ...NO_METRICS, ready: warn };
  }
  const metrics = m;
  let said = false;
  const ready = () => {
    if (!said) log.info(`metrics on http://${host}:${metrics.port}/metrics`);
    said = true;
    metrics.markReady();
  };
  const seconds = a['metrics-linger'];
  return {
    port: metrics.port, observers: [metrics.observer], ready, close: () => metrics.close(),
    linger: async () => {
      if (!(seconds > 0) || metrics.scrapes === 0) return;
      log.info(`metrics: waiting up to ${seconds} s for one more scrape of the final figures (Ctrl-C: exit now)`);
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try { await metrics.linger(seconds, stop.signal); } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    },
  };
}

/** `--init SOURCE`: its weights, after checking its model config is the run's. */
function initFrom(source: string, config: RunConfig): Float32Array {
  const t = openTrained(source);
  for (const [k, v] of Object.entries(config.model) as [keyof RunConfig['model'], unknown][]) {
    if (t.config.model[k] !== v) throw new UserError(`--init ${source}: model.${k} is ${JSON.stringify(t.config.model[k])}, the run's config says ${JSON.stringify(v)}`);
  }
  log.info('fine-tuning from', { source, step: t.step, format: t.format });
  return t.weights;
}

/**
 * `command` names the default run folder: without --out a run writes runs/<command>-<time>/ (and
 * says so); without --data it trains on the built-in sample, prepared once into vilm's cache.
 */
export async function runLoopCommand(a: CommonRunArgs, fleet: FleetOptions, command: 'train' | 'coordinator'): Promise<void> {
  checkMetricsArgs(a);
  const config = resolveRunConfig(a);
  const dataDir = a.data ?? await sampleData(config);
  const outDir = a.out ?? path.join('runs', `${command}-${timestamp()}`);
  if (a.out === undefined) log.info(`no --out: writing the run to ${outDir}`);
  const initWeights = a.init !== undefined ? initFrom(a.init, config) : undefined;
  const stop: StopSignal = { requested: false };
  const off = installStopHandlers(stop);
  const metrics = await openRunMetrics(a);
  // linger only after a run that ended on its own (finished, --stop-at, gave up on workers): not
  // after a signal (the user wants out) nor an error
  let linger = false;
  const bar = trainProgress(); // progress bar over the planned steps (issue 12; src/train/progress.ts)
  try {
    const r = await runTrainingLoop({
      config, dataDir, outDir, resume: a.resume, fresh: a.fresh, steps: a.steps, stopAt: a['stop-at'],
      backend: a.backend, tokenizerFile: a.tokenizer, testSequences: a['test-sequences'], initWeights, verifyFraction: a['verify-fraction'],
      stopSignal: stop, observers: [...metrics.observers, bar.observer], hooks: { started: metrics.ready },
      ...fleet,
    });
    if (r.final) process.stdout.write(JSON.stringify(r.final) + '\n');
    // a run that stopped early (checkpoint written) must not look finished to a scheduler
    if (r.stopped === 'signal') process.exitCode = EXIT_INTERRUPTED;
    else if (r.stopped === 'no-workers') process.exitCode = EXIT_NO_WORKERS;
    linger = r.stopped !== 'signal' && !stop.requested;
  } finally {
    bar.close(); off();
    try { if (linger) await metrics.linger(); } finally { await metrics.close(); }
  }
}
