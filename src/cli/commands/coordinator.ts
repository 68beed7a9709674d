/** `vilm coordinator` (also the `coordinator` bin): the training loop with a fleet of workers. */
import { defineCommand } from '../define.js';
import { checkPort, commonRunOptions } from '../run-options.js';
import { fromEnv } from '../env-defaults.js';
import { readTokenFile } from '../token-file.js';
import { UserError } from '../../util/errors.js';

export const coordinatorCommand = defineCommand({
  command: 'coordinator',
  describe: 'train with local worker threads and remote WebSocket workers (exact: same bytes as vilm train)',
  builder: (y) => commonRunOptions(y)
    .option('workers', fromEnv('workers', { type: 'number', default: 2, describe: 'local worker threads (piscina), each with its own model replica' }))
    .option('host', fromEnv('host', { type: 'string', default: '127.0.0.1', describe: 'address for remote workers (another than loopback needs --token-file, or --insecure)' }))
    .option('port', fromEnv('port', { type: 'number', default: 7070, describe: 'WebSocket port for remote workers (0: any free port, printed)' }))
    .option('local-only', { type: 'boolean', default: false, describe: 'do not accept remote workers' })
    .option('token-file', fromEnv('token-file', { type: 'string', describe: 'shared secret (≥ 256 bits, e.g. openssl rand -hex 32): workers authenticate, every frame is MAC-ed' }))
    .option('insecure', { type: 'boolean', default: false, describe: 'allow a non-loopback --host without --token-file (anyone who reaches the port can join)' })
    .option('tls-cert', fromEnv('tls-cert', { type: 'string', describe: 'PEM certificate: serve wss://' }))
    .option('tls-key', fromEnv('tls-key', { type: 'string', describe: 'PEM private key for --tls-cert' }))
    .option('min-workers', { type: 'number', describe: 'wait until this many workers are connected before the first step (default 1)' })
    .option('wait-workers', { type: 'number', describe: 'seconds to wait when every worker is gone before giving up (default: forever)' })
    .option('task-deadline', { type: 'number', default: 300, describe: 'seconds before an unanswered task is also given to another worker' })
    .example('$0 coordinator --workers 8', '8 local threads on the built-in sample, into runs/coordinator-<time>')
    .example('$0 coordinator --workers 8 --config configs/tiny.yaml --data runs/data --out runs/tiny', '8 local threads')
    .example('$0 coordinator --workers 0 --min-workers 2 --host 0.0.0.0 --token-file token.txt --data runs/data --out runs/r', 'remote workers only')
    .example('$0 worker --connect ws://10.0.0.5:7070 --token-file token.txt', '…on each worker machine'),
  handler: async (a) => {
    const { runLoopCommand } = await import('../run-loop.js');
    const workers = a.workers;
    if (!Number.isInteger(workers) || workers < 0) throw new UserError(`--workers: must be a non-negative integer, got ${workers}`);
    const port = checkPort('--port', a.port);
    const minWorkers = a['min-workers'] ?? 1;
    if (!Number.isInteger(minWorkers) || minWorkers < 1) throw new UserError(`--min-workers: must be a positive integer, got ${minWorkers}`);
    if (workers === 0 && a['local-only']) throw new UserError('--workers 0 with --local-only leaves no worker at all');
    const token = readTokenFile(a['token-file']);
    await runLoopCommand(a, {
      inProcess: false, threads: workers, minWorkers,
      remote: a['local-only'] ? undefined : { host: a.host, port, token, insecure: a.insecure, tlsCert: a['tls-cert'], tlsKey: a['tls-key'] },
      taskDeadlineMs: a['task-deadline'] * 1000,
      noWorkerTimeoutMs: a['wait-workers'] !== undefined ? a['wait-workers'] * 1000 : undefined,
    }, 'coordinator');
  },
});
