/**
 * The flags shared by `vilm train` and `vilm coordinator` (they run the same loop,
 * src/train/loop.ts) and how they become a run config.
 */
import type { Argv } from 'yargs';
import { BACKEND_NAMES, type BackendName } from '../backend/registry.js';
import { OPTIMIZER_NAMES } from '../optim/registry.js';
import { UserError } from '../util/errors.js';
import { fromEnv } from './env-defaults.js';

/** `--backend`: 'auto' or a registered backend (src/backend/registry.ts). */
export const backendOption = {
  choices: ['auto', ...BACKEND_NAMES] as readonly BackendName[],
  default: 'auto' as BackendName,
  describe: 'tfjs backend (auto: tensorflow when installed, else wasm, else cpu)',
} as const;

export interface CommonRunArgs {
  config?: string;
  data?: string;
  out?: string;
  steps?: number;
  'stop-at'?: number;
  optimizer?: string;
  resume: boolean;
  fresh: boolean;
  backend: BackendName;
  set: string[];
  tokenizer?: string;
  'test-sequences'?: number;
  init?: string;
  'metrics-port'?: number;
  'metrics-host': string;
  'metrics-linger': number;
  'verify-fraction': number;
}

/** Where `vilm train` / `vilm coordinator` serve metrics unless told otherwise (cluster/prometheus scrapes it). */
export const DEFAULT_METRICS_PORT = 9464;
/** Seconds the metrics stay up after a run, for the final figures to be scraped. */
export const DEFAULT_METRICS_LINGER = 60;

export function commonRunOptions<T>(y: Argv<T>) {
  return y
    .option('config', { type: 'string', defaultDescription: 'configs/tiny.yaml; configs/sample.yaml without --data', describe: 'run config YAML (model + train); a relative path not found here is looked up in the vilm package' })
    .option('data', { type: 'string', defaultDescription: 'the built-in sample, prepared once into ~/.cache/vilm', describe: 'prepared data directory (output of vilm data prepare)' })
    .option('out', { type: 'string', defaultDescription: 'runs/<command>-<time>', describe: 'run directory: checkpoint.vilm, log.jsonl, final.json' })
    .option('steps', { type: 'number', describe: 'total optimizer steps (overrides train.steps; also sets the LR schedule length)' })
    .option('stop-at', { type: 'number', describe: 'stop after this many steps with a checkpoint (resume later with --resume)' })
    .option('optimizer', { type: 'string', choices: OPTIMIZER_NAMES, describe: 'overrides train.optimizer' })
    .option('resume', { type: 'boolean', default: false, describe: 'continue exactly from OUT/checkpoint.vilm, which must exist (its config wins). Without it a run in OUT continues when it matches --config/--set/--data, else the command stops' })
    .option('fresh', { type: 'boolean', default: false, describe: 'start over even when OUT holds a run (removes its checkpoints and final.json)' })
    .option('backend', { ...backendOption, describe: 'tfjs backend of the workers' })
    .option('set', { type: 'string', array: true, default: [] as string[], describe: 'config override section.field=value (repeatable)' })
    .option('tokenizer', { type: 'string', describe: 'tokenizer.json for bits per byte (default: DATA/tokenizer.json)' })
    .option('init', { type: 'string', describe: 'start from these weights (checkpoint, run or exported directory; model config must match); optimizer state fresh' })
    .option('test-sequences', { type: 'number', describe: 'test-split sequences scored at the end, a fixed random sample (default: all, and the last validation point is then checked on the whole split)' })
    .option('verify-fraction', { type: 'number', default: 0, describe: 'fraction 0..1 of tasks also computed by a second worker, the results compared byte for byte; a worker that disagrees with the majority (a third worker, or the coordinator\'s own threads) is removed. Needs 2+ workers; the run\'s bytes do not change' })
    .option('metrics-port', fromEnv('metrics-port', {
      type: 'number', defaultDescription: `${DEFAULT_METRICS_PORT}`,
      describe: 'serve Prometheus metrics on this port (/metrics, /healthz, /readyz); 0: off. The default port taken: a warning and no metrics; a port you give must be free',
    }))
    .option('metrics-host', fromEnv('metrics-host', { type: 'string', default: '127.0.0.1', describe: 'address for --metrics-port (0.0.0.0: every interface; the metrics name workers\' hosts)' }))
    .option('metrics-linger', {
      type: 'number', default: DEFAULT_METRICS_LINGER,
      describe: 'after the run, keep the metrics up at most this many seconds, until one more scrape took the final figures (only if something scraped during the run; Ctrl-C ends it; 0: no wait)',
    });
}

/** A TCP port flag: an integer in 0..65535 (0 = any free port; for --metrics-port, off). */
export function checkPort(flag: string, port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError(`${flag}: must be 0..65535, got ${port}`);
  return port;
}

/** A number of seconds flag: finite and not negative. */
export function checkSeconds(flag: string, seconds: number): number {
  if (!Number.isFinite(seconds) || seconds < 0) throw new UserError(`${flag}: must be a non-negative number of seconds, got ${seconds}`);
  return seconds;
}
