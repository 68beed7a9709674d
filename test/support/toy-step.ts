/**
 * One step's gradient with the toy model (./toy-model.ts), computed the way a fleet of `workers`
 * would: the scheduler's task plan, every task through the real computeTask, the block sums reduced
 * in the fixed tree with the codec's node rule. Tests compare these across plans and codecs.
 */
import { createHash } from 'node:crypto';
import { loadConfig, type GradCodecName } from '../../src/config/index.ts';
import type { ResultMsg, TaskMsg } from '../../src/fleet/contract.ts';
import { finalizeGradient, nodeRule, reduceNode, resultToGradSum, type GradSum } from '../../src/fleet/reduce.ts';
import { blockKey, blockShards, planBlocks, rootBlock, shardRange } from '../../src/fleet/shard-tree.ts';
import { computeTask } from '../../src/fleet/worker/compute.ts';
import { buildLayout, initParams, type Layout } from '../../src/model/layout.ts';
import type { LanguageModel } from '../../src/model/api.ts';
import { Rng } from '../../src/util/rng.ts';
import { createToyModel } from './toy-model.ts';

const sha = (a: Float32Array) => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

export interface ToyStep {
  model: LanguageModel;
  layout: Layout;
  /** the step gradient's sha256 and its root sum, for `workers` workers under `codec` */
  gradient(workers: number, codec: GradCodecName, onResult?: (r: ResultMsg) => void): { sha: string; root: GradSum };
}

/** A toy model (vocab 64, d 8) and a batch of R rows of T tokens (random lengths, pad after) cut into m micro-shards; one row per model call. */
export function toyStep(R: number, T: number, m: number): ToyStep {
  const cfg = loadConfig('configs/test.yaml');
  const model = createToyModel({ ...cfg.model, vocab_size: 64, d_model: 8 });
  const layout = buildLayout(model.config);
  const w = initParams(layout, model.config, 5);
  const rng = new Rng(9);
  const tokens = new Uint16Array(R * T);
  for (let r = 0; r < R; r++) { const len = 3 + rng.int(T - 3); for (let t = 0; t < len; t++) tokens[r * T + t] = 1 + rng.int(63); }
  const { d_model: d, vocab_size: V } = model.config;
  return {
    model, layout,
    gradient(workers, codec, onResult) {
      const results = new Map<string, GradSum | null>();
      for (const b of planBlocks(m, workers)) {
        const [s0, s1] = blockShards(b, m);
        const r0 = shardRange(R, m, s0)[0], r1 = shardRange(R, m, s1 - 1)[1];
        const task: TaskMsg = {
          step: 0, version: 0, taskId: 1, level: b.level, index: b.index, shards: m, batchRows: R, seqLen: T, rowStart: r0,
          tokens: tokens.slice(r0 * T, r1 * T), maxTokens: T, codec, // one row per model call: shards of two rows are chunked
        };
        const res = computeTask(model, w, task);
        onResult?.(res);
        results.set(blockKey(b), resultToGradSum(res));
      }
      const root = reduceNode(rootBlock(m), m, nodeRule(layout, d, codec), (b) => results.get(blockKey(b)))!;
      return { sha: sha(finalizeGradient(root, V, d)), root };
    },
  };
}
