import { combineObservers, type TrainerObserver } from '../events/index.js';
import { createMetrics, type VilmMetrics } from './index.js';
import { startMetricsServer } from './server.js';

/**
 * The coordinator's metrics in one call, for `vilm coordinator --metrics-port P` (and `vilm train`):
 *
 *   const m = await serveCoordinatorMetrics({ port: a['metrics-port'], backend });
 *   await runTrainingLoop({ …, observers: [m.observer], hooks: { started: () => m.markReady() } });
 *   await m.close();
 *
 * /readyz turns 200 once `markReady()` is called (the fleet is up and accepting workers) or the
 * first step completes, whichever comes first.
 */
export interface CoordinatorMetrics {
  metrics: VilmMetrics;
  observer: TrainerObserver;
  /** the bound port (useful with port 0) */
  port: number;
  markReady(): void;
  close(): Promise<void>;
}

export async function serveCoordinatorMetrics(opts: { port: number; host?: string; backend?: string; maxWorkerLabels?: number }): Promise<CoordinatorMetrics> {
  const metrics = createMetrics({ backend: opts.backend, maxWorkerLabels: opts.maxWorkerLabels });
  let ready = false;
  const server = await startMetricsServer({ port: opts.port, host: opts.host, registry: metrics.registry, ready: () => ready });
  const observer = combineObservers(metrics.observer, { onStep: () => { ready = true; } });
  return { metrics, observer, port: server.port, markReady: () => { ready = true; }, close: () => server.close() };
}
