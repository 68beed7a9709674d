import test from 'node:test';
import assert from 'node:assert/strict';
import { segmentText } from '../src/data/prepare/segment.ts';
import { packDocument, packGreedy, bucketFor, type Unit } from '../src/data/prepare/sequences.ts';
import { splitOf, hashUnit } from '../src/data/prepare/split.ts';
import { parseBuckets, usableBuckets } from '../src/data/prepare/prepare.ts';
import { Rng } from '../src/util/rng.ts';
import { UserError } from '../src/util/errors.ts';

const BOS = 1, EOS = 2;
const BUCKETS = [50, 100, 150, 200, 250];

test('segmentText: units concatenate back to the text and end at sentence/paragraph boundaries', () => {
  const text = 'Hà Nội là thủ đô của Việt Nam. Thành phố nằm bên sông Hồng! Dân số khoảng 8 triệu người?\n\n' +
    'Đoạn thứ hai bắt đầu ở đây… Nó có “trích dẫn.” Rồi hết\nDòng cuối cùng.';
  const units = segmentText(text);
  assert.equal(units.map((u) => u.text).join(''), text);
  assert.deepEqual(units.map((u) => u.text), [
    'Hà Nội là thủ đô của Việt Nam.',
    ' Thành phố nằm bên sông Hồng!',
    ' Dân số khoảng 8 triệu người?\n\n',
    'Đoạn thứ hai bắt đầu ở đây…',
    ' Nó có “trích dẫn.”',
    ' Rồi hết\n',
    'Dòng cuối cùng.',
  ]);
  assert.deepEqual(units.map((u) => u.end), ['sentence', 'sentence', 'paragraph', 'sentence', 'sentence', 'paragraph', 'end']);
  // no boundary inside numbers or before trailing whitespace
  assert.deepEqual(segmentText('Giá là 3.5 triệu đồng.  ').map((u) => u.text), ['Giá là 3.5 triệu đồng.  ']);
  assert.deepEqual(segmentText(''), []);
});

/** units of random lengths with random boundary kinds */
function randomUnits(rng: Rng, n: number, maxLen: number): Unit[] {
  let next = 10;
  return Array.from({ length: n }, (_, i) => ({
    ids: Array.from({ length: 1 + rng.int(maxLen) }, () => next++),
    end: i === n - 1 ? 'end' : rng.next() < 0.3 ? 'paragraph' : 'sentence',
  }));
}

test('packDocument: <bos> first, <eos> only at the document end, never longer than the limit, cuts only between units', () => {
  const rng = new Rng(3);
  for (let trial = 0; trial < 200; trial++) {
    const units = randomUnits(rng, 1 + rng.int(60), 1 + rng.int(80));
    const limit = [50, 100, 250][trial % 3];
    const seqs = packDocument(units, { limit, buckets: BUCKETS.filter((b) => b <= limit), bosId: BOS, eosId: EOS });
    const all = units.flatMap((u) => u.ids);
    // every id exactly once, in order
    assert.deepEqual(seqs.flatMap((s) => s.filter((t) => t !== BOS && t !== EOS)), all);
    const starts = new Set<number>([0]);
    let acc = 0;
    for (const u of units) { acc += u.ids.length; starts.add(acc); }
    let pos = 0;
    seqs.forEach((s, i) => {
      assert.ok(s.length <= limit, `length ${s.length} > ${limit}`);
      assert.equal(s[0], BOS);
      assert.equal(s.filter((t) => t === BOS).length, 1);
      assert.equal(s[s.length - 1] === EOS, i === seqs.length - 1);
      const body = s.length - 1 - (i === seqs.length - 1 ? 1 : 0);
      // a cut that is not a unit boundary is only allowed inside a unit too long for one sequence
      if (!starts.has(pos)) {
        let a = 0;
        const inside = units.find((u) => { const hit = pos > a && pos < a + u.ids.length; a += u.ids.length; return hit; });
        assert.ok(inside && inside.ids.length > limit - 2, `hard cut at ${pos} inside a unit that fits a sequence`);
      }
      pos += body;
    });
  }
});

test('packDocument: a single over-long sentence is cut hard into pieces that fit', () => {
  const ids = Array.from({ length: 600 }, (_, i) => 10 + i);
  const seqs = packDocument([{ ids, end: 'end' }], { limit: 250, buckets: BUCKETS, bosId: BOS, eosId: EOS });
  assert.ok(seqs.length >= 3);
  for (const s of seqs) assert.ok(s.length <= 250);
  assert.deepEqual(seqs.flatMap((s) => s.slice(1)).filter((t) => t !== EOS), ids);
});

test('packDocument: long documents fill the largest bucket and waste less than greedy packing', () => {
  const rng = new Rng(11);
  let dpPositions = 0, greedyPositions = 0, tokens = 0;
  for (let d = 0; d < 50; d++) {
    const units = randomUnits(rng, 80, 40);
    const seqs = packDocument(units, { limit: 250, buckets: BUCKETS, bosId: BOS, eosId: EOS });
    for (const s of seqs) { dpPositions += bucketFor(s.length, BUCKETS); tokens += s.length; }
    const greedy = packGreedy(units, { limit: 250, buckets: BUCKETS, bosId: BOS, eosId: EOS });
    assert.deepEqual(greedy.flat().filter((t) => t > 2), units.flatMap((u) => u.ids));
    for (const s of greedy) { assert.ok(s.length <= 250); greedyPositions += bucketFor(s.length, BUCKETS); }
  }
  assert.ok(dpPositions <= greedyPositions, `dp ${dpPositions} > greedy ${greedyPositions}`);
  assert.ok((dpPositions - tokens) / dpPositions < 0.05, `waste ${(dpPositions - tokens) / dpPositions}`);
});

test('bucketFor picks the smallest bucket that holds the length', () => {
  assert.equal(bucketFor(1, BUCKETS), 50);
  assert.equal(bucketFor(50, BUCKETS), 50);
  assert.equal(bucketFor(51, BUCKETS), 100);
  assert.equal(bucketFor(250, BUCKETS), 250);
  assert.equal(bucketFor(251, BUCKETS), -1);
});

test('splitOf: deterministic per (id, seed), about 8/1/1, and depends on the seed', () => {
  const ids = Array.from({ length: 20000 }, (_, i) => `doc-${i}`);
  const count = (seed: number) => {
    const c = { train: 0, validation: 0, test: 0 };
    for (const id of ids) c[splitOf(id, seed)]++;
    return c;
  };
  const c = count(42);
  assert.ok(Math.abs(c.train / ids.length - 0.8) < 0.015, JSON.stringify(c));
  assert.ok(Math.abs(c.validation / ids.length - 0.1) < 0.01, JSON.stringify(c));
  assert.ok(Math.abs(c.test / ids.length - 0.1) < 0.01, JSON.stringify(c));
  assert.equal(splitOf('84dc04aeb20c', 42), splitOf('84dc04aeb20c', 42));
  const moved = ids.filter((id) => splitOf(id, 42) !== splitOf(id, 43)).length;
  assert.ok(moved > ids.length * 0.2, `only ${moved} documents change split with the seed`);
  assert.notEqual(hashUnit('a', 1), hashUnit('a', 1 + 2 ** 32));
});

test('parseBuckets and usableBuckets: bad lists are one-line UserErrors naming --buckets/--max-len', () => {
  assert.deepEqual(parseBuckets('50,100,150'), [50, 100, 150]);
  assert.deepEqual(parseBuckets(['50', '100']), [50, 100]);
  for (const bad of ['50,abc', '100,50', '50,50', '', '1', '50,-1', '50,70000']) {
    assert.throws(() => parseBuckets(bad), (e: unknown) => e instanceof UserError && e.message.startsWith('--buckets') && !e.message.includes('\n'), bad);
  }
  assert.deepEqual(usableBuckets([50, 100, 150], 128), { used: [50, 100], dropped: [150] });
  assert.throws(() => usableBuckets([50, 100], 40), /--buckets: no bucket ≤ --max-len 40/);
  assert.throws(() => usableBuckets([50, 100], 2.5), /--max-len/);
});
