/**
 * THE list of TensorFlow.js backends vilm can run on, in `auto` preference order. Adding one =
 * one entry here; `BackendName`, the CLI's `--backend` choices, the `--backend` validation and
 * `initBackend`'s auto order are all derived from this object.
 *
 * Light on purpose: it imports tfjs only as a type (each `load` gets the tf module from
 * ./index.ts), so the CLI can read BACKEND_NAMES without loading tfjs or wasm.
 */
import type * as TF from '@tensorflow/tfjs-core';
import type { KernelFixSet } from './kernels.js';
import { UserError } from '../util/errors.js';

export interface BackendSpec<N extends string = string> {
  /** the tfjs backend name (`tf.setBackend(name)`) */
  readonly name: N;
  /**
   * Make the tfjs backend registered (import its package). Resolves false when it is not
   * installed here; idempotent.
   */
  load(tf: typeof TF): Promise<boolean>;
  /** which of the kernel fixes of ./kernels.ts to install once it has started */
  readonly kernelFixes: KernelFixSet;
  /** why it was chosen (logged): when picked by `auto` (the earlier ones were unavailable) / when named */
  readonly reason: { readonly auto: string; readonly explicit: string };
  /** the error when it was asked for (explicitly, or as the last `auto` resort) and did not start */
  failure(): Error;
}

/** Declare a backend with its name kept as a literal type. */
function defineBackend<N extends string>(spec: BackendSpec<N>): BackendSpec<N> {
  return spec;
}

let nodeLoadError: string | undefined;

const tensorflow = defineBackend({
  name: 'tensorflow',
  /** Try to load tfjs-node (registers the `tensorflow` backend). False when not installed. */
  async load(tf) {
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
  },
  kernelFixes: 'none', // libtensorflow has all of them natively
  reason: { auto: '@tensorflow/tfjs-node', explicit: '@tensorflow/tfjs-node' },
  failure: () => new UserError(`--backend tensorflow: @tensorflow/tfjs-node is not usable here (${nodeLoadError ?? 'failed to start'})`),
});

const wasm = defineBackend({
  name: 'wasm',
  async load() {
    await import('@tensorflow/tfjs-backend-wasm');
    return true;
  },
  kernelFixes: 'wasm',
  reason: { auto: 'tfjs-node not installed', explicit: '--backend wasm' },
  failure: () => new UserError('--backend wasm: @tensorflow/tfjs-backend-wasm failed to start'),
});

const cpu = defineBackend({
  name: 'cpu',
  async load() {
    await import('@tensorflow/tfjs-backend-cpu');
    return true;
  },
  kernelFixes: 'cpu',
  reason: { auto: 'neither tfjs-node nor wasm available', explicit: '--backend cpu' },
  failure: () => new Error('the cpu backend failed to start'),
});

export const BACKENDS = {
  tensorflow,
  wasm,
  cpu,
} as const;

/** A concrete backend (what `initBackend` returns). */
export type ActiveBackend = keyof typeof BACKENDS;
/** What `--backend` accepts: a concrete backend or `auto` (the first of BACKEND_NAMES that starts). */
export type BackendName = 'auto' | ActiveBackend;

// Build-time check: every key equals its entry's `name` (a mismatch fails `npm run typecheck`).
const _keysMatchNames: { readonly [K in ActiveBackend]: BackendSpec<K> } = BACKENDS;
void _keysMatchNames;

/** Concrete backends in `auto` preference order (the CLI uses `choices: ['auto', ...BACKEND_NAMES]`). */
export const BACKEND_NAMES: readonly ActiveBackend[] = Object.freeze(Object.keys(BACKENDS) as ActiveBackend[]);

export function isBackendName(x: unknown): x is BackendName {
  return x === 'auto' || (typeof x === 'string' && Object.hasOwn(BACKENDS, x));
}
