/**
 * Command-line options shared by `vilm train` and `vilm coordinator` (they run the same loop,
 * src/train/loop.ts), and the signal handling both use.
 */
import type { Argv } from 'yargs';
import { readFileSync } from 'node:fs';
import { applyOverrides, loadConfig, type OptimizerName, type RunConfig } from '../config/index.js';
import type { BackendName } from '../backend/types.js';
import { UserError } from '../util/errors.js';
import { log } from '../util/log.js';
import { runTrainingLoop, type StopSignal, type TrainLoopOptions } from './loop.js';
import type { TrainerObserver } from './events.js';

export interface CommonRunArgs {
  config: string;
  data: string;
  out: string;
  steps?: number;
  'stop-at'?: number;
  optimizer?: string;
  resume: boolean;
  backend: string;
  set: string[];
  tokenizer?: string;
  'test-batches'?: number;
  'metrics-port'?: number;
  'metrics-host': string;
}

export function commonRunOptions<T>(y: Argv<T>) {
  return y
    .option('config', { type: 'string', default: 'configs/tiny.yaml', describe: 'run config YAML (model + train)' })
    .option('data', { type: 'string', demandOption: true, describe: 'prepared data directory (output of vilm data prepare)' })
    .option('out', { type: 'string', demandOption: true, describe: 'run directory: checkpoint.vilm, log.jsonl, final.json' })
    .option('steps', { type: 'number', describe: 'total optimizer steps (overrides train.steps; also sets the LR schedule length)' })
    .option('stop-at', { type: 'number', describe: 'stop after this many steps with a checkpoint (resume later with --resume)' })
    .option('optimizer', { type: 'string', choices: ['adam', 'sgd', 'momentum', 'rmsprop'], describe: 'overrides train.optimizer' })
    .option('resume', { type: 'boolean', default: false, describe: 'continue exactly from OUT/checkpoint.vilm' })
    .option('backend', { type: 'string', choices: ['auto', 'tensorflow', 'wasm', 'cpu'], default: 'auto', describe: 'tfjs backend of the workers' })
    .option('set', { type: 'string', array: true, default: [] as string[], describe: 'config override section.field=value (repeatable)' })
    .option('tokenizer', { type: 'string', describe: 'tokenizer.json for bits per byte (default: DATA/tokenizer.json)' })
    .option('test-batches', { type: 'number', describe: 'test-split batches scored at the end (default: all)' })
    .option('metrics-port', { type: 'number', describe: 'serve Prometheus metrics on this port (/metrics, /healthz, /readyz; 0 = any)' })
    .option('metrics-host', { type: 'string', default: '0.0.0.0', describe: 'address for --metrics-port' });
}

export function resolveRunConfig(a: CommonRunArgs): RunConfig {
  let cfg = loadConfig(a.config);
  const sets = [...a.set];
  if (a.optimizer) sets.push(`train.optimizer=${a.optimizer}`);
  if (sets.length) cfg = applyOverrides(cfg, sets);
  for (const [flag, v] of [['--steps', a.steps], ['--stop-at', a['stop-at']], ['--test-batches', a['test-batches']]] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new UserError(`${flag}: must be a non-negative integer, got ${v}`);
  }
  return cfg;
}

/** Prometheus metrics for a run when --metrics-port is given: observers, a ready hook and close(). */
export async function runMetrics(a: CommonRunArgs): Promise<{ observers: TrainerObserver[]; ready: () => void; close: () => Promise<void> }> {
  const port = a['metrics-port'];
  if (port === undefined) return { observers: [], ready: () => undefined, close: async () => undefined };
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError(`--metrics-port: must be 0..65535, got ${port}`);
  const { serveCoordinatorMetrics } = await import('../metrics/serve.js');
  const m = await serveCoordinatorMetrics({ port, host: a['metrics-host'], backend: a.backend });
  log.info(`metrics on http://${a['metrics-host']}:${m.port}/metrics`);
  return { observers: [m.observer], ready: () => m.markReady(), close: () => m.close() };
}

export function backendOf(a: CommonRunArgs): BackendName {
  return a.backend as BackendName;
}

export function readTokenFile(file: string | undefined): string | undefined {
  if (!file) return undefined;
  let t: string;
  try { t = readFileSync(file, 'utf8').trim(); } catch (e) {
    throw new UserError(`${file}: cannot read --token-file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (t.length < 16) throw new UserError(`${file}: the token must be at least 16 characters`);
  // the example value shipped in cluster/k8s/secret.yaml must never become a real secret
  if (t.startsWith('replace-me')) throw new UserError(`${file}: still the example token; make one with: openssl rand -hex 32`);
  return t;
}

/**
 * SIGINT/SIGTERM: the first one asks the loop to finish (or abandon) the current step, checkpoint,
 * say bye to the workers and exit; a second one exits at once.
 */
export function installStopHandlers(stop: StopSignal): () => void {
  const on = (sig: NodeJS.Signals) => {
    if (stop.requested) { log.warn(`${sig} again: exiting without a final checkpoint`); process.exit(130); }
    stop.requested = true;
    log.warn(`${sig}: stopping after the current step (checkpoint, then exit); press again to exit now`);
    stop.notify?.();
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  return () => { process.off('SIGINT', on); process.off('SIGTERM', on); };
}

/** The loop options a command chooses itself; the rest comes from the shared flags. */
export type FleetOptions = Pick<TrainLoopOptions, 'inProcess' | 'threads'> & Partial<Pick<TrainLoopOptions, 'minWorkers' | 'remote' | 'taskDeadlineMs' | 'noWorkerTimeoutMs'>>;

/**
 * Run the training loop for `vilm train` / `vilm coordinator`: config from --config/--set, signal
 * handlers, optional Prometheus metrics; prints final.json on stdout when the run completes.
 */
export async function runLoopCommand(a: CommonRunArgs, fleet: FleetOptions): Promise<void> {
  const config = resolveRunConfig(a);
  const stop: StopSignal = { requested: false };
  const off = installStopHandlers(stop);
  const metrics = await runMetrics(a);
  try {
    const r = await runTrainingLoop({
      config, dataDir: a.data, outDir: a.out, resume: a.resume, steps: a.steps, stopAt: a['stop-at'],
      backend: backendOf(a), tokenizerFile: a.tokenizer, testBatches: a['test-batches'],
      stopSignal: stop, observers: metrics.observers, hooks: { started: metrics.ready },
      ...fleet,
    });
    if (r.final) process.stdout.write(JSON.stringify(r.final) + '\n');
  } finally { off(); await metrics.close(); }
}
