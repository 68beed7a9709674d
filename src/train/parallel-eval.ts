/**
 * Forward-only scoring of many sequences, spread over worker threads, with a result that is
 * bit-identical whatever the number of threads.
 *
 *   const { nats, tokens } = await scoreInThreads({ model: cfg.model, backend: 'wasm', weights, sequences, threads: 2 });
 *   // nats[i]: summed next-token loss of sequences[i], tokens[i]: its predicted (non-pad) targets
 *
 *   const scorer = await SequenceScorer.open({ model: cfg.model, backend: 'wasm', weights, threads: 4 });
 *   try { for (const group of groups) use(await scorer.score(group)); } finally { await scorer.close(); }
 *
 * Why it does not depend on the thread count: every sequence (a row `<bos> … [<eos>]`, no padding,
 * 2 ≤ length ≤ max_len) is scored alone — one `model.evaluate(weights, {tokens, rows: 1, seqLen})`
 * per sequence — and the wasm model is deterministic (src/model/model.ts: the same inputs give
 * bitwise the same outputs in any thread). So sequence i's (nats, tokens) does not depend on which
 * thread scored it or what else that thread scored, and the caller adds them in input order in
 * float64 (src/train/validation.ts, src/train/eval.ts): the totals are the same bytes for 1, 2 or 8
 * threads, and for the in-process path (threads ≤ 1), which runs the very same per-sequence code.
 * Give an explicit backend (not `auto` in a process that switched backends) for that guarantee.
 *
 * Threads: `threads` ≥ 2 starts that many piscina threads (./eval-thread-entry.mjs registers the tsx
 * loader, ./eval-thread.ts builds one model replica per thread with the fleet's createReplica:
 * its own backend and model). The weights are copied ONCE per scorer into a SharedArrayBuffer that
 * every thread reads (no copy per task). A call cuts the sequences into contiguous chunks of about
 * `total tokens / (threads · CHUNKS_PER_THREAD)` tokens (within [MIN_CHUNK_TOKENS, MAX_CHUNK_TOKENS])
 * and queues them all: an idle thread takes the next chunk (dynamic: a slow thread does not hold
 * the rest back). Each chunk's tokens are transferred to the thread, its scores transferred back.
 * close() destroys the threads (no handle left: the process can exit); scoreInThreads closes its
 * scorer itself, also on error. VILM_EVAL_THREAD_ENTRY overrides the thread module (a bundled build,
 * as VILM_THREAD_ENTRY does for src/fleet/thread-pool.ts).
 *
 * Cost: model.evaluate uploads (and transposes) every weight matrix on each call, so one pass per
 * sequence pays that once per sequence where a multi-row batch pays it once per batch. Measured
 * for the seed model (configs/tiny.yaml, wasm, 250-token rows, on a loaded 2-core machine, noisy):
 * a 2-token pass ≈ 40–90 ms, rows = 1 ≈ 0.65–0.8× the tokens/s of rows = 8; 2 threads ≈ 1.4–2×
 * one thread, plus ≈ 3 s to start the threads.
 */
import { Piscina } from 'piscina';
import { COMPUTE_NICE } from '../fleet/thread-pool.js';
import type { BackendName } from '../backend/types.js';
import type { ModelConfig } from '../config/index.js';
import { loadReplicaModule } from '../fleet/worker/replica.js';
import type { LanguageModel } from '../model/api.js';

/** Per-sequence scores, in input order (float64 copies of the model's loss sums and counts). */
export interface SequenceScores {
  /** summed next-token cross-entropy of each sequence (nats) */
  nats: Float64Array;
  /** predicted tokens of each sequence (targets that are not `<pad>`) */
  tokens: Float64Array;
}

export interface ScorerOptions {
  model: ModelConfig;
  backend: BackendName;
  /** the flat weights (layout of buildLayout(model)); copied, the caller may change its array after open */
  weights: Float32Array;
  /** worker threads; 0 or 1: score in this thread (same per-sequence computation) */
  threads: number;
  /**
   * score on a thread even when `threads` ≤ 1: the caller's thread stays free (the coordinator's
   * main thread answers /healthz and reads heartbeats while validation runs)
   */
  offMainThread?: boolean;
  /** replicas from this module (a file URL) instead of the real model — the fleet's same option */
  replicaModule?: string;
}

export interface ScoreInThreadsOptions extends ScorerOptions {
  /** rows `<bos> … [<eos>]`, no padding, 2 ≤ length ≤ model.max_len */
  sequences: readonly Uint16Array[];
  /** sequences scored so far (out of `total`), after each chunk */
  onProgress?: (done: number, total: number) => void;
}

/** Chunks per thread a call aims at (dynamic load balance vs per-task overhead). */
export const CHUNKS_PER_THREAD = 8;
/** Token bounds of one chunk (one task). */
export const MIN_CHUNK_TOKENS = 256;
export const MAX_CHUNK_TOKENS = 16384;

/** What the scorer hands to each thread once (piscina workerData). */
export interface EvalThreadData {
  model: ModelConfig;
  backend: BackendName;
  /** Float32 weights, layout.total floats */
  weights: SharedArrayBuffer;
  /** the replica module (file URL) when not the real model: tests' toy model (src/fleet/worker/replica.ts) */
  replicaModule?: string;
}

/**
 * One task: sequences concatenated in `tokens`; sequence i is tokens[ends[i−1] .. ends[i]) (ends[−1] = 0).
 * The thread answers a Float64Array [k nats…, k tokens…] (transferred).
 */
export interface ChunkTask {
  tokens: Uint16Array;
  ends: Uint32Array;
}

/** `{ warm: true }`: build the thread's replica now (sent to every thread when a scorer opens). */
export type EvalThreadTask = ChunkTask | { warm: true };

/**
 * THE per-sequence computation, used in-process, by the threads and by src/train/validation.ts:
 * each sequence scored on its own (rows = 1; the model may share a pass between sequences of one
 * length, each with its own loss), its loss sum and token count written at `at + i`.
 */
export function scoreEach(model: LanguageModel, weights: Float32Array, sequences: readonly Uint16Array[], out: SequenceScores, at = 0): void {
  if (model.evaluateEach) {
    // the same numbers, one weight upload for the whole chunk and shared passes
    const r = model.evaluateEach(weights, sequences);
    out.nats.set(r.nats, at);
    out.tokens.set(r.tokens, at);
    return;
  }
  for (let i = 0; i < sequences.length; i++) {
    const seq = sequences[i];
    const r = model.evaluate(weights, { tokens: seq, rows: 1, seqLen: seq.length });
    out.nats[at + i] = r.lossSum;
    out.tokens[at + i] = r.tokenCount;
  }
}

/** A chunk task's sequences as views of its token buffer. */
export function chunkSequences(task: ChunkTask): Uint16Array[] {
  const out: Uint16Array[] = [];
  let start = 0;
  for (const end of task.ends) { out.push(task.tokens.subarray(start, end)); start = end; }
  return out;
}

/** Contiguous [start, end) ranges of `sequences` of about `target` tokens each (at least one sequence). */
export function chunkRanges(sequences: readonly Uint16Array[], threads: number): Array<[number, number]> {
  let total = 0;
  for (const s of sequences) total += s.length;
  const target = Math.min(MAX_CHUNK_TOKENS, Math.max(MIN_CHUNK_TOKENS, Math.ceil(total / (Math.max(1, threads) * CHUNKS_PER_THREAD))));
  const out: Array<[number, number]> = [];
  let start = 0, acc = 0;
  for (let i = 0; i < sequences.length; i++) {
    acc += sequences[i].length;
    if (acc >= target) { out.push([start, i + 1]); start = i + 1; acc = 0; }
  }
  if (start < sequences.length) out.push([start, sequences.length]);
  return out;
}

function checkSequences(sequences: readonly Uint16Array[], maxLen: number): void {
  for (let i = 0; i < sequences.length; i++) {
    const n = sequences[i].length;
    if (n < 2 || n > maxLen) throw new RangeError(`scoreInThreads: sequence ${i} has ${n} tokens; need 2 ≤ length ≤ max_len ${maxLen}`);
  }
}

function checkThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 0) throw new RangeError(`scoreInThreads: threads must be a non-negative integer, got ${threads}`);
}

/**
 * Scores sequences with fixed weights, in this thread (threads ≤ 1) or on a pool of threads that
 * lives until close(). Reuse one scorer for many calls (the `vilm eval` groups) to pay the thread
 * start-up (tsx, tfjs, wasm, the replica) once.
 */
export class SequenceScorer {
  private busy = false;
  private closed = false;

  private constructor(
    readonly threads: number,
    private readonly maxLen: number,
    private readonly weights: Float32Array,
    private readonly local: LanguageModel | null,
    private readonly pool: Piscina | null,
  ) {}

  /** Start the backend and model (in-process) or the threads, each with its replica built. */
  static async open(o: ScorerOptions): Promise<SequenceScorer> {
    checkThreads(o.threads);
    if (o.offMainThread && o.threads < 1) o = { ...o, threads: 1 };
    if (o.threads <= 1 && !o.offMainThread) {
      const model = await (await loadReplicaModule(o.replicaModule)).createReplica({ model: o.model, backend: o.backend });
      return new SequenceScorer(o.threads, o.model.max_len, Float32Array.from(o.weights), model, null);
    }
    const sab = new SharedArrayBuffer(o.weights.length * 4);
    const weights = new Float32Array(sab);
    weights.set(o.weights);
    const workerData: EvalThreadData = { model: o.model, backend: o.backend, weights: sab, replicaModule: o.replicaModule };
    const pool = new Piscina({
      // compiled (lib/): the module itself; from the sources: the entry that registers tsx first
      filename: process.env.VILM_EVAL_THREAD_ENTRY
        ?? new URL(import.meta.url.endsWith('.js') ? './eval-thread.js' : './eval-thread-entry.mjs', import.meta.url).href,
      minThreads: o.threads, maxThreads: o.threads,
      concurrentTasksPerWorker: 1,
      // kept alive between calls until close()
      idleTimeout: 2 ** 31 - 1,
      // idle threads would otherwise sit in Atomics.wait
      atomics: 'disabled',
      // below the main thread, as the compute threads (../fleet/thread-pool.ts): a coordinator that
      // scores keeps answering /healthz and heartbeats (16 scoring threads at the main thread's
      // priority stalled its event loop for up to 5 s on 2 cores: scripts/soak-churn.ts)
      niceIncrement: COMPUTE_NICE,
      workerData,
    });
    const scorer = new SequenceScorer(o.threads, o.model.max_len, weights, null, pool);
    try {
      // build the replicas now, in parallel: a backend that cannot start fails here, not mid-run
      await Promise.all(Array.from({ length: o.threads }, () => pool.run({ warm: true } satisfies EvalThreadTask)));
    } catch (e) {
      await scorer.close();
      throw e;
    }
    return scorer;
  }

  /** Replace the weights (same layout) for the next calls; not while a call is running. */
  setWeights(weights: Float32Array): void {
    if (this.busy) throw new Error('SequenceScorer.setWeights: a score() call is running');
    if (weights.length !== this.weights.length) throw new RangeError(`SequenceScorer.setWeights: ${weights.length} floats, expected ${this.weights.length}`);
    this.weights.set(weights);
  }

  /** Per-sequence scores of `sequences`, in input order (see the file comment). */
  async score(sequences: readonly Uint16Array[], onProgress?: (done: number, total: number) => void): Promise<SequenceScores> {
    if (this.closed) throw new Error('SequenceScorer.score: the scorer is closed');
    if (this.busy) throw new Error('SequenceScorer.score: one call at a time');
    checkSequences(sequences, this.maxLen);
    const m = sequences.length;
    const out: SequenceScores = { nats: new Float64Array(m), tokens: new Float64Array(m) };
    if (m === 0) return out;
    this.busy = true;
    try {
      const ranges = chunkRanges(sequences, this.threads);
      let done = 0;
      if (this.local) {
        for (const [s, e] of ranges) {
          scoreEach(this.local, this.weights, sequences.slice(s, e), out, s);
          done += e - s;
          onProgress?.(done, m);
          // let timers and signals run between chunks
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        return out;
      }
      const pool = this.pool!;
      await Promise.all(ranges.map(async ([s, e]) => {
        let len = 0;
        for (let i = s; i < e; i++) len += sequences[i].length;
        const tokens = new Uint16Array(len), ends = new Uint32Array(e - s);
        let at = 0;
        for (let i = s; i < e; i++) { tokens.set(sequences[i], at); at += sequences[i].length; ends[i - s] = at; }
        const task: ChunkTask = { tokens, ends };
        const r = await pool.run(task, { transferList: [tokens.buffer, ends.buffer] }) as Float64Array;
        const k = e - s;
        if (!(r instanceof Float64Array) || r.length !== 2 * k) throw new Error(`scoreInThreads: a thread answered ${String(r)} for ${k} sequences`);
        out.nats.set(r.subarray(0, k), s);
        out.tokens.set(r.subarray(k), s);
        done += k;
        onProgress?.(done, m);
      }));
      return out;
    } finally {
      this.busy = false;
    }
  }

  /** Free the model (in-process) or end the threads. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.local?.dispose();
    if (this.pool) await this.pool.destroy();
  }
}

/**
 * Per-sequence loss sums and token counts of `sequences`, in input order, identical for any
 * `threads` (see the file comment). Starts and ends its own threads.
 */
export async function scoreInThreads(o: ScoreInThreadsOptions): Promise<SequenceScores> {
  checkThreads(o.threads);
  checkSequences(o.sequences, o.model.max_len);
  if (o.sequences.length === 0) return { nats: new Float64Array(0), tokens: new Float64Array(0) };
  // no more threads than chunks: a thread without work would only cost its start-up
  const threads = o.threads <= 1 ? o.threads : Math.max(1, Math.min(o.threads, chunkRanges(o.sequences, o.threads).length));
  const scorer = await SequenceScorer.open({ ...o, threads });
  try {
    return await scorer.score(o.sequences, o.onProgress);
  } finally {
    await scorer.close();
  }
}
