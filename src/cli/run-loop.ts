/**
 * Run the training loop for `vilm train` / `vilm coordinator`: config from --config/--set, signal
 * handlers, Prometheus metrics when --metrics-port is given; prints final.json on stdout when the
 * run completes.
 */
import type { TrainerObserver } from '../events/index.js';
import { runTrainingLoop, type StopSignal, type TrainLoopOptions } from '../train/loop.js';
import { log } from '../util/log.js';
import { checkPort, resolveRunConfig, type CommonRunArgs } from './run-options.js';
import { installStopHandlers } from './signals.js';

/** The loop options a command chooses itself; the rest comes from the shared flags. */
export type FleetOptions = Pick<TrainLoopOptions, 'inProcess' | 'threads'> & Partial<Pick<TrainLoopOptions, 'minWorkers' | 'remote' | 'taskDeadlineMs' | 'noWorkerTimeoutMs'>>;

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

export async function runLoopCommand(a: CommonRunArgs, fleet: FleetOptions): Promise<void> {
  const config = resolveRunConfig(a);
  const stop: StopSignal = { requested: false };
  const off = installStopHandlers(stop);
  const metrics = await runMetrics(a);
  try {
    const r = await runTrainingLoop({
      config, dataDir: a.data, outDir: a.out, resume: a.resume, steps: a.steps, stopAt: a['stop-at'],
      backend: a.backend, tokenizerFile: a.tokenizer, testBatches: a['test-batches'],
      stopSignal: stop, observers: metrics.observers, hooks: { started: metrics.ready },
      ...fleet,
    });
    if (r.final) process.stdout.write(JSON.stringify(r.final) + '\n');
  } finally { off(); await metrics.close(); }
}
