/**
 * Backend setup — the one place that chooses the TensorFlow.js backend.
 *
 *   initBackend(name: BackendName = 'auto'): Promise<ActiveBackend>   // 'tensorflow' | 'wasm' | 'cpu'
 *
 * The backends (how each loads, which kernel fixes it gets, its messages) are listed once, in
 * ./registry.ts. `auto`: @tensorflow/tfjs-node when it is installed (an optionalDependency that
 * cannot install on machines without internet), else @tensorflow/tfjs-backend-wasm, else the
 * pure-JS `cpu` backend of @tensorflow/tfjs-backend-cpu (the registry's order).
 * vilm uses @tensorflow/tfjs-core (ops, autodiff, tidy/memory) and these backends, never the
 * @tensorflow/tfjs umbrella, whose layers/data/converter/webgl parts it has no use for (tfjs-node
 * brings the umbrella along as its own dependency when it is installed; that is its business).
 * An explicit name (the CLI's `--backend`) forces that backend and fails if it cannot start.
 * The choice is logged once per thread. The kernel fixes of ./kernels.ts are installed once per
 * backend per thread, right after the backend starts.
 *
 * Idempotent: calling again with `auto` or the active name returns the active backend; calling
 * with another explicit name switches to it (tests compare wasm against cpu this way).
 * Works in worker threads (piscina): every thread has its own tfjs engine and wasm instance, so
 * every thread calls initBackend itself.
 */
import * as tf from '@tensorflow/tfjs-core';
// Registered at import, as they always were (the umbrella package registered cpu; the wasm and cpu
// entries' `load` in ./registry.ts import them too, a no-op after this), so tfjs's own default for
// code that touches tf before initBackend is unchanged: wasm (priority 2), else cpu (priority 1).
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { isMainThread } from 'node:worker_threads';
import { BACKENDS, BACKEND_NAMES, isBackendName, type ActiveBackend, type BackendName } from './registry.js';
import { installKernelFixes } from './kernels.js';
import { log } from '../util/log.js';
import { UserError } from '../util/errors.js';

// Silence tfjs's console banners (e.g. the cpu backend's 'install tfjs-node' notice); vilm logs the choice itself.
tf.env().set('PROD', true);

export type { ActiveBackend, BackendName, BackendSpec } from './registry.js';
export { BACKENDS, BACKEND_NAMES, isBackendName } from './registry.js';
export { readFloats, softmaxCrossEntropy, softmaxCrossEntropyWithGrad, setStockKernels } from './kernels.js';

let active: ActiveBackend | undefined;
let pending: Promise<ActiveBackend> | undefined;

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

/**
 * An explicit name tries only that backend and throws its `failure()` when it cannot start; `auto`
 * tries BACKEND_NAMES in order and throws only when the last one cannot start either.
 */
async function choose(name: BackendName): Promise<ActiveBackend> {
  if (!isBackendName(name)) {
    throw new UserError(`--backend: must be one of ${['auto', ...BACKEND_NAMES].join('|')}, got '${String(name)}'`);
  }
  const auto = name === 'auto';
  const candidates: readonly ActiveBackend[] = auto ? BACKEND_NAMES : [name];
  let chosen: ActiveBackend | undefined;
  let reason = '';
  for (let i = 0; i < candidates.length; i++) {
    const b = BACKENDS[candidates[i]];
    if ((await b.load(tf)) && (await start(b.name))) {
      chosen = b.name;
      reason = auto ? b.reason.auto : b.reason.explicit;
      break;
    }
    if (!auto || i === candidates.length - 1) throw b.failure();
  }
  if (!chosen) throw new Error('no tfjs backend is registered'); // unreachable: the loop returns or throws
  installKernelFixes(chosen, BACKENDS[chosen].kernelFixes);
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
