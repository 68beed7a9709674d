import test from 'node:test';
import assert from 'node:assert/strict';
import { documentWindows, packBatches, bitsPerByte, parseIds } from '../src/train/eval.ts';
import { UserError } from '../src/util/errors.ts';

const BOS = 1, EOS = 2;

test('documentWindows: <bos> at every window, <eos> only at the document end, ≤ max_len tokens', () => {
  const ids = Array.from({ length: 10 }, (_, i) => 100 + i);
  const w = documentWindows(ids, 6, BOS, EOS); // 4 text tokens per window
  assert.deepEqual(w, [
    [BOS, 100, 101, 102, 103],
    [BOS, 104, 105, 106, 107],
    [BOS, 108, 109, EOS],
  ]);
  for (const x of w) assert.ok(x.length <= 6);
  // every text token appears exactly once; predicted targets = text tokens + one <eos>
  assert.deepEqual(w.flatMap((x) => x.filter((t) => t >= 100)), ids);
  assert.equal(w.reduce((n, x) => n + x.length - 1, 0), ids.length + 1);
  // exact multiple: the last full window carries the <eos> (max_len is never exceeded)
  const w2 = documentWindows(ids.slice(0, 8), 6, BOS, EOS);
  assert.deepEqual(w2.map((x) => x.length), [5, 6]);
  assert.deepEqual(documentWindows([], 6, BOS, EOS), []);
});

test('packBatches: longest first, rows × seqLen within the budget, zero padding, every sequence once', () => {
  const seqs = [[1, 5, 6], [1, 7, 8, 9, 2], [1, 3], [1, 4, 4, 4], [1, 9, 9, 2]];
  const batches = packBatches(seqs, 10);
  const seen: string[] = [];
  for (const b of batches) {
    assert.equal(b.tokens.length, b.rows * b.seqLen);
    assert.ok(b.rows * b.seqLen <= 10 || b.rows === 1);
    for (let r = 0; r < b.rows; r++) {
      const row = Array.from(b.tokens.subarray(r * b.seqLen, (r + 1) * b.seqLen));
      let end = row.length; while (end > 0 && row[end - 1] === 0) end--;
      seen.push(JSON.stringify(row.slice(0, end)));
    }
  }
  assert.deepEqual(seen.sort(), seqs.map((s) => JSON.stringify(s)).sort());
  assert.equal(batches[0].seqLen, 5);
  // a sequence longer than the budget still gets a batch of its own
  assert.deepEqual(packBatches([[1, 2, 3, 4]], 2).map((b) => [b.rows, b.seqLen]), [[1, 4]]);
});

test('bits per byte = nats / ln 2 / bytes', () => {
  assert.equal(bitsPerByte(Math.LN2 * 12, 4), 3);
  assert.ok(Math.abs(bitsPerByte(10, 7) - 10 / Math.log(2) / 7) < 1e-15);
});

test('parseIds checks JSON, range and length with one-line user errors', () => {
  assert.deepEqual(parseIds('[12, 7, 3]', 100, 8), [12, 7, 3]);
  const bad: [string, RegExp][] = [
    ['12,7', /JSON array/], ['{"a":1}', /JSON array/], ['[1, 100]', /element 1 \(100\)/], ['[1, -1]', /element 1/],
    ['[1.5, 2]', /element 0/], ['[3]', /at least 2/], [JSON.stringify(Array(9).fill(1)), /max_len\) is 8/],
  ];
  for (const [s, re] of bad) {
    assert.throws(() => parseIds(s, 100, 8), (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n'), s);
  }
});
