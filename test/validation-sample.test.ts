import test from 'node:test';
import assert from 'node:assert/strict';
import { PreparedSplit } from '../src/data/dataset.ts';
import { sampleSequences } from '../src/data/sampler.ts';
import { ratioEstimate, splitTokensPerByte } from '../src/train/validation.ts';
import { Rng } from '../src/util/rng.ts';

/** A split of `n` sequences per bucket; row i of bucket L starts with token (L + i) so rows are identifiable. */
function split(counts: Record<number, number>): PreparedSplit {
  const rows: Record<number, Uint16Array> = {};
  for (const [len, n] of Object.entries(counts)) {
    const L = Number(len);
    const t = new Uint16Array(n * L);
    for (let i = 0; i < n; i++) { t[i * L] = 1; t[i * L + 1] = L + i; }
    rows[L] = t;
  }
  return PreparedSplit.fromArrays('validation', rows);
}

test('sampleSequences: fixed by the seed, distinct, spread over every bucket and over the whole split', () => {
  const s = split({ 50: 400, 100: 300, 250: 300 });
  const a = sampleSequences(s, 200, 7);
  assert.deepEqual(a, sampleSequences(s, 200, 7), 'same seed, same sample');
  assert.notDeepEqual(a, sampleSequences(s, 200, 8), 'another seed, another sample');
  assert.equal(a.length, 200);
  assert.equal(new Set(a.map((r) => `${r.length}:${r.row}`)).size, 200, 'no sequence twice');
  for (const L of [50, 100, 250]) {
    const rows = a.filter((r) => r.length === L).map((r) => r.row);
    // each bucket is represented about in proportion (400/300/300 of 1000 → 80/60/60 of 200)
    const expected = (200 * s.bucket(L)!.count) / s.sequences;
    assert.ok(Math.abs(rows.length - expected) < 0.5 * expected, `bucket ${L}: ${rows.length} rows, ~${expected} expected`);
    // not a prefix: rows from the second half of the bucket (later documents) are drawn too
    assert.ok(rows.some((r) => r >= s.bucket(L)!.count / 2), `bucket ${L}: only early rows`);
    assert.ok(rows.some((r) => r < s.bucket(L)!.count / 2), `bucket ${L}: only late rows`);
  }
  // a count of 0 or ≥ the split is every sequence, in order
  const all = sampleSequences(s, 0, 1);
  assert.equal(all.length, 1000);
  assert.deepEqual(all, sampleSequences(s, 5000, 99));
  assert.deepEqual(all[0], { length: 50, row: 0 });
  assert.deepEqual(all[999], { length: 250, row: 299 });
});

test('ratioEstimate: the ratio of sums, and a standard error that matches the spread of repeated samples', () => {
  // a population of 2000 "sequences" with varying lengths and per-token losses
  const rng = new Rng(3);
  const N = 2000;
  const nats = new Float64Array(N), toks = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    toks[i] = 20 + rng.int(230);
    nats[i] = toks[i] * (4 + 1.5 * rng.next());
  }
  const whole = ratioEstimate(nats, toks, N);
  assert.equal(whole.se, 0, 'the whole population has no sampling error');
  let sumN = 0, sumT = 0;
  for (let i = 0; i < N; i++) { sumN += nats[i]; sumT += toks[i]; }
  assert.ok(Math.abs(whole.ratio - sumN / sumT) < 1e-12);
  // repeated samples of 100: the spread of their ratios ≈ the reported SE
  const m = 100, reps = 400;
  const ratios: number[] = [];
  let seMean = 0;
  for (let r = 0; r < reps; r++) {
    const idx = new Set<number>();
    while (idx.size < m) idx.add(rng.int(N));
    const l = Float64Array.from([...idx].map((i) => nats[i]));
    const d = Float64Array.from([...idx].map((i) => toks[i]));
    const e = ratioEstimate(l, d, N);
    ratios.push(e.ratio);
    seMean += e.se / reps;
  }
  const mean = ratios.reduce((a, b) => a + b, 0) / reps;
  const sd = Math.sqrt(ratios.reduce((a, b) => a + (b - mean) ** 2, 0) / (reps - 1));
  assert.ok(seMean > 0);
  assert.ok(Math.abs(sd / seMean - 1) < 0.25, `empirical sd ${sd} vs mean SE ${seMean}`);
  assert.ok(Math.abs(mean - whole.ratio) < 3 * sd / Math.sqrt(reps) + 1e-3, 'unbiased to first order');
});

test('splitTokensPerByte: exact, and the event loop turns while a large split is decoded (a coordinator reads heartbeats meanwhile)', async () => {
  const s = split({ 50: 700, 100: 500 });
  // 1 byte per token that is not padding: rows hold 2 tokens (<bos>, one more), 1 predicted token
  const bytesOf = (row: Uint16Array) => { let n = row.length; while (n > 0 && row[n - 1] === 0) n--; return n; };
  let turns = 0;
  let stop = false;
  const spin = () => { if (!stop) { turns++; setImmediate(spin); } };
  setImmediate(spin);
  const ratio = await splitTokensPerByte(s, bytesOf);
  stop = true;
  assert.equal(ratio, (1200 * 1) / (1200 * 2));
  // 1,200 sequences decoded in slices of 256: the loop turned between them
  assert.ok(turns >= 3, `the event loop turned ${turns} times while 1,200 sequences were decoded`);
});
