/** `vilm worker` (also the `worker` bin): a remote worker joining a coordinator over WebSocket. */
import { defineCommand } from '../define.js';
import { checkPort } from '../run-options.js';
import { fromEnv } from '../env-defaults.js';
import { readTokenFile } from '../token-file.js';
import type { RemoteWorkerEvents } from '../../fleet/worker/remote-worker.js';
import { log } from '../../util/log.js';
import { UserError } from '../../util/errors.js';

export const workerCommand = defineCommand({
  command: 'worker',
  describe: 'a remote worker: connect to a coordinator and compute micro-shard gradients',
  builder: (y) => y
    .option('connect', fromEnv('connect', { type: 'string', demandOption: true, describe: 'coordinator URL, ws://HOST:PORT or wss://HOST:PORT' }))
    .option('token-file', fromEnv('token-file', { type: 'string', describe: 'the shared secret the coordinator was started with' }))
    .option('tls-ca', fromEnv('tls-ca', { type: 'string', describe: 'PEM CA/certificate to trust for wss:// (self-signed coordinator)' }))
    .option('name', fromEnv('name', { type: 'string', describe: 'worker name in logs and metrics, the identity strikes and bans follow (default HOST-PID; A-Z a-z 0-9 . _ -)' }))
    .option('threads', fromEnv('threads', { type: 'number', default: 1, describe: 'connections to open, each computing in its own thread with its own replica (use the cores of a bigger machine)' }))
    .option('retry', { type: 'number', default: 60, describe: 'seconds to keep retrying a refused or lost connection' })
    .option('metrics-port', fromEnv('metrics-port', { type: 'number', describe: "serve this worker's own Prometheus metrics (vilm_remote_*) on this port" }))
    .option('metrics-host', fromEnv('metrics-host', { type: 'string', default: '127.0.0.1', describe: 'address for --metrics-port (0.0.0.0: every interface)' }))
    .example('$0 worker --connect ws://127.0.0.1:7070', 'join a local coordinator')
    .example('$0 worker --connect wss://trainer:7070 --token-file secret.txt --tls-ca cert.pem', 'authenticated, over TLS')
    .example('$0 worker --connect ws://10.0.0.5:7070 --token-file secret.txt --threads 16', 'a 16-core machine as 16 workers'),
  handler: async (a) => {
    const { runRemoteWorker, workerName } = await import('../../fleet/worker/remote-worker.js');
    const name = workerName(a.name);
    let events: RemoteWorkerEvents | undefined;
    let close = async () => undefined as void;
    const port = a['metrics-port'];
    if (port !== undefined) {
      checkPort('--metrics-port', port);
      const { createWorkerMetrics } = await import('../../metrics/worker.js');
      const { startMetricsServer } = await import('../../metrics/server.js');
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
    // SIGTERM/SIGINT (a scale-down, Ctrl-C): leave at once with exit 0. The coordinator hands the
    // task in flight to another worker, so nothing is lost. Node as PID 1 (a container without an
    // init) ignores SIGTERM unless a handler is installed, which made every scale-down wait for SIGKILL.
    const leave = (sig: NodeJS.Signals) => {
      log.info(`${sig}: leaving the coordinator`);
      void close().finally(() => process.exit(0));
    };
    process.once('SIGTERM', leave);
    process.once('SIGINT', leave);
    try {
      await Promise.all(Array.from({ length: n }, (_, i) => runRemoteWorker({
        url: a.connect, token, caFile: a['tls-ca'], name: n > 1 ? `${name.slice(0, 42)}-${i}` : name, retryMs: a.retry * 1000, events: shared,
      })));
    } finally { await close(); }
  },
});
