/**
 * Training-step benchmark (issue 3, "Speed"): `npx tsx scripts/bench-step.ts [--backend wasm] [--steps 5] [--baseline-steps 2]`
 *
 * In one run, on one backend:
 *  1. peak: GFLOP/s of the big matmul [4096,64]×[64,10000] (kernel time; wasm runs synchronously),
 *     measured before and after the model runs, best of both;
 *  2. vilm: the seed model (configs/tiny.yaml) computeGradients on a 16 × 129 batch
 *     (2,048 input positions = one micro-batch), `--steps` timed steps after a warm-up, each on
 *     new weights as in training (one weight changes; the model re-uploads what changed bits).
 *  Every figure is the BEST of its repeats (the machines are shared and noisy, and best-of is the
 *  least noisy estimate of what the code can do); medians are in the JSON too.
 *  3. MFU = model FLOPs/s ÷ peak. Model FLOPs per step = 6 · N_mm · tokens + attention, where
 *     N_mm = parameters of the matrices used in matmuls (q/k/v/o, FFN, head: 787,456 for the seed
 *     model; the embedding lookup does no FLOPs) and attention = 12 · T² · d_model · n_layers · rows
 *     (q·kᵀ and att·v: 2·T²·d each forward, backward twice that; the causal half is not discounted);
 *  4. baseline: the same model written the straightforward way — plain tfjs ops, batched rank-4
 *     attention matmuls, tf.losses.softmaxCrossEntropy on one-hot labels, gradients by
 *     tf.variableGrads (tfjs's stock gradients, src/backend/autodiff.ts) — on the STOCK kernels (setStockKernels(true)) except the wasm gather
 *     gradient, without which it cannot run at all. Its loss and gradient are checked against vilm's.
 *
 * Prints a table and writes bench-results/bench-step.json.
 *
 * SHAPE MODE — the shapes training really computes:
 *   npx tsx scripts/bench-step.ts --shapes-from configs/tiny.yaml[,configs/viwiki.yaml] [--buckets 50,100,150,200,250 | --data DIR]
 *                                 [--set train.micro_shards=4 …] [--steps 5] [--out bench-results/bench-step-shapes.json]
 *  A batch of bucket L has R = max(1, ⌊train.batch_tokens / L⌋) rows (src/data/sampler.ts rowsFor); it is
 *  cut into M = train.micro_shards micro-shards by row (src/fleet/shard-tree.ts shardRange), each
 *  micro-shard in row chunks of ⌊train.max_micro_batch_tokens / L⌋ rows, and one thread computing
 *  the whole batch makes one computeGradientsEach call per group of consecutive chunks of ≤
 *  max_micro_batch_tokens tokens (src/fleet/worker/compute.ts taskCalls). For every bucket this mode
 *  lists the micro-shard sizes and model calls (chunk rows × L, e.g. 2+2+2+2×251: four 2-row chunks
 *  in one call; L − 1 input positions a row) and times them as training runs them: each of
 *  `--steps` rounds computes every bucket's batch once, its calls in order, after changing one
 *  weight — every step brings new weights, which the batch's first call uploads and the later
 *  calls reuse (src/model/weights.ts WeightCache). It reports per bucket (one thread computing
 *  the whole batch, best of rounds: the "ceiling" of scripts/bench-e2e.ts) and per call shape
 *  (best, on new weights and on the weights of the call before) ms, tokens/s (input positions),
 *  GFLOP/s and MFU against the same matmul
 *  peak and FLOP model as above. Buckets: --buckets, else DIR/manifest.json's, else `vilm data
 *  prepare`'s defaults; those above the model's max_len are dropped. With --data, a "data mix" line
 *  weighs the buckets by the train split's batches per epoch. Writes --out (JSON).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, setStockKernels, type BackendName } from '../src/backend/index.ts';
import { registerStockGradients } from '../src/backend/autodiff.ts';
import { applyOverrides, loadConfig, type ModelConfig, type TrainConfig } from '../src/config/index.ts';
import { createModel } from '../src/model/model.ts';
import { initParams, type Layout } from '../src/model/layout.ts';
import type { TokenBatch } from '../src/model/types.ts';
import { writeFileAtomic } from '../src/util/atomic.ts';
import { Rng } from '../src/util/rng.ts';
import { rowsFor } from '../src/data/sampler.ts';
import { DEFAULT_BUCKETS } from '../src/data/prepare/prepare.ts';
import type { Manifest } from '../src/data/types.ts';
import { shardRange } from '../src/fleet/shard-tree.ts';
import { taskCalls } from '../src/fleet/worker/compute.ts';

/**
 * New weights, as every training step brings (the model reuses an upload only for the same bits):
 * the last weight moves between two values, so consecutive calls never see the same bits.
 */
let weightsVersion = 0;
function newWeights(params: Float32Array): void {
  params[params.length - 1] += ++weightsVersion % 2 ? 1e-3 : -1e-3;
}

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
}
const backendArg = arg('backend', 'auto') as BackendName;
const steps = Number(arg('steps', '5'));
const baselineSteps = Number(arg('baseline-steps', '2'));
const ROWS = 16, SEQ = 129; // 16 × 128 input positions = 2,048 tokens per micro-batch

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// ---------------------------------------------------------------------------------------------
// 1. peak matmul

function peakMatmul(): { gflops: number; ms: number } {
  const a = tf.randomNormal([4096, 64]), b = tf.randomNormal([64, 10000]);
  const flops = 2 * 4096 * 64 * 10000;
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    const c = tf.matMul(a, b);
    if (tf.getBackend() !== 'wasm' && tf.getBackend() !== 'cpu') c.dataSync(); // async backends: wait for the result
    times.push(performance.now() - t0);
    c.dispose();
  }
  tf.dispose([a, b]);
  const ms = Math.min(...times.slice(2));
  return { gflops: flops / ms / 1e6, ms };
}

// ---------------------------------------------------------------------------------------------
// FLOP count

function modelFlops(cfg: ModelConfig, layout: Layout, rows: number, T: number): { perStep: number; nMatmul: number } {
  let nMatmul = 0;
  for (const p of layout.params) if (p.kind === 'matrix') nMatmul += p.size;
  if (cfg.tie_embeddings) nMatmul += layout.embedding.size; // the embedding doubles as the head
  const tokens = rows * T;
  const attention = 12 * T * T * cfg.d_model * cfg.n_layers * rows;
  return { perStep: 6 * nMatmul * tokens + attention, nMatmul };
}

// ---------------------------------------------------------------------------------------------
// 4. the straightforward baseline (autodiff, plain ops)

function baselineLoss(cfg: ModelConfig, vars: Map<string, tf.Variable>, batch: TokenBatch): () => tf.Scalar {
  const { rows: B, seqLen } = batch, T = seqLen - 1, d = cfg.d_model, H = cfg.n_heads, dk = d / H, V = cfg.vocab_size;
  const inputs = new Int32Array(B * T), labels = new Int32Array(B * T);
  for (let r = 0; r < B; r++) for (let t = 0; t < T; t++) { inputs[r * T + t] = batch.tokens[r * seqLen + t]; labels[r * T + t] = batch.tokens[r * seqLen + t + 1]; }
  const w = (n: string) => vars.get(n)!;
  const half = dk / 2;
  const freqs = Array.from({ length: half }, (_, i) => Math.pow(cfg.rope_theta, (-2 * i) / dk));
  const ang = Array.from({ length: T }, (_, t) => [...freqs, ...freqs].map((f) => t * f));
  const cos = tf.tensor2d(ang.map((r) => r.map(Math.cos))), sin = tf.tensor2d(ang.map((r) => r.map(Math.sin))); // [T, dk]
  const mask = tf.linalg.bandPart(tf.ones([T, T]), -1, 0);                                                      // lower triangle
  const ln = (x: tf.Tensor, p: string) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, cfg.norm_eps))), w(`${p}.weight`)), w(`${p}.bias`));
  };
  const rope = (x: tf.Tensor) => { // x [B, H, T, dk], rotate_half
    const x1 = tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, half]), x2 = tf.slice(x, [0, 0, 0, half], [-1, -1, -1, half]);
    return tf.add(tf.mul(x, cos), tf.mul(tf.concat([tf.neg(x2), x1], -1), sin));
  };
  const heads = (x: tf.Tensor) => tf.transpose(tf.reshape(x, [B, T, H, dk]), [0, 2, 1, 3]);
  const gelu = (x: tf.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))))));
  return () => {
    let x = tf.gather(w('tok_embeddings.weight'), tf.tensor1d(inputs, 'int32')); // [N, d]
    for (let l = 0; l < cfg.n_layers; l++) {
      const p = `layers.${l}`;
      const h = ln(x, `${p}.attention_norm`);
      const q = rope(heads(tf.matMul(h, w(`${p}.attention.wq.weight`))));
      const k = rope(heads(tf.matMul(h, w(`${p}.attention.wk.weight`))));
      const v = heads(tf.matMul(h, w(`${p}.attention.wv.weight`)));
      const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(dk)), tf.mul(tf.sub(1, mask), -1e9));
      const o = tf.reshape(tf.transpose(tf.matMul(tf.softmax(scores), v), [0, 2, 1, 3]), [B * T, d]);
      x = tf.add(x, tf.matMul(o, w(`${p}.attention.wo.weight`)));
      const h2 = ln(x, `${p}.ffn_norm`);
      x = tf.add(x, tf.matMul(gelu(tf.matMul(h2, w(`${p}.feed_forward.w1.weight`))), w(`${p}.feed_forward.w2.weight`)));
    }
    const logits = tf.matMul(ln(x, 'norm'), w('output.weight'));
    const onehot = tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), V), 'float32');
    const weights = tf.tensor1d(labels.map((t) => (t === 0 ? 0 : 1)), 'float32');
    return tf.losses.softmaxCrossEntropy(onehot, logits, weights, 0, tf.Reduction.SUM) as tf.Scalar;
  };
}

// ---------------------------------------------------------------------------------------------
// SHAPE MODE: the call shapes a training step really computes (see the header)

/** Every value of a repeatable flag (`--set a --set b`). */
function argAll(name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < process.argv.length - 1; i++) if (process.argv[i] === `--${name}`) out.push(process.argv[i + 1]);
  return out;
}

/**
 * One model call of a step: chunks of `chunkRows` rows each (one per entry, computed together as
 * segments of one pass by computeGradientsEach) of `seqLen` tokens (seqLen − 1 input positions).
 */
interface CallShape { chunkRows: number[]; seqLen: number }

/** "2+2+2+2×251" */
function callKey(c: CallShape): string {
  return `${c.chunkRows.join('+')}×${c.seqLen}`;
}

/** What one batch of bucket `bucket` becomes in training. */
interface BucketPlan {
  bucket: number;
  /** rows of the batch: max(1, ⌊batch_tokens / bucket⌋) */
  batchRows: number;
  /** rows of each micro-shard, in shard order (0: an empty shard, no call) */
  shardRows: number[];
  /** model calls of the whole batch (one thread computing it as one task): shape and how many times it occurs */
  calls: (CallShape & { count: number })[];
}

/** The micro-shards and model calls of a batch of bucket `L` under `train` (the same arithmetic as the sampler, the shard tree and computeTask). */
function planBucket(train: TrainConfig, L: number): BucketPlan {
  const R = rowsFor(train.batch_tokens, L), M = train.micro_shards;
  const shardRows: number[] = [];
  for (let i = 0; i < M; i++) { const [r0, r1] = shardRange(R, M, i); shardRows.push(r1 - r0); }
  const calls = new Map<string, CallShape & { count: number }>();
  for (const call of taskCalls(R, M, 0, M, L, train.max_micro_batch_tokens)) {
    const shape: CallShape = { chunkRows: call.map((c) => c.r1 - c.r0), seqLen: L };
    const key = callKey(shape);
    calls.set(key, { ...shape, count: (calls.get(key)?.count ?? 0) + 1 });
  }
  return { bucket: L, batchRows: R, shardRows, calls: [...calls.values()] };
}

/** "6×3 + 2×4" for [3,3,4,3,3,4,3,3] (count × value, values ascending). */
function grouped(xs: number[], unit = ''): string {
  const m = new Map<number, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return [...m.entries()].sort((a, b) => a[0] - b[0]).map(([v, n]) => `${n}×${v}${unit}`).join(' + ');
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((v, c) => (c === 0 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join('  '));
}

async function shapesMain(): Promise<void> {
  const specs = arg('shapes-from', '').split(',').filter(Boolean);
  const sets = argAll('set');
  const dataDir = arg('data', '');
  const out = arg('out', 'bench-results/bench-step-shapes.json');
  const manifest: Manifest | null = dataDir ? JSON.parse(readFileSync(path.join(dataDir, 'manifest.json'), 'utf8')) as Manifest : null;
  const bucketSpec = arg('buckets', '');
  const requested = bucketSpec ? bucketSpec.split(',').map((x) => Number(x.trim())) : manifest ? manifest.buckets : [...DEFAULT_BUCKETS];
  if (requested.some((b) => !Number.isInteger(b) || b < 2)) throw new Error(`--buckets: integers ≥ 2 expected, got ${bucketSpec}`);
  if (!(steps >= 1)) throw new Error(`--steps: at least 1, got ${steps}`);
  const backend = await initBackend(backendArg);

  const peak0 = peakMatmul();
  process.stderr.write(`peak matmul (before): ${peak0.gflops.toFixed(2)} GFLOP/s\n`);

  const configs = specs.map((file) => {
    const cfg = sets.length > 0 ? applyOverrides(loadConfig(file), sets) : loadConfig(file);
    const model = createModel(cfg.model);
    const params = initParams(model.layout, cfg.model, 1);
    const buckets = requested.filter((b) => b <= cfg.model.max_len);
    const plans = buckets.map((L) => planBucket(cfg.train, L));
    // distinct call shapes of this config, each with a random batch; each bucket's calls in order
    const rng = new Rng(1);
    const shapes = new Map<string, { shape: CallShape; batches: TokenBatch[]; fresh: number[]; warm: number[] }>();
    const order = plans.map((p) => p.calls.flatMap((c) => {
      const key = callKey(c);
      if (!shapes.has(key)) {
        const batches = c.chunkRows.map((rows): TokenBatch => ({ rows, seqLen: c.seqLen, tokens: new Uint16Array(rows * c.seqLen).map(() => 1 + rng.int(cfg.model.vocab_size - 1)) }));
        shapes.set(key, { shape: { chunkRows: c.chunkRows, seqLen: c.seqLen }, batches, fresh: [], warm: [] });
      }
      return Array.from({ length: c.count }, () => shapes.get(key)!);
    }));
    const batchTimes = plans.map((): number[] => []);
    return { file, cfg, model, params, buckets, dropped: requested.filter((b) => b > cfg.model.max_len), plans, shapes, order, batchTimes };
  });

  // warm-up every bucket once, then `steps` rounds interleaved over all buckets (noise hits all alike)
  for (const c of configs) for (const calls of c.order) { newWeights(c.params); for (const s of calls) c.model.computeGradientsEach(c.params, s.batches); }
  for (let i = 0; i < steps; i++) {
    for (const c of configs) c.order.forEach((calls, b) => {
      newWeights(c.params);
      let batchMs = 0;
      calls.forEach((s, k) => {
        const t0 = performance.now();
        c.model.computeGradientsEach(c.params, s.batches);
        const ms = performance.now() - t0;
        (k === 0 ? s.fresh : s.warm).push(ms);
        batchMs += ms;
      });
      c.batchTimes[b].push(batchMs);
      if (i === steps - 1) process.stderr.write(`${path.basename(c.file)} bucket ${c.plans[b].bucket}: best ${Math.min(...c.batchTimes[b]).toFixed(1)} ms a batch\n`);
    });
  }
  const peak1 = peakMatmul();
  process.stderr.write(`peak matmul (after): ${peak1.gflops.toFixed(2)} GFLOP/s\n`);
  const peak = peak1.gflops > peak0.gflops ? peak1 : peak0;

  const results = configs.map((c) => {
    const shapeRows = [...c.shapes.entries()].map(([key, s]) => {
      const T = s.shape.seqLen - 1, rows = s.shape.chunkRows.reduce((a, r) => a + r, 0), positions = rows * T;
      const flops = modelFlops(c.cfg.model, c.model.layout, rows, T).perStep;
      const all = [...s.fresh, ...s.warm], ms = Math.min(...all);
      const gflops = flops / ms / 1e6;
      return {
        shape: key, chunkRows: s.shape.chunkRows, seqLen: s.shape.seqLen, positions, flops, ms, medianMs: median(all),
        newWeightsMs: s.fresh.length ? Math.min(...s.fresh) : null, sameWeightsMs: s.warm.length ? Math.min(...s.warm) : null,
        allMs: all, tokensPerSec: positions / (ms / 1000), gflops, mfu: gflops / peak.gflops,
      };
    });
    const byKey = new Map(shapeRows.map((r) => [r.shape, r]));
    const buckets = c.plans.map((p, b) => {
      let flops = 0;
      for (const call of p.calls) flops += call.count * byKey.get(callKey(call))!.flops;
      const ms = Math.min(...c.batchTimes[b]), medianMs = median(c.batchTimes[b]);
      const positions = p.batchRows * (p.bucket - 1), gflops = flops / ms / 1e6;
      return {
        ...p, positions, paddedTokens: p.batchRows * p.bucket, flops,
        batchMs: ms, batchMedianMs: medianMs, allBatchMs: c.batchTimes[b], tokensPerSec: positions / (ms / 1000), gflops, mfu: gflops / peak.gflops,
      };
    });
    // the train split's batches per epoch, per bucket (the sampler's plan): the expected mix of a run
    let dataMix: { batchesPerEpoch: Record<string, number>; tokensPerSec: number; mfu: number } | undefined;
    if (manifest) {
      const hist = manifest.bucketHistogram.train;
      const batchesPerEpoch: Record<string, number> = {};
      let pos = 0, ms = 0, flops = 0;
      for (const b of buckets) {
        const n = Math.ceil((hist[String(b.bucket)] ?? 0) / b.batchRows);
        batchesPerEpoch[b.bucket] = n;
        pos += n * b.positions; ms += n * b.batchMs; flops += n * b.flops;
      }
      if (ms > 0) dataMix = { batchesPerEpoch, tokensPerSec: pos / (ms / 1000), mfu: flops / ms / 1e6 / peak.gflops };
    }
    return {
      config: c.file, overrides: sets,
      train: { batch_tokens: c.cfg.train.batch_tokens, micro_shards: c.cfg.train.micro_shards, max_micro_batch_tokens: c.cfg.train.max_micro_batch_tokens },
      model: { d_model: c.cfg.model.d_model, n_layers: c.cfg.model.n_layers, vocab_size: c.cfg.model.vocab_size, max_len: c.cfg.model.max_len },
      droppedBuckets: c.dropped, shapes: shapeRows, buckets, dataMix,
    };
  });

  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  for (const r of results) {
    console.log(`\n${r.config}${r.overrides.length ? ` (${r.overrides.join(' ')})` : ''}: batch_tokens ${r.train.batch_tokens}, micro_shards ${r.train.micro_shards}, max_micro_batch_tokens ${r.train.max_micro_batch_tokens}${r.droppedBuckets.length ? `; buckets above max_len dropped: ${r.droppedBuckets.join(',')}` : ''}`);
    printTable([
      ['bucket', 'batch rows×L', 'micro-shards (rows)', 'model calls (rows×L)', 'ms/batch', 'tokens/s', 'GFLOP/s', 'MFU'],
      ...r.buckets.map((b) => [
        String(b.bucket), `${b.batchRows}×${b.bucket}`, grouped(b.shardRows),
        b.calls.map((c) => `${c.count}× ${callKey(c)}`).join(', '),
        b.batchMs.toFixed(0), b.tokensPerSec.toFixed(0), b.gflops.toFixed(2), pct(b.mfu),
      ]),
    ]);
    console.log('');
    printTable([
      ['call shape', 'positions', 'ms, new weights', 'ms, same weights', 'ms (median)', 'tokens/s', 'GFLOP/s', 'MFU'],
      ...r.shapes.map((s) => [s.shape, String(s.positions), s.newWeightsMs?.toFixed(1) ?? '–', s.sameWeightsMs?.toFixed(1) ?? '–', s.medianMs.toFixed(1), s.tokensPerSec.toFixed(0), s.gflops.toFixed(2), pct(s.mfu)]),
    ]);
    if (r.dataMix) console.log(`data mix (${dataDir}, train batches per epoch ${JSON.stringify(r.dataMix.batchesPerEpoch)}): ${r.dataMix.tokensPerSec.toFixed(0)} tokens/s, MFU ${pct(r.dataMix.mfu)}`);
  }
  console.log(`\nbackend ${backend}; peak matmul ${peak.gflops.toFixed(2)} GFLOP/s (best of before ${peak0.gflops.toFixed(2)} / after ${peak1.gflops.toFixed(2)}); best of ${steps} rounds; tokens = input positions (rows × (L − 1)); one thread, model calls only`);
  const result = {
    mode: 'shapes', backend, date: new Date().toISOString(), statistic: 'best of repeats', steps,
    peakMatmul: { shape: '[4096,64]x[64,10000]', gflops: peak.gflops, ms: peak.ms, before: peak0.gflops, after: peak1.gflops },
    flops: { formula: '6·N_mm·tokens + 12·T²·d·layers·rows' },
    data: dataDir || null, configs: results,
  };
  await writeFileAtomic(out, JSON.stringify(result, null, 2) + '\n');
  console.log(`wrote ${out}`);
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const backend = await initBackend(backendArg);
  const cfg = loadConfig('configs/tiny.yaml').model;
  if (cfg.norm !== 'layernorm' || cfg.rope_style !== 'rotate_half' || cfg.bias || cfg.tie_embeddings || cfg.activation !== 'gelu_tanh') {
    throw new Error('bench-step: the baseline is written for the seed architecture of configs/tiny.yaml');
  }
  const model = createModel(cfg);
  const params = initParams(model.layout, cfg, 1);
  const rng = new Rng(1);
  const batch: TokenBatch = { rows: ROWS, seqLen: SEQ, tokens: new Uint16Array(ROWS * SEQ).map(() => 1 + rng.int(cfg.vocab_size - 1)) };
  const T = SEQ - 1, tokens = ROWS * T;
  const { perStep, nMatmul } = modelFlops(cfg, model.layout, ROWS, T);

  const peak0 = peakMatmul();
  let peak = peak0;
  process.stderr.write(`peak matmul (before): ${peak0.gflops.toFixed(2)} GFLOP/s\n`);

  // vilm
  let ours = model.computeGradients(params, batch); // warm-up (tables, XNNPACK operator caches)
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    newWeights(params);
    const t0 = performance.now();
    ours = model.computeGradients(params, batch);
    times.push(performance.now() - t0);
  }
  const vilmMs = Math.min(...times), vilmMedianMs = median(times);
  const peak1 = peakMatmul();
  process.stderr.write(`peak matmul (after): ${peak1.gflops.toFixed(2)} GFLOP/s\n`);
  if (peak1.gflops > peak.gflops) peak = peak1;
  process.stderr.write(`vilm step: ${vilmMs.toFixed(0)} ms (${times.map((t) => t.toFixed(0)).join(', ')})\n`);

  // baseline on stock kernels, differentiated by tfjs's own gradients
  await registerStockGradients();
  setStockKernels(true);
  const vars = new Map<string, tf.Variable>();
  for (const p of model.layout.params) vars.set(p.name, tf.variable(tf.tensor(params.subarray(p.offset, p.offset + p.size), p.shape), true, p.name));
  const lossFn = baselineLoss(cfg, vars, batch);
  const baseTimes: number[] = [];
  let baseLoss = 0, baseGradDiff = 0, gradScale = 0;
  for (let i = 0; i < baselineSteps + 1; i++) {
    const t0 = performance.now();
    const { value, grads } = tf.variableGrads(lossFn);
    const flat = new Float32Array(model.layout.total);
    for (const p of model.layout.params) flat.set(grads[p.name].dataSync() as Float32Array, p.offset);
    baseLoss = value.dataSync()[0];
    tf.dispose([value, ...Object.values(grads)]);
    const ms = performance.now() - t0;
    if (i > 0) baseTimes.push(ms); // first call is the warm-up
    process.stderr.write(`baseline step ${i}: ${ms.toFixed(0)} ms${i === 0 ? ' (warm-up)' : ''}\n`);
    if (i === 0) {
      for (let j = 0; j < flat.length; j++) { baseGradDiff = Math.max(baseGradDiff, Math.abs(flat[j] - ours.grad[j])); gradScale = Math.max(gradScale, Math.abs(ours.grad[j])); }
    }
  }
  setStockKernels(false);
  tf.dispose([...vars.values()]);
  const baseMs = Math.min(...baseTimes), baseMedianMs = median(baseTimes);

  const vilmTokS = tokens / (vilmMs / 1000), baseTokS = tokens / (baseMs / 1000);
  const vilmGflops = perStep / vilmMs / 1e6, baseGflops = perStep / baseMs / 1e6;
  const result = {
    backend, date: new Date().toISOString(),
    microBatch: { rows: ROWS, positions: T, tokens },
    peakMatmul: { shape: '[4096,64]x[64,10000]', gflops: peak.gflops, ms: peak.ms, before: peak0.gflops, after: peak1.gflops },
    statistic: 'best of repeats',
    flops: { perStep, nMatmulParams: nMatmul, formula: '6·N_mm·tokens + 12·T²·d·layers·rows' },
    vilm: { msPerStep: vilmMs, medianMsPerStep: vilmMedianMs, allMs: times, tokensPerSec: vilmTokS, gflops: vilmGflops, mfu: vilmGflops / peak.gflops, lossPerToken: ours.lossSum / ours.tokenCount },
    baseline: { msPerStep: baseMs, medianMsPerStep: baseMedianMs, allMs: baseTimes, tokensPerSec: baseTokS, gflops: baseGflops, mfu: baseGflops / peak.gflops, lossPerToken: baseLoss / ours.tokenCount, maxGradDiff: baseGradDiff, gradScale },
    speedup: baseMs / vilmMs,
    targets: { mfu: 0.4, speedup: 2 },
  };
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  const rows = [
    ['', 'ms/step', 'tokens/s', 'GFLOP/s', 'MFU', 'loss/token'],
    ['peak matmul', peak.ms.toFixed(1), '', peak.gflops.toFixed(2), '100 %', ''],
    ['vilm (manual backprop, fixes)', vilmMs.toFixed(0), vilmTokS.toFixed(0), vilmGflops.toFixed(2), pct(result.vilm.mfu), result.vilm.lossPerToken.toFixed(4)],
    ['baseline (autodiff, stock)', baseMs.toFixed(0), baseTokS.toFixed(0), baseGflops.toFixed(2), pct(result.baseline.mfu), result.baseline.lossPerToken.toFixed(4)],
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((v, c) => (c === 0 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join('  '));
  console.log(`best of ${steps} (vilm) / ${baselineSteps} (baseline) steps; peak best of before/after`);
  console.log(`backend ${backend}; ${tokens} tokens/micro-batch (${ROWS}×${T}); model ${(perStep / 1e9).toFixed(2)} GFLOP/step (N_mm ${nMatmul})`);
  console.log(`speedup vs baseline: ${result.speedup.toFixed(2)}× (target ≥ 2×); MFU ${pct(result.vilm.mfu)} (target ≥ 40 %)`);
  console.log(`baseline vs vilm gradient: max |diff| ${baseGradDiff.toExponential(2)} (max |grad| ${gradScale.toExponential(2)})`);
  await writeFileAtomic('bench-results/bench-step.json', JSON.stringify(result, null, 2) + '\n');
  console.log('wrote bench-results/bench-step.json');
}

(process.argv.includes('--shapes-from') ? shapesMain() : main()).catch((e) => { console.error(e); process.exit(1); });
