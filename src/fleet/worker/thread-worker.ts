/**
 * A piscina worker thread: one model replica (its own backend instance) per thread. The weights
 * live in a SharedArrayBuffer written by the owner between steps; `control[0]` holds their
 * version (optimizer steps applied). A task names the version it needs: a thread that sees another
 * version (before or after computing) answers `stale` instead of a gradient from the wrong weights.
 * Results go back as transferred buffers (Piscina.move), never copied.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { workerData } from 'node:worker_threads';
import type { LanguageModel } from '../../model/api.js';
import type { ReplicaSpec, TaskMsg, ThreadReply } from '../contract.js';
import { computeTask } from './compute.js';
import { loadReplicaModule } from './replica.js';

export interface ThreadWorkerData {
  spec: ReplicaSpec;
  /** Float32 weights, layout.total floats */
  weights: SharedArrayBuffer;
  /** Int32 [version] */
  control: SharedArrayBuffer;
  /** the replica module (./replica.ts); undefined: the real model */
  replicaModule?: string;
}

const data = workerData as ThreadWorkerData;
const weights = new Float32Array(data.weights);
const control = new Int32Array(data.control);
// The replica is built while the thread starts (piscina counts a thread as started once this
// module has loaded), so a started thread is a warm one — a replacement for a crashed thread too.
// A failure is kept for the first task to report (a thread failing at start would make piscina
// stop replacing threads).
const model: Promise<LanguageModel> = loadReplicaModule(data.replicaModule).then((m) => m.createReplica(data.spec));
await model.catch(() => undefined);

/** Transfers the result's buffers instead of structured-cloning them. */
class MovedReply {
  constructor(private readonly reply: ThreadReply) {}
  get [transferableSymbol](): ArrayBufferLike[] {
    if (this.reply.stale) return [];
    const r = this.reply.result;
    return [r.rest.buffer, r.embRows.buffer, r.embValues.buffer];
  }
  get [valueSymbol](): ThreadReply { return this.reply; }
}

/** `{ warm: true }`: wait for the replica (the pool sends one to every thread at start). */
export default async function run(task: TaskMsg | { warm: true }): Promise<MovedReply | ThreadReply | null> {
  const m = await model;
  if (!('taskId' in task)) return null;
  const before = Atomics.load(control, 0);
  if (before !== task.version) return { stale: true, version: before };
  const result = computeTask(m, weights, task);
  const after = Atomics.load(control, 0);
  if (after !== task.version) return { stale: true, version: after };
  return move(new MovedReply({ stale: false, result })) as MovedReply;
}
