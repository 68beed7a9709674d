/**
 * Backend setup — the one place that chooses the TensorFlow.js backend.
 *
 *   initBackend(name: BackendName = 'auto'): Promise<'tensorflow' | 'wasm' | 'cpu'>
 *
 * `auto`: @tensorflow/tfjs-node when it is installed (an optionalDependency that cannot install on
 * machines without internet), else @tensorflow/tfjs-backend-wasm, else the pure-JS `cpu` backend.
 * An explicit name (the CLI's `--backend`) forces that backend and fails if it cannot start.
 * The choice is logged once per thread. The kernel fixes of ./kernels.ts are installed once per
 * backend per thread, right after the backend starts.
 *
 * Idempotent: calling again with `auto` or the active name returns the active backend; calling
 * with another explicit name switches to it (tests compare wasm against cpu this way).
 * Works in worker threads (piscina): every thread has its own tfjs engine and wasm instance, so
 * every thread calls initBackend itself.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { isMainThread } from 'node:worker_threads';
import type { BackendName } from './types.js';
import { installKernelFixes } from './kernels.js';
import { log } from '../util/log.js';
import { UserError } from '../util/errors.js';

// Silence tfjs's console banners (e.g. the cpu backend's 'install tfjs-node' notice); vilm logs the choice itself.
tf.env().set('PROD', true);

export type ActiveBackend = 'tensorflow' | 'wasm' | 'cpu';
export type { BackendName } from './types.js';
export { softmaxCrossEntropy, softmaxCrossEntropyWithGrad, setStockKernels } from './kernels.js';

let active: ActiveBackend | undefined;
let pending: Promise<ActiveBackend> | undefined;
let nodeLoadError: string | undefined;

/** Try to load tfjs-node (registers the `tensorflow` backend). Returns false when not installed. */
async function loadTfjsNode(): Promise<boolean> {
  if (tf.findBackend('tensorflow')) return true;
  if (nodeLoadError !== undefined) return false;
  try {
    // A variable specifier keeps TypeScript from requiring the optional package's types.
    const spec = '@tensorflow/tfjs-node';
    await import(spec);
    return tf.findBackend('tensorflow') !== null;
  } catch (e) {
    nodeLoadError = (e as Error).message.split('\n')[0];
    return false;
  }
}

async function start(name: ActiveBackend): Promise<boolean> {
  try {
    const ok = await tf.setBackend(name);
    if (!ok) return false;
    await tf.ready();
    return tf.getBackend() === name;
  } catch {
    return false;
  }
}

async function choose(name: BackendName): Promise<ActiveBackend> {
  if (name !== 'auto' && name !== 'tensorflow' && name !== 'wasm' && name !== 'cpu') {
    throw new UserError(`--backend: must be one of auto|tensorflow|wasm|cpu, got '${String(name)}'`);
  }
  let chosen: ActiveBackend | undefined;
  let reason = '';
  if (name === 'tensorflow' || name === 'auto') {
    if ((await loadTfjsNode()) && (await start('tensorflow'))) { chosen = 'tensorflow'; reason = '@tensorflow/tfjs-node'; }
    else if (name === 'tensorflow') throw new UserError(`--backend tensorflow: @tensorflow/tfjs-node is not usable here (${nodeLoadError ?? 'failed to start'})`);
  }
  if (!chosen && (name === 'wasm' || name === 'auto')) {
    if (await start('wasm')) { chosen = 'wasm'; reason = name === 'auto' ? 'tfjs-node not installed' : '--backend wasm'; }
    else if (name === 'wasm') throw new UserError('--backend wasm: @tensorflow/tfjs-backend-wasm failed to start');
  }
  if (!chosen) {
    if (!(await start('cpu'))) throw new Error('the cpu backend failed to start');
    chosen = 'cpu';
    reason = name === 'auto' ? 'neither tfjs-node nor wasm available' : '--backend cpu';
  }
  installKernelFixes(chosen);
  if (chosen !== active) log.info('tfjs backend', { backend: chosen, reason, thread: isMainThread ? 'main' : 'worker' });
  active = chosen;
  return chosen;
}

/** Choose, start and patch the backend (see the file comment). Safe to call many times. */
export async function initBackend(name: BackendName = 'auto'): Promise<ActiveBackend> {
  // Serialise concurrent calls so two callers never race tf.setBackend.
  const prev = pending ?? Promise.resolve(undefined);
  const next = prev.catch(() => undefined).then(async () => {
    if (active && (name === 'auto' || name === active) && tf.getBackend() === active) return active;
    return choose(name);
  });
  pending = next;
  return next;
}

/** The backend chosen by the last initBackend call in this thread, or undefined before any. */
export function activeBackend(): ActiveBackend | undefined {
  return active;
}
