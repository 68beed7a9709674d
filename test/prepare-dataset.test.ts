import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { prepareDataset, encodeUnits, SPLITS } from '../src/data/prepare/prepare.ts';
import { packDocument } from '../src/data/prepare/sequences.ts';
import { splitOf } from '../src/data/prepare/split.ts';
import { loadDataset } from '../src/data/dataset.ts';
import type { Tokenizer } from '../src/tokenizer/types.ts';
import type { SplitName } from '../src/data/types.ts';
import { UserError } from '../src/util/errors.ts';

/** A real (if dumb) tokenizer for unit tests: one id per UTF-8 byte, ids 3..258; decode is exact. */
const byteTokenizer: Tokenizer = {
  vocabSize: 259, padId: 0, bosId: 1, eosId: 2,
  sha256: createHash('sha256').update('byte-tokenizer').digest('hex'),
  encode: (text) => Array.from(Buffer.from(text, 'utf8'), (b) => b + 3),
  decode: (ids) => Buffer.from(Array.from(ids).filter((t) => t >= 3).map((t) => t - 3)).toString('utf8'),
};

const SENTENCES = [
  'Hà Nội là thủ đô của nước Cộng hòa xã hội chủ nghĩa Việt Nam.',
  'Sông Hồng chảy qua nhiều tỉnh phía bắc.',
  'Mùa thu ở đây trời trong xanh và mát mẻ!',
  'Người dân thường đi chợ vào buổi sáng sớm.',
  'Phở là món ăn nổi tiếng khắp thế giới?',
  'Cà phê sữa đá được nhiều bạn trẻ yêu thích.',
];

/** Documents: many short ones (one sequence each) and a few long ones with paragraphs. */
function corpus(n: number, seedOffset = 0): { id: string; title: string; text: string; source: string }[] {
  return Array.from({ length: n }, (_, i) => {
    const k = i + seedOffset;
    const paras = 1 + (k % 7 === 0 ? 12 : k % 3);
    const text = Array.from({ length: paras }, (_, p) =>
      Array.from({ length: 1 + ((k + p) % 4) }, (_, s) => SENTENCES[(k + p + s) % SENTENCES.length]).join(' ')).join('\n\n');
    return { id: `doc-${k}`, title: `Bài ${k}`, text: `Bài số ${k}. ${text}`, source: 'test' };
  });
}

function tmp(): string { return mkdtempSync(path.join(tmpdir(), 'vilm-prepare-')); }
function writeJsonl(file: string, docs: object[]): void { writeFileSync(file, docs.map((d) => JSON.stringify(d)).join('\n') + '\n'); }
/** the unpadded rows of a bucket slice */
function rowsOf(tokens: Uint16Array, L: number): number[][] {
  const out: number[][] = [];
  for (let r = 0; r < tokens.length / L; r++) {
    const row = Array.from(tokens.subarray(r * L, (r + 1) * L));
    let end = row.length; while (end > 0 && row[end - 1] === 0) end--;
    out.push(row.slice(0, end));
  }
  return out;
}

test('prepare: split by document and by seed, manifest fields, binary round trip through loadDataset', async () => {
  const dir = tmp();
  const docs = corpus(120);
  writeJsonl(path.join(dir, 'a.jsonl'), docs.slice(0, 60));
  writeJsonl(path.join(dir, 'b.jsonl'), docs.slice(60));
  const out = path.join(dir, 'prepared');
  const opts = { tokenizer: byteTokenizer, seed: 42, maxLen: 256, buckets: [50, 100, 150, 200, 250] };
  const res = await prepareDataset({ ...opts, inputs: [path.join(dir, 'a.jsonl'), path.join(dir, 'b.jsonl')], out });
  const m = res.manifest;
  assert.deepEqual(Object.keys(m).sort(), ['bucketHistogram', 'buckets', 'files', 'maxLen', 'paddingWaste', 'seed', 'splits', 'tokenizerSha256']);
  assert.deepEqual(JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')), m);
  assert.equal(m.seed, 42);
  assert.equal(m.tokenizerSha256, byteTokenizer.sha256);
  assert.equal(m.maxLen, 256);
  assert.deepEqual(m.buckets, [50, 100, 150, 200, 250]);
  assert.deepEqual(readdirSync(out).sort(), ['manifest.json', 'test.bin', 'test.jsonl', 'train.bin', 'validation.bin', 'validation.jsonl']);

  // the expected sequences of each document, by its split
  const expected = new Map<SplitName, string[]>(SPLITS.map((s) => [s, []]));
  const docsPer = { train: 0, validation: 0, test: 0 };
  for (const d of docs) {
    const s = splitOf(d.id, 42);
    docsPer[s]++;
    for (const seq of packDocument(encodeUnits(byteTokenizer, d.text), { limit: 250, buckets: m.buckets, bosId: 1, eosId: 2 })) expected.get(s)!.push(JSON.stringify(seq));
  }
  const ds = loadDataset(out, { tokenizerSha256: byteTokenizer.sha256 });
  let positions = 0, tokens = 0;
  for (const s of SPLITS) {
    assert.equal(m.splits[s].docs, docsPer[s]);
    const split = ds.split(s);
    const got: string[] = [];
    for (const b of split.buckets) {
      assert.equal(b.count, m.bucketHistogram[s][String(b.length)]);
      for (const row of rowsOf(b.tokens, b.length)) {
        assert.equal(row[0], 1, '<bos> first');
        assert.ok(row.length <= b.length && (b.length === 50 || row.length > m.buckets[m.buckets.indexOf(b.length) - 1]), 'row is in the smallest bucket that holds it');
        got.push(JSON.stringify(row));
        tokens += row.length;
      }
      positions += b.count * b.length;
    }
    assert.deepEqual(got.sort(), expected.get(s)!.sort(), `split ${s}`);
    assert.equal(m.splits[s].sequences, got.length);
    // every document's text is recoverable: its last sequence ends with <eos>
    assert.equal(got.filter((r) => r.endsWith(',2]')).length, docsPer[s]);
  }
  assert.ok(docsPer.train > docsPer.validation && docsPer.validation > 0 && docsPer.test > 0);
  assert.equal(m.paddingWaste, (positions - tokens) / positions);
  assert.ok(readdirSync(dir).every((n) => !n.includes('.tmp-')), 'no temp dir left');

  // same inputs in another order and file layout → same assignment and same per-split content
  const out2 = path.join(dir, 'prepared2');
  writeJsonl(path.join(dir, 'all.jsonl'), [...docs].reverse());
  const res2 = await prepareDataset({ ...opts, inputs: [path.join(dir, 'all.jsonl')], out: out2 });
  assert.deepEqual(res2.manifest, m);
  // same run again → identical bytes; another seed → another split
  const out3 = path.join(dir, 'prepared3');
  await prepareDataset({ ...opts, inputs: [path.join(dir, 'a.jsonl'), path.join(dir, 'b.jsonl')], out: out3 });
  for (const f of readdirSync(out)) assert.ok(readFileSync(path.join(out, f)).equals(readFileSync(path.join(out3, f))), f);
  const res4 = await prepareDataset({ ...opts, seed: 7, inputs: [path.join(dir, 'all.jsonl')], out: path.join(dir, 'p4') });
  assert.notDeepEqual(res4.manifest.splits, m.splits);
  // re-running into an existing DIR replaces it
  const res5 = await prepareDataset({ ...opts, seed: 7, inputs: [path.join(dir, 'a.jsonl'), path.join(dir, 'b.jsonl')], out });
  assert.equal(loadDataset(out).manifest.seed, 7);
  assert.equal(res5.manifest.seed, 7);
  rmSync(dir, { recursive: true, force: true });
});

test('prepare: --max-len below the largest bucket drops the buckets that would not fit', async () => {
  const dir = tmp();
  writeJsonl(path.join(dir, 'a.jsonl'), corpus(30));
  const res = await prepareDataset({ tokenizer: byteTokenizer, seed: 1, maxLen: 128, buckets: [50, 100, 150], inputs: [path.join(dir, 'a.jsonl')], out: path.join(dir, 'o') });
  assert.deepEqual(res.manifest.buckets, [50, 100]);
  assert.deepEqual(res.droppedBuckets, [150]);
  const ds = loadDataset(path.join(dir, 'o'));
  for (const s of SPLITS) for (const b of ds.split(s).buckets) assert.ok(b.length <= 100);
  rmSync(dir, { recursive: true, force: true });
});

test('prepare: bad input is a one-line UserError and leaves no output that looks complete', async () => {
  const dir = tmp();
  const out = path.join(dir, 'o');
  const run = (inputs: string[], extra: object = {}) => prepareDataset({ tokenizer: byteTokenizer, seed: 1, maxLen: 256, buckets: [50, 100], inputs, out, ...extra });
  const rejects = async (p: Promise<unknown>, re: RegExp) => {
    await assert.rejects(p, (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n'));
    assert.equal(existsSync(out), false, 'no output dir');
    assert.ok(readdirSync(dir).every((n) => !n.includes('.tmp-')), 'temp dir removed');
  };
  writeFileSync(path.join(dir, 'empty.jsonl'), '');
  await rejects(run([path.join(dir, 'empty.jsonl')]), /empty\.jsonl: empty input/);
  writeJsonl(path.join(dir, 'blank.jsonl'), [{ id: 'x', text: '' }]);
  await rejects(run([path.join(dir, 'blank.jsonl')]), /empty input \(no document with text\)/);
  await rejects(run([path.join(dir, 'missing.jsonl')]), /missing\.jsonl: cannot open/);
  await rejects(run([]), /--in/);
  writeJsonl(path.join(dir, 'good.jsonl'), corpus(5));
  writeFileSync(path.join(dir, 'broken.jsonl'), JSON.stringify(corpus(1)[0]) + '\n{"id": "z", "text": "Câu');
  await rejects(run([path.join(dir, 'good.jsonl'), path.join(dir, 'broken.jsonl')]), /broken\.jsonl:2: truncated/);
  writeJsonl(path.join(dir, 'notext.jsonl'), [{ id: 'x', body: 'Xin chào.' }]);
  await rejects(run([path.join(dir, 'notext.jsonl')]), /notext\.jsonl:1: missing text field/);
  await rejects(run([path.join(dir, 'good.jsonl')], { tokenizer: { ...byteTokenizer, vocabSize: 70_000 } }), /16-bit/);
  await rejects(run([path.join(dir, 'good.jsonl')], { maxLen: 20 }), /--buckets: no bucket ≤ --max-len 20/);
  rmSync(dir, { recursive: true, force: true });
});
