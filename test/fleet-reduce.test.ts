import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Rng } from '../src/util/rng.ts';
import { addSparse, finalizeGradient, reduceNode, type GradSum } from '../src/fleet/reduce.ts';
import { blockKey, blockShards, children, covered, planBlocks, rootBlock, shardRange, type Block } from '../src/fleet/shard-tree.ts';
import { toyStep } from './support/toy-step.ts';

const sha = (a: Float32Array) => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

/** A random partial; some values are −0 and rows overlap between partials on purpose. */
function randomPartial(rng: Rng, vocab: number, d: number, rest: number): GradSum {
  const ids = new Set<number>();
  const n = 1 + rng.int(6);
  while (ids.size < n) ids.add(rng.int(vocab));
  const rows = Int32Array.from([...ids].sort((a, b) => a - b));
  const values = new Float32Array(rows.length * d);
  for (let i = 0; i < values.length; i++) values[i] = rng.int(5) === 0 ? -0 : (rng.next() - 0.5) * 10 ** (rng.int(7) - 3);
  const r = new Float32Array(rest);
  for (let i = 0; i < rest; i++) r[i] = rng.int(7) === 0 ? -0 : (rng.next() - 0.5) * 10 ** (rng.int(7) - 3);
  return { lossSum: rng.next() * 100, tokenCount: 1 + rng.int(50), rest: r, emb: { rows, values } };
}

const clone = (p: GradSum | null): GradSum | null => p && ({ ...p, rest: p.rest.slice(), emb: { rows: p.emb.rows.slice(), values: p.emb.values.slice() } });

/** A random tiling of [0, m) by aligned blocks: split the root at random. */
function randomTiling(rng: Rng, m: number): Block[] {
  const out: Block[] = [];
  const visit = (b: Block) => {
    if (b.index * 2 ** b.level >= m) return;
    if (b.level === 0 || rng.int(3) === 0) { out.push(b); return; }
    for (const c of children(b, m)) visit(c);
  };
  visit(rootBlock(m));
  return out;
}

test('sparse rows add bit-identically to dense blocks, including −0 and one-sided rows', () => {
  const rng = new Rng(3);
  const V = 20, d = 3;
  for (let trial = 0; trial < 50; trial++) {
    const a = randomPartial(rng, V, d, 0).emb, b = randomPartial(rng, V, d, 0).emb;
    const dense = (s: typeof a) => { const x = new Float32Array(V * d); s.rows.forEach((r, i) => x.set(s.values.subarray(i * d, i * d + d), r * d)); return x; };
    const da = dense(a), db = dense(b);
    const want = new Float32Array(V * d);
    for (let i = 0; i < want.length; i++) want[i] = da[i] + db[i];
    const got = dense(addSparse(a, b, d));
    assert.equal(sha(got), sha(want));
    assert.ok(got.every((v) => !Object.is(v, -0)) || want.some((v) => Object.is(v, -0)));
  }
});

test('shards cut rows as floor(i·R/M); plans tile [0, M) with about `per` tasks per worker', () => {
  assert.deepEqual([0, 1, 2, 3, 4].map((i) => shardRange(7, 5, i)), [[0, 1], [1, 2], [2, 4], [4, 5], [5, 7]]);
  for (const m of [1, 2, 3, 4, 5, 8, 13]) {
    for (const w of [1, 2, 3, 4, 8, 16]) for (const per of [2, 4]) {
      const plan = planBlocks(m, w, per);
      const seen = new Array<number>(m).fill(0);
      for (const b of plan) { const [s0, s1] = blockShards(b, m); for (let s = s0; s < s1; s++) seen[s]++; }
      assert.ok(seen.every((c) => c === 1), `m=${m} w=${w}`);
      assert.ok(plan.length >= Math.min(m, w), `m=${m} w=${w}: ${plan.length} tasks`);
      // coarser than single shards only while that still gives `per` tasks per worker, and never 2× more
      if (plan[0].level > 0 && w > 1) assert.ok(plan.length >= per * w && plan.length < 2 * per * w, `m=${m} w=${w} per=${per}: ${plan.length} tasks`);
      if (w === 1) assert.equal(plan.length, 1);
    }
  }
});

test('any tiling into pre-added subtrees, in any order, gives the same bytes', () => {
  const rng = new Rng(11);
  const V = 50, d = 4, rest = 33;
  for (const m of [1, 3, 5, 6, 8, 11]) {
    const leaves: (GradSum | null)[] = [];
    for (let i = 0; i < m; i++) leaves.push(i === 2 && m > 4 ? null /* an empty shard */ : randomPartial(rng, V, d, rest));
    const leafGet = (b: Block) => (b.level === 0 ? clone(leaves[b.index]) : undefined);
    const ref = reduceNode(rootBlock(m), m, { d, round: null }, leafGet)!;
    const refGrad = finalizeGradient(ref, V, d);
    for (let trial = 0; trial < 8; trial++) {
      const tiling = randomTiling(rng, m);
      // each "worker" pre-adds its block with the same tree; results arrive in a random order
      const results = new Map<string, GradSum | null>();
      rng.shuffle(tiling);
      for (const b of tiling) results.set(blockKey(b), reduceNode(b, m, { d, round: null }, leafGet));
      assert.ok(covered(rootBlock(m), m, (b) => results.has(blockKey(b))));
      const got = reduceNode(rootBlock(m), m, { d, round: null }, (b) => results.get(blockKey(b)));
      assert.equal(sha(finalizeGradient(got!, V, d)), sha(refGrad), `m=${m} tiling=${tiling.map(blockKey).join(',')}`);
      assert.equal(got!.lossSum, ref.lossSum);
      assert.equal(got!.tokenCount, ref.tokenCount);
    }
  }
});

test('toy model: every task plan (1–4 workers), with shards chunked per model call, gives the same step gradient bytes', () => {
  const step = toyStep(6, 10, 4);
  const grads = [1, 2, 3, 4].map((workers) => step.gradient(workers, 'fp32').sha);
  assert.equal(new Set(grads).size, 1, grads.join(' '));
});
