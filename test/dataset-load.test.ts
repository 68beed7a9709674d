import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, truncateSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { prepareDataset } from '../src/data/prepare/prepare.ts';
import { loadDataset } from '../src/data/dataset.ts';
import type { Tokenizer } from '../src/tokenizer/types.ts';
import type { Manifest } from '../src/data/types.ts';
import { UserError } from '../src/util/errors.ts';

const byteTokenizer: Tokenizer = {
  vocabSize: 259, padId: 0, bosId: 1, eosId: 2,
  sha256: createHash('sha256').update('byte-tokenizer').digest('hex'),
  encode: (text) => Array.from(Buffer.from(text, 'utf8'), (b) => b + 3),
  decode: (ids) => Buffer.from(Array.from(ids).filter((t) => t >= 3).map((t) => t - 3)).toString('utf8'),
};

const root = mkdtempSync(path.join(tmpdir(), 'vilm-dataset-'));
const good = path.join(root, 'good');
test.before(async () => {
  const docs = Array.from({ length: 40 }, (_, i) => ({ id: `d${i}`, text: `Câu thứ ${i} nói về Việt Nam. `.repeat(1 + (i % 9)) + '\n\nĐoạn cuối.' }));
  writeFileSync(path.join(root, 'in.jsonl'), docs.map((d) => JSON.stringify(d)).join('\n') + '\n');
  await prepareDataset({ inputs: [path.join(root, 'in.jsonl')], tokenizer: byteTokenizer, out: good, seed: 3, maxLen: 256, buckets: [50, 100, 150, 200, 250] });
});
test.after(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
/** a copy of the good dataset, changed by `edit` */
function variant(edit: (dir: string) => void): string {
  const dir = path.join(root, `v${n++}`);
  cpSync(good, dir, { recursive: true });
  edit(dir);
  return dir;
}
function editManifest(dir: string, f: (m: Manifest, raw: Record<string, unknown>) => void): void {
  const file = path.join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
  f(m, m as unknown as Record<string, unknown>);
  writeFileSync(file, JSON.stringify(m));
}
function fails(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n'), re.source);
}

test('loadDataset: the good directory loads; splits are views into one read of each file', () => {
  const ds = loadDataset(good, { tokenizerSha256: byteTokenizer.sha256 });
  const train = ds.split('train');
  assert.equal(ds.split('train'), train, 'cached');
  assert.equal(train.sequences, ds.manifest.splits.train.sequences);
  const buffers = new Set(train.buckets.map((b) => b.tokens.buffer));
  assert.equal(buffers.size, 1);
  const b = train.buckets[0];
  assert.deepEqual(Array.from(train.sequence(b.length, 0)), Array.from(b.tokens.subarray(0, b.length)));
  assert.throws(() => train.sequence(b.length, b.count), RangeError);
});

test('loadDataset: missing or invalid manifest and token files are UserErrors naming file and field', () => {
  fails(() => loadDataset(path.join(root, 'nope')), /nope\/manifest\.json: not found/);
  fails(() => loadDataset(variant((d) => writeFileSync(path.join(d, 'manifest.json'), '{"seed": 3,'))), /manifest\.json: invalid JSON/);
  fails(() => loadDataset(variant((d) => editManifest(d, (_m, raw) => { delete raw.tokenizerSha256; }))), /manifest\.json: field 'tokenizerSha256'/);
  fails(() => loadDataset(variant((d) => editManifest(d, (m) => { m.buckets = [100, 50]; }))), /field 'buckets\[1\]' must be strictly ascending/);
  fails(() => loadDataset(variant((d) => editManifest(d, (m) => { m.splits.validation.sequences += 1; }))), /field 'bucketHistogram\.validation' sums to/);
  fails(() => loadDataset(variant((d) => editManifest(d, (m) => { m.files.test = '../x.bin'; }))), /field 'files\.test'/);
  fails(() => loadDataset(variant((d) => editManifest(d, (_m, raw) => { raw.paddingWaste = 'low'; }))), /field 'paddingWaste'/);
  fails(() => loadDataset(variant((d) => rmSync(path.join(d, 'test.bin')))), /test\.bin: token file of split 'test' is missing/);
  fails(() => loadDataset(variant((d) => truncateSync(path.join(d, 'train.bin'), 10))), /train\.bin: 10 bytes, manifest says \d+/);
  // a row starting with <pad>, and a token count that disagrees with the manifest
  const zeroed = variant((d) => { const f = path.join(d, 'train.bin'); const b = readFileSync(f); b[0] = 0; b[1] = 0; writeFileSync(f, b); });
  fails(() => loadDataset(zeroed).split('train'), /train\.bin: sequence 0 of bucket \d+ starts with <pad>/);
  const counted = variant((d) => editManifest(d, (m) => { m.splits.train.tokens += 1; }));
  fails(() => loadDataset(counted).split('train'), /non-pad tokens, manifest splits\.train\.tokens says/);
});

test('loadDataset: a tokenizer sha256 mismatch is a UserError', () => {
  const other = createHash('sha256').update('other').digest('hex');
  fails(() => loadDataset(good, { tokenizerSha256: other }), /tokenizerSha256 .* does not match tokenizer/);
  fails(() => loadDataset(good).checkTokenizer(other, 'runs/x/tokenizer.json'), /does not match runs\/x\/tokenizer\.json/);
});
