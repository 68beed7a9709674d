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
}

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
    .option('metrics-port', fromEnv('metrics-port', { type: 'number', describe: 'serve Prometheus metrics on this port (/metrics, /healthz, /readyz; 0 = any)' }))
    .option('metrics-host', fromEnv('metrics-host', { type: 'string', default: '127.0.0.1', describe: 'address for --metrics-port (0.0.0.0: every interface; the metrics name workers\' hosts)' }));
}

/** A TCP port flag: an integer in 0..65535 (0 = any free port). */
export function checkPort(flag: string, port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError(`${flag}: must be 0..65535, got ${port}`);
  return port;
}
