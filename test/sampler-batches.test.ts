import test from 'node:test';
import assert from 'node:assert/strict';
import { PreparedSplit } from '../src/data/dataset.ts';
import { BatchSampler, evalBatches, rowsFor } from '../src/data/sampler.ts';
import type { BucketBatch, SamplerCursor } from '../src/data/types.ts';
import { UserError } from '../src/util/errors.ts';

/** A split whose every row is unique: row r of bucket L is [1, L*1000+r mod 65k, …] then pads. */
function makeSplit(counts: Record<number, number>): PreparedSplit {
  const rows = new Map<number, Uint16Array>();
  for (const [L, n] of Object.entries(counts).map(([k, v]) => [Number(k), v])) {
    const t = new Uint16Array(n * L);
    for (let r = 0; r < n; r++) {
      t[r * L] = 1;                    // <bos>
      t[r * L + 1] = 3 + r;            // row id
      t[r * L + 2] = 3 + L;            // bucket id
      t[r * L + 3] = 2;                // <eos>, rest pad
    }
    rows.set(L, t);
  }
  return PreparedSplit.fromArrays('train', rows);
}
const rowKey = (b: BucketBatch, r: number) => `${b.tokens[r * b.seqLen + 2] - 3}:${b.tokens[r * b.seqLen + 1] - 3}`;
const batchKey = (b: BucketBatch) => `${b.bucket}|` + Array.from({ length: b.rows }, (_, r) => rowKey(b, r)).join(',');

const COUNTS = { 50: 37, 100: 20, 150: 9, 250: 3 };
const TOTAL = 37 + 20 + 9 + 3;

test('sampler: fixed token budget, one bucket per batch, rows are real sequences of that bucket', () => {
  const split = makeSplit(COUNTS);
  const s = new BatchSampler(split, { batchTokens: 400, seed: 1 });
  for (let i = 0; i < 60; i++) {
    const b = s.next();
    assert.equal(b.seqLen, b.bucket);
    assert.equal(b.rows, rowsFor(400, b.bucket));
    assert.equal(b.rows, Math.max(1, Math.floor(400 / b.bucket)));
    assert.equal(b.tokens.length, b.rows * b.seqLen);
    for (let r = 0; r < b.rows; r++) {
      assert.equal(b.tokens[r * b.seqLen], 1, 'row starts with <bos>');
      assert.equal(b.tokens[r * b.seqLen + 2] - 3, b.bucket, 'row comes from the batch bucket');
    }
  }
  // a budget smaller than the bucket still gives one row
  const one = new BatchSampler(split, { batchTokens: 10, seed: 1 }).next();
  assert.equal(one.rows, 1);
});

test('sampler: one epoch covers every sequence, partial batches wrap within their bucket', () => {
  const split = makeSplit(COUNTS);
  const s = new BatchSampler(split, { batchTokens: 400, seed: 5 });
  const expectBatches = Math.ceil(37 / 8) + Math.ceil(20 / 4) + Math.ceil(9 / 2) + Math.ceil(3 / 1);
  assert.equal(s.batchesPerEpoch, expectBatches);
  const seen = new Map<string, number>();
  for (let i = 0; i < expectBatches; i++) {
    const b = s.next();
    for (let r = 0; r < b.rows; r++) seen.set(rowKey(b, r), (seen.get(rowKey(b, r)) ?? 0) + 1);
  }
  assert.equal(seen.size, TOTAL);
  assert.equal(s.currentEpoch, 0);
  s.next();
  assert.equal(s.currentEpoch, 1);
  assert.equal(s.cursor().position, 1);
});

test('sampler: shuffled by seed — same seed same stream, other seed other order, epochs differ', () => {
  const split = makeSplit(COUNTS);
  const run = (seed: number, n: number) => { const s = new BatchSampler(split, { batchTokens: 400, seed }); return Array.from({ length: n }, () => batchKey(s.next())); };
  const per = new BatchSampler(split, { batchTokens: 400, seed: 0 }).batchesPerEpoch;
  const a = run(7, 2 * per), b = run(7, 2 * per), c = run(8, per);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.slice(0, per), c);
  assert.notDeepEqual(a.slice(0, per), a.slice(per));
  // buckets are interleaved, not one bucket after another
  const buckets = a.slice(0, per).map((k) => k.split('|')[0]);
  const runs = buckets.filter((x, i) => i === 0 || x !== buckets[i - 1]).length;
  assert.ok(runs > 4, `batches not shuffled across buckets: ${buckets.join(' ')}`);
  // sequences inside a bucket are shuffled too (not 0,1,2,… in file order)
  const firstOf50 = a.find((k) => k.startsWith('50|'))!;
  assert.notEqual(firstOf50, '50|50:0,50:1,50:2,50:3,50:4,50:5,50:6,50:7');
});

test('sampler: resuming from a JSON round-tripped cursor yields exactly the batches that would have come next', () => {
  const split = makeSplit(COUNTS);
  const opts = { batchTokens: 400, seed: 99 };
  const s = new BatchSampler(split, opts);
  const per = s.batchesPerEpoch;
  for (const stop of [0, 3, per - 1, per, per + 5, 3 * per + 2]) {
    const ref = new BatchSampler(split, opts);
    for (let i = 0; i < stop; i++) ref.next();
    const cur = JSON.parse(JSON.stringify(ref.cursor())) as SamplerCursor;
    const expected = Array.from({ length: per + 3 }, () => batchKey(ref.next()));
    const resumed = BatchSampler.restore(split, opts, cur);
    assert.deepEqual(Array.from({ length: per + 3 }, () => batchKey(resumed.next())), expected, `stop=${stop}`);
    // restore() on an existing sampler does the same
    const other = new BatchSampler(split, { batchTokens: 400, seed: 1 });
    other.restore(cur);
    assert.equal(batchKey(other.next()), expected[0]);
  }
  const c = s.cursor();
  assert.deepEqual(Object.keys(c).sort(), ['epoch', 'position', 'rng']);
  assert.ok(JSON.stringify(c).length < 120);
});

test('sampler: bad cursors, budgets and empty splits are UserErrors', () => {
  const split = makeSplit(COUNTS);
  const opts = { batchTokens: 400, seed: 1 };
  const ok = new BatchSampler(split, opts).cursor();
  assert.throws(() => BatchSampler.restore(split, opts, { ...ok, position: 10_000 }), (e) => e instanceof UserError && /position/.test(e.message));
  assert.throws(() => BatchSampler.restore(split, opts, { ...ok, rng: [0, 0, 0, 0] }), (e) => e instanceof UserError && /rng/.test(e.message));
  assert.throws(() => BatchSampler.restore(split, opts, { ...ok, epoch: -1 }), (e) => e instanceof UserError && /epoch/.test(e.message));
  assert.throws(() => new BatchSampler(split, { batchTokens: 0, seed: 1 }), (e) => e instanceof UserError && /batch_tokens/.test(e.message));
  assert.throws(() => new BatchSampler(makeSplit({}), opts), (e) => e instanceof UserError && /no sequences/.test(e.message));
});

test('evalBatches: every sequence exactly once, fixed order, contiguous views, maxBatches spreads over buckets', () => {
  const split = makeSplit(COUNTS);
  const all = [...evalBatches(split, { batchTokens: 400 })];
  assert.deepEqual(all.map(batchKey), [...evalBatches(split, { batchTokens: 400 })].map(batchKey));
  const seen: string[] = [];
  for (const b of all) {
    assert.equal(b.seqLen, b.bucket);
    assert.ok(b.rows >= 1 && b.rows <= rowsFor(400, b.bucket));
    assert.equal(b.tokens.length, b.rows * b.seqLen);
    assert.equal(b.tokens.buffer, split.bucket(b.bucket)!.tokens.buffer, 'a view, not a copy');
    for (let r = 0; r < b.rows; r++) seen.push(rowKey(b, r));
  }
  assert.equal(seen.length, TOTAL);
  assert.equal(new Set(seen).size, TOTAL);
  const four = [...evalBatches(split, { batchTokens: 400, maxBatches: 4 })];
  assert.equal(four.length, 4);
  assert.deepEqual(new Set(four.map((b) => b.bucket)), new Set([50, 100, 150, 250]));
  assert.deepEqual(four.map(batchKey), all.slice(0, 4).map(batchKey));
});
