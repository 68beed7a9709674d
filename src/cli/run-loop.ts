/**
 * Run the training loop for `vilm train` / `vilm coordinator`: config from --config/--set, signal
 * handlers, Prometheus metrics when --metrics-port is given; prints final.json on stdout when the
 * run completes.
 */
import type { TrainerObserver } from '../events/index.js';
import { runTrainingLoop, type StopSignal, type TrainLoopOptions } from '../train/loop.js';
import { applyOverrides, loadConfig, type RunConfig } from '../config/index.js';
import { openTrained } from '../export/model-source.js';
import { UserError } from '../util/errors.js';
import { log } from '../util/log.js';
import { checkPort, type CommonRunArgs } from './run-options.js';
import { installStopHandlers } from './signals.js';
import { sampleData, timestamp } from '../start/sample-data.js';
import path from 'node:path';

/**
 * Exit codes of `vilm train` / `vilm coordinator` (README, "Exit codes"): 0 the run finished (or
 * reached --stop-at); 75 (EX_TEMPFAIL) interrupted by a signal after a checkpoint — run the same
 * command again to continue; 69 (EX_UNAVAILABLE) gave up waiting for workers (--wait-workers), a
 * checkpoint written; 1 bad input; 2 bad usage; 70 internal error; 130 a second signal.
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
  return cfg;
}

/** Prometheus metrics for a run when --metrics-port is given: observers, a ready hook and close(). */
async function runMetrics(a: CommonRunArgs): Promise<{ observers: TrainerObserver[]; ready: () => void; close: () => Promise<void> }> {
  const port = a['metrics-port'];
  if (port === undefined) return { observers: [], ready: () => undefined, close: async () => undefined };
  checkPort('--metrics-port', port);
  const { serveCoordinatorMetrics } = await import('../metrics/coordinator.js');
  const m = await serveCoordinatorMetrics({ port, host: a['metrics-host'], backend: a.backend });
  log.info(`metrics on http://${a['metrics-host']}:${m.port}/metrics`);
  return { observers: [m.observer], ready: () => m.markReady(), close: () => m.close() };
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
  const config = resolveRunConfig(a);
  const dataDir = a.data ?? await sampleData(config);
  const outDir = a.out ?? path.join('runs', `${command}-${timestamp()}`);
  if (a.out === undefined) log.info(`no --out: writing the run to ${outDir}`);
  const initWeights = a.init !== undefined ? initFrom(a.init, config) : undefined;
  const stop: StopSignal = { requested: false };
  const off = installStopHandlers(stop);
  const metrics = await runMetrics(a);
  try {
    const r = await runTrainingLoop({
      config, dataDir, outDir, resume: a.resume, fresh: a.fresh, steps: a.steps, stopAt: a['stop-at'],
      backend: a.backend, tokenizerFile: a.tokenizer, testSequences: a['test-sequences'], initWeights,
      stopSignal: stop, observers: metrics.observers, hooks: { started: metrics.ready },
      ...fleet,
    });
    if (r.final) process.stdout.write(JSON.stringify(r.final) + '\n');
    // a run that stopped early (checkpoint written) must not look finished to a scheduler
    if (r.stopped === 'signal') process.exitCode = EXIT_INTERRUPTED;
    else if (r.stopped === 'no-workers') process.exitCode = EXIT_NO_WORKERS;
  } finally { off(); await metrics.close(); }
}
