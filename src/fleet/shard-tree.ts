/**
 * The shard tree: the geometry of a step's batch, in one place (the coordinator's scheduler, the
 * workers' compute and the reduction all ask it; none re-derives it).
 *
 * A step's global batch has R rows. It is cut into M = `train.micro_shards` fixed micro-shards by
 * row: shard i holds rows [⌊i·R/M⌋, ⌊(i+1)·R/M⌋). Pad M to P = 2^⌈log2 M⌉; the binary tree over
 * shard indices has node (level j, index k) covering shards [k·2^j, (k+1)·2^j). A node starting
 * at or beyond M is ABSENT. The root is (log2 P, 0).
 *
 * A TASK is one aligned subtree — a `Block` — with k·2^j < M: the worker computes every shard in
 * it and pre-adds them with the same tree (./reduce.ts), so the result does not depend on who
 * computed which block.
 */

/** An aligned subtree of the reduction tree: shards [index·2^level, (index+1)·2^level). */
export interface Block {
  level: number;
  index: number;
}

export function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export function log2Int(p: number): number {
  return Math.round(Math.log2(p));
}

/** Row range [start, end) of shard `i` of `m` over `rows` rows. */
export function shardRange(rows: number, m: number, i: number): [number, number] {
  return [Math.floor((i * rows) / m), Math.floor(((i + 1) * rows) / m)];
}

/**
 * Micro-shards of an R-row batch that hold rows: min(R, m) (shard i is empty only when R < m). A
 * task holds at least one of them, so no more workers than this compute in that step.
 */
export function shardsWithRows(rows: number, m: number): number {
  return Math.min(rows, m);
}

/** Shards of a block, clipped to [0, m). */
export function blockShards(b: Block, m: number): [number, number] {
  const size = 2 ** b.level;
  return [Math.min(b.index * size, m), Math.min((b.index + 1) * size, m)];
}

/** Number of (existing) shards in a block. */
export function blockShardCount(b: Block, m: number): number {
  const [s0, s1] = blockShards(b, m);
  return s1 - s0;
}

/** Rows covered by a block: [first row, end row). */
export function blockRows(b: Block, rows: number, m: number): [number, number] {
  const [s0, s1] = blockShards(b, m);
  if (s0 >= s1) return [0, 0];
  return [shardRange(rows, m, s0)[0], shardRange(rows, m, s1 - 1)[1]];
}

/** Whether a block holds no shard at all (starts at or beyond m). */
export function isAbsent(b: Block, m: number): boolean {
  return b.index * 2 ** b.level >= m;
}

export function blockKey(b: Block): string {
  return `${b.level}:${b.index}`;
}

/** The root block of a tree over m shards. */
export function rootBlock(m: number): Block {
  return { level: log2Int(nextPow2(m)), index: 0 };
}

/** The parent of a block (its level must be below the root's). */
export function parentBlock(b: Block): Block {
  return { level: b.level + 1, index: b.index >> 1 };
}

/** Both children of a block (level > 0), absent or not: [left, right]. */
export function childBlocks(b: Block): [Block, Block] {
  return [{ level: b.level - 1, index: 2 * b.index }, { level: b.level - 1, index: 2 * b.index + 1 }];
}

/** The children of a block that hold shards (level > 0); none for a leaf. */
export function children(b: Block, m: number): Block[] {
  if (b.level === 0) return [];
  return childBlocks(b).filter((c) => !isAbsent(c, m));
}

/**
 * Task granularity: the coarsest aligned level that still gives about `perWorker` tasks per worker
 * (one task when there is a single worker). Bigger tasks pre-add more locally, send less and run
 * faster (a worker computes a task's shards together, in bigger matmuls: ./worker/compute.ts);
 * more tasks per worker let the pull scheduling even out a slow worker (the fast one takes the
 * remaining tasks). 2 per worker for every fleet: with 2 threads on 2 cores and configs/tiny.yaml
 * (8 shards) it ran at 3,016 / 3,243 / 3,185 tokens/s against 2,860 / 3,095 / 2,646 with 4 per
 * thread (one-shard tasks, the best choice while every shard was its own model call), three
 * interleaved pairs of 20-step viwiki runs; 1 per worker was level with 2. With perWorker·workers
 * ≥ m every shard is its own task. A failed task is split into its children when it is requeued
 * (see the step run), so the remaining workers share it.
 */
export function planBlocks(m: number, workers: number, perWorker = 2): Block[] {
  const top = log2Int(nextPow2(m));
  const want = workers <= 1 ? 1 : perWorker * workers;
  let level = top;
  while (level > 0 && Math.ceil(m / 2 ** level) < want) level--;
  const out: Block[] = [];
  for (let k = 0; k * 2 ** level < m; k++) out.push({ level, index: k });
  return out;
}

/** Whether the known nodes cover every shard under `b`. */
export function covered(b: Block, m: number, has: (b: Block) => boolean): boolean {
  if (isAbsent(b, m)) return true;
  if (has(b)) return true;
  if (b.level === 0) return false;
  const [l, r] = childBlocks(b);
  return covered(l, m, has) && covered(r, m, has);
}
