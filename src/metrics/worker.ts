import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { METRIC_PREFIX, registerProcessMetrics } from './index.js';

/**
 * Metrics a remote worker may serve on its own /metrics (e.g. `vilm worker --metrics-port 9465`,
 * with startMetricsServer from ./server.ts). The coordinator already counts every worker's results
 * (vilm_worker_*{worker}); these are the worker's own view, named `vilm_remote_*` so that a
 * dashboard summing coordinator series never double-counts them. The standard Node.js process
 * metrics come without prefix (`process_*`, `nodejs_*`), as on the coordinator.
 */
export interface WorkerMetricsOptions {
  /** the worker's name (as in `--name`), a label of vilm_build_info */
  name: string;
  backend?: string;
  version?: string;
  processMetrics?: boolean;
  registry?: Registry;
}

export interface WorkerTaskFigures {
  microShards: number;
  computeSeconds: number;
  bytesSent: number;
  bytesReceived: number;
}

export interface WorkerMetrics {
  registry: Registry;
  /** one task computed and its result sent */
  recordTask(t: WorkerTaskFigures): void;
  /** connected to the coordinator (and authenticated) or not */
  setConnected(up: boolean): void;
  /** a new connection attempt after a refused or lost one */
  recordReconnect(): void;
}

const TASK_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export function createWorkerMetrics(opts: WorkerMetricsOptions): WorkerMetrics {
  const registry = opts.registry ?? new Registry();
  const registers = [registry];
  const p = `${METRIC_PREFIX}remote_`;
  if (opts.processMetrics ?? true) registerProcessMetrics(registry);
  const tasks = new Counter({ name: `${p}tasks_total`, help: 'Tasks computed and answered by this worker.', registers });
  const shards = new Counter({ name: `${p}micro_shards_total`, help: 'Micro-shards computed by this worker.', registers });
  const taskSeconds = new Histogram({ name: `${p}task_duration_seconds`, help: 'Compute time of one task on this worker.', buckets: TASK_BUCKETS, registers });
  const sent = new Counter({ name: `${p}sent_bytes_total`, help: 'Bytes this worker sent to the coordinator.', registers });
  const received = new Counter({ name: `${p}received_bytes_total`, help: 'Bytes this worker received from the coordinator.', registers });
  const connected = new Gauge({ name: `${p}connected`, help: '1 while connected to the coordinator, else 0.', registers });
  const reconnects = new Counter({ name: `${p}reconnects_total`, help: 'Connection attempts after a refused or lost connection.', registers });
  const info = new Gauge({ name: `${METRIC_PREFIX}build_info`, help: 'Build information (always 1).', labelNames: ['version', 'backend', 'node', 'worker'], registers });
  info.set({ version: opts.version ?? 'unknown', backend: opts.backend ?? 'unknown', node: process.version, worker: opts.name }, 1);
  connected.set(0);
  return {
    registry,
    recordTask(t) {
      tasks.inc();
      shards.inc(t.microShards);
      taskSeconds.observe(t.computeSeconds);
      sent.inc(t.bytesSent);
      received.inc(t.bytesReceived);
    },
    setConnected(up) { connected.set(up ? 1 : 0); },
    recordReconnect() { reconnects.inc(); },
  };
}
