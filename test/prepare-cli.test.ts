import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { loadTokenizer, trainTokenizer, saveTokenizer } from '../src/tokenizer/index.ts';
import { loadDataset } from '../src/data/dataset.ts';
import { BatchSampler, evalBatches } from '../src/data/sampler.ts';

// A few KB of our own Vietnamese text: paragraphs of several sentences each.
const PARAS = [
  'Hà Nội là thủ đô của Việt Nam. Thành phố nằm bên bờ sông Hồng. Mùa thu ở Hà Nội trời trong và gió nhẹ.',
  'Phở là món ăn quen thuộc của người Việt. Nước dùng được ninh từ xương bò trong nhiều giờ. Bánh phở mềm, thịt bò thái mỏng.',
  'Vịnh Hạ Long có hàng nghìn hòn đảo đá vôi. Du khách thường đi thuyền để ngắm cảnh. Nơi đây đã được công nhận là di sản thiên nhiên thế giới.',
  'Đồng bằng sông Cửu Long là vựa lúa lớn nhất cả nước! Người dân sống nhờ trồng lúa, nuôi cá và trồng cây ăn trái.',
  'Tiếng Việt có sáu thanh điệu. Chữ Quốc ngữ dùng bảng chữ cái Latinh với nhiều dấu phụ. Học sinh học đọc và viết từ lớp một.',
  'Cà phê Việt Nam nổi tiếng với vị đậm. Nhiều người thích uống cà phê sữa đá vào buổi sáng. Các quán cà phê nhỏ có mặt ở khắp phố phường.',
  'Tết Nguyên Đán là dịp lễ quan trọng nhất trong năm? Gia đình sum họp, gói bánh chưng và đi chúc Tết họ hàng.',
];
function docText(i: number): string {
  const n = 1 + (i % 4);
  return Array.from({ length: n }, (_, k) => PARAS[(i + k) % PARAS.length]).join('\n');
}

const root = mkdtempSync(path.join(tmpdir(), 'vilm-prepare-cli-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

function vilm(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', env: { ...process.env, CI: '1' } });
}

test('vilm data prepare end to end with a real tokenizer: summary, manifest, token files, decode back', async () => {
  const input = path.join(root, 'clean.jsonl');
  const docs = Array.from({ length: 60 }, (_, i) => ({ id: `vi-${i}`, title: `Bài ${i}`, text: docText(i), source: 'test' }));
  writeFileSync(input, docs.map((d) => JSON.stringify(d)).join('\n') + '\n');
  const tokFile = path.join(root, 'tokenizer.json');
  await saveTokenizer(await trainTokenizer(docs.map((d) => d.text), { vocabSize: 400 }), tokFile);
  const out = path.join(root, 'data');
  const r = vilm('data', 'prepare', '--in', input, '--tokenizer', tokFile, '--out', out, '--seed', '5', '--max-len', '128', '--buckets', '32,64,96,128');
  assert.equal(r.status, 0, r.stderr);
  const tok = loadTokenizer(tokFile);
  const ds = loadDataset(out, { tokenizerSha256: tok.sha256 });
  const m = ds.manifest;
  assert.equal(m.seed, 5);
  assert.equal(m.maxLen, 128);
  assert.deepEqual(m.buckets, [32, 64, 96, 128]);
  for (const s of ['train', 'validation', 'test'] as const) {
    const n = (x: number) => x.toLocaleString('en-US');
    assert.match(r.stdout, new RegExp(`${s}\\s+${n(m.splits[s].docs)}\\s+${n(m.splits[s].sequences)}\\s+${n(m.splits[s].tokens)}\\n`));
  }
  assert.match(r.stdout, new RegExp(`padding waste: ${(100 * m.paddingWaste).toFixed(2)} %`));
  assert.equal(m.splits.train.docs + m.splits.validation.docs + m.splits.test.docs, docs.length);

  // every document's text comes back from its sequences: decode each row, the rows of one split
  // concatenated (in any order) hold exactly the texts of that split's documents
  const texts = new Map(docs.map((d) => [d.text, d]));
  let found = 0;
  for (const s of ['train', 'validation', 'test'] as const) {
    const split = ds.split(s);
    for (const b of split.buckets) {
      for (let i = 0; i < b.count; i++) {
        const row = split.sequence(b.length, i);
        assert.equal(row[0], tok.bosId);
        const body = Array.from(row).filter((t) => t !== 0);
        const text = tok.decode(body);
        assert.ok(docs.some((d) => d.text.includes(text)), `row decodes to text of some document: ${text}`);
        if (body[body.length - 1] === tok.eosId && texts.has(text)) found++;
        // cuts at sentence or paragraph ends (or the document end)
        if (body[body.length - 1] !== tok.eosId) assert.match(text, /[.!?…]\s*$/, `cut not at a sentence end: …${text.slice(-30)}`);
      }
    }
    // the sampler and eval iterator run on the real data
    if (split.sequences > 0) {
      const batch = new BatchSampler(split, { batchTokens: 128, seed: 1 }).next();
      assert.equal(batch.tokens.length, batch.rows * batch.seqLen);
      assert.equal([...evalBatches(split, { batchTokens: 128 })].reduce((a, x) => a + x.rows, 0), split.sequences);
    }
  }
  assert.ok(found > 0, 'some documents fit one sequence and round trip whole');

  // the held-out documents are also kept as text (vilm eval --in DIR/test.jsonl; compressor references)
  assert.ok(!existsSync(path.join(out, 'train.jsonl')), 'training text is not duplicated');
  for (const s of ['validation', 'test'] as const) {
    const lines = readFileSync(path.join(out, `${s}.jsonl`), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: string; text: string });
    assert.equal(lines.length, m.splits[s].docs, `${s}.jsonl holds the split's documents`);
    for (const l of lines) assert.equal(docs.find((d) => d.id === l.id)?.text, l.text);
  }
  // the one-line error path
  const bad = vilm('data', 'prepare', '--in', input, '--tokenizer', tokFile, '--out', path.join(root, 'bad'), '--buckets', '128,32');
  assert.notEqual(bad.status, 0);
  assert.equal(bad.stderr.trim(), 'vilm: --buckets: must be strictly ascending, got 128 then 32');
  assert.equal(existsSync(path.join(root, 'bad')), false);
  const nofile = vilm('data', 'prepare', '--in', path.join(root, 'nope.jsonl'), '--tokenizer', tokFile, '--out', path.join(root, 'bad'));
  assert.notEqual(nofile.status, 0);
  assert.match(nofile.stderr.trim(), /^vilm: .*nope\.jsonl: cannot open \(ENOENT\)$/);
  assert.ok(readFileSync(path.join(out, 'manifest.json'), 'utf8').endsWith('\n'));
  // the tokenizer travels with the data, so training checkpoints embed it
  assert.equal(readFileSync(path.join(out, 'tokenizer.json'), 'utf8'), readFileSync(tokFile, 'utf8'));
});
