import { defineCommand, type AnyCommand } from '../define.js';
import { commonRunOptions, readTokenFile, runLoopCommand } from '../../train/run-options.js';
import { hostname } from 'node:os';
import { runRemoteWorker, type RemoteWorkerEvents } from '../../dist/ws-worker.js';
import { log } from '../../util/log.js';
import { UserError } from '../../util/errors.js';

const coordinator = defineCommand({
  command: 'coordinator',
  describe: 'train with local worker threads and remote WebSocket workers (exact: same bytes as vilm train)',
  builder: (y) => commonRunOptions(y)
    .option('workers', { type: 'number', default: 2, describe: 'local worker threads (piscina), each with its own model replica' })
    .option('host', { type: 'string', default: '127.0.0.1', describe: 'address for remote workers (without --token-file only 127.0.0.1)' })
    .option('port', { type: 'number', default: 7070, describe: 'WebSocket port for remote workers (0: any free port, printed)' })
    .option('local-only', { type: 'boolean', default: false, describe: 'do not accept remote workers' })
    .option('token-file', { type: 'string', describe: 'shared secret for worker authentication (HMAC challenge–response)' })
    .option('tls-cert', { type: 'string', describe: 'PEM certificate: serve wss://' })
    .option('tls-key', { type: 'string', describe: 'PEM private key for --tls-cert' })
    .option('min-workers', { type: 'number', describe: 'wait until this many workers are connected before the first step (default 1)' })
    .option('wait-workers', { type: 'number', describe: 'seconds to wait when every worker is gone before giving up (default: forever)' })
    .option('task-deadline', { type: 'number', default: 300, describe: 'seconds before an unanswered task is also given to another worker' })
    .example('$0 coordinator --workers 8 --config configs/tiny.yaml --data runs/data --out runs/tiny', '8 local threads')
    .example('$0 coordinator --workers 0 --min-workers 2 --host 0.0.0.0 --token-file secret.txt --data runs/data --out runs/r', 'remote workers only')
    .example('$0 worker --connect ws://10.0.0.5:7070 --token-file secret.txt', '…on each worker machine'),
  handler: async (a) => {
    const workers = a.workers;
    if (!Number.isInteger(workers) || workers < 0) throw new UserError(`--workers: must be a non-negative integer, got ${workers}`);
    const port = a.port;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError(`--port: must be 0..65535, got ${port}`);
    const minWorkers = a['min-workers'] ?? 1;
    if (!Number.isInteger(minWorkers) || minWorkers < 1) throw new UserError(`--min-workers: must be a positive integer, got ${minWorkers}`);
    if (workers === 0 && a['local-only']) throw new UserError('--workers 0 with --local-only leaves no worker at all');
    const token = readTokenFile(a['token-file']);
    await runLoopCommand(a, {
      inProcess: false, threads: workers, minWorkers,
      remote: a['local-only'] ? undefined : { host: a.host, port, token, tlsCert: a['tls-cert'], tlsKey: a['tls-key'] },
      taskDeadlineMs: a['task-deadline'] * 1000,
      noWorkerTimeoutMs: a['wait-workers'] !== undefined ? a['wait-workers'] * 1000 : undefined,
    });
  },
});

const worker = defineCommand({
  command: 'worker',
  describe: 'a remote worker: connect to a coordinator and compute micro-shard gradients',
  builder: (y) => y
    .option('connect', { type: 'string', demandOption: true, describe: 'coordinator URL, ws://HOST:PORT or wss://HOST:PORT' })
    .option('token-file', { type: 'string', describe: 'the shared secret the coordinator was started with' })
    .option('tls-ca', { type: 'string', describe: 'PEM CA/certificate to trust for wss:// (self-signed coordinator)' })
    .option('name', { type: 'string', describe: 'worker name in logs and metrics (default HOST-PID)' })
    .option('threads', { type: 'number', default: 1, describe: 'connections to open, each computing in its own thread with its own replica (use the cores of a bigger machine)' })
    .option('retry', { type: 'number', default: 60, describe: 'seconds to keep retrying a refused or lost connection' })
    .option('metrics-port', { type: 'number', describe: "serve this worker's own Prometheus metrics (vilm_remote_*) on this port" })
    .option('metrics-host', { type: 'string', default: '0.0.0.0', describe: 'address for --metrics-port' })
    .example('$0 worker --connect ws://127.0.0.1:7070', 'join a local coordinator')
    .example('$0 worker --connect wss://trainer:7070 --token-file secret.txt --tls-ca cert.pem', 'authenticated, over TLS')
    .example('$0 worker --connect ws://10.0.0.5:7070 --token-file secret.txt --threads 16', 'a 16-core machine as 16 workers'),
  handler: async (a) => {
    const name = a.name ?? `${hostname()}-${process.pid}`;
    let events: RemoteWorkerEvents | undefined;
    let close = async () => undefined as void;
    const port = a['metrics-port'];
    if (port !== undefined) {
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError(`--metrics-port: must be 0..65535, got ${port}`);
      const { createWorkerMetrics } = await import('../../metrics/worker.js');
      const { startMetricsServer } = await import('../../metrics/index.js');
      const m = createWorkerMetrics({ name });
      const server = await startMetricsServer({ port, host: a['metrics-host'], registry: m.registry });
      log.info(`worker metrics on http://${a['metrics-host']}:${server.port}/metrics`);
      events = { onTask: (t) => m.recordTask(t), onConnected: (up) => m.setConnected(up), onReconnect: () => m.recordReconnect() };
      close = () => server.close();
    }
    const n = a.threads;
    if (!Number.isInteger(n) || n < 1) throw new UserError(`--threads: must be a positive integer, got ${n}`);
    // with several connections the "connected" gauge means "at least one is"
    let up = 0;
    const shared: RemoteWorkerEvents | undefined = events && n > 1
      ? { ...events, onConnected: (c) => { up += c ? 1 : -1; events!.onConnected?.(up > 0); } }
      : events;
    const token = readTokenFile(a['token-file']);
    try {
      await Promise.all(Array.from({ length: n }, (_, i) => runRemoteWorker({
        url: a.connect, token, caFile: a['tls-ca'], name: n > 1 ? `${name}-${i}` : name, retryMs: a.retry * 1000, events: shared,
      })));
    } finally { await close(); }
  },
});

export const distCommands: AnyCommand[] = [coordinator, worker];
