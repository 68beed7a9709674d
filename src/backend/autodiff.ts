/**
 * TensorFlow.js's own gradient definitions, for code that differentiates with tf.grad / tf.grads /
 * tf.variableGrads: the kernel-fix tests (test/backend-kernels.test.ts) and the autodiff baseline
 * of scripts/bench-step.ts. Nothing vilm runs in production needs them: the model's backward pass
 * is written by hand (../model/model.ts) and the one custom-gradient op (`softmaxCrossEntropy`,
 * ./kernels.ts) carries its own gradient. Production code never imports this file.
 *
 *   registerStockGradients(): Promise<void>   // idempotent, per thread; throws when it cannot
 *
 * Why a function: vilm runs on @tensorflow/tfjs-core plus the cpu and wasm backends, not the
 * @tensorflow/tfjs umbrella (whose layers, converter, data and webgl parts are ~220 MB vilm has no
 * use for). tfjs-core's tf.grad/tf.variableGrads exist, but the per-kernel gradients they look up
 * are registered only by its ES-module sources (dist/register_all_gradients.js, whose extensionless
 * imports Node cannot load; the umbrella's Node bundle is what registered them before). So this
 * bundles exactly those sources with esbuild (a devDependency; ~0.3 s) and imports the result. The
 * bundle carries its own copy of the tfjs-core internals the gradients call; tfjs keeps its engine,
 * tensor class and kernel/gradient registries on the global object precisely so that copies share
 * them. The umbrella's chained ops (`tensor.toFloat()` …) are not registered: vilm does not use them.
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';

/** Register tfjs-core's stock gradients for every kernel in this thread (a no-op when already there). */
export async function registerStockGradients(): Promise<void> {
  // already registered: an earlier call, or @tensorflow/tfjs-node (it loads the umbrella, which registers them)
  if (tf.getGradient('Sum') !== undefined) return;
  const require = createRequire(import.meta.url);
  const entry = require.resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch (e) {
    throw new Error(`tfjs autodiff needs esbuild (a devDependency: npm ci without --omit=dev) to load tfjs-core's gradients: ${(e as Error).message.split('\n')[0]}`);
  }
  const out = await esbuild.build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'node', target: 'node20', write: false, logLevel: 'silent' });
  const code = out.outputFiles[0].text;
  await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`);
  if (tf.getGradient('Sum') === undefined) throw new Error(`${entry} ran but registered no gradients`);
}
