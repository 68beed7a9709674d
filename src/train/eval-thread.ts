/**
 * An evaluation thread of ./parallel-eval.ts (piscina): one model replica (its own backend) built
 * on the first task, the weights read from the SharedArrayBuffer the scorer filled once. A chunk
 * task is scored with the same per-sequence code as the in-process path (scoreEach); the answer is
 * one Float64Array [nats…, tokens…], transferred (not copied).
 */
import { move } from 'piscina';
import { workerData } from 'node:worker_threads';
import { loadReplicaModule } from '../fleet/worker/replica.js';
import type { LanguageModel } from '../model/api.js';
import { chunkSequences, scoreEach, type EvalThreadData, type EvalThreadTask } from './parallel-eval.js';

const data = workerData as EvalThreadData;
const weights = new Float32Array(data.weights);
let model: Promise<LanguageModel> | undefined;

export default async function run(task: EvalThreadTask): Promise<Float64Array | null> {
  model ??= loadReplicaModule(data.replicaModule).then((m) => m.createReplica({ model: data.model, backend: data.backend }));
  const m = await model;
  if ('warm' in task) return null;
  const seqs = chunkSequences(task);
  const k = seqs.length;
  const out = new Float64Array(2 * k);
  scoreEach(m, weights, seqs, { nats: out.subarray(0, k), tokens: out.subarray(k) });
  return move(out) as Float64Array;
}
