import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { parseIds } from '../src/cli/commands/tokenizer.ts';
import { UserError } from '../src/util/errors.ts';

// Each CLI call is a child process (a few seconds on a busy machine), so the calls are few; the
// tokenizer itself is tested in tokenizer-bpe.test.ts.
const root = mkdtempSync(path.join(tmpdir(), 'vilm-tokenizer-cli-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

function vilm(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', env: { ...process.env, CI: '1' } });
}

const PARAS = [
  'Huế là cố đô của Việt Nam, nổi tiếng với Đại Nội và sông Hương.',
  'Đà Nẵng có cầu Rồng phun lửa vào tối thứ bảy và chủ nhật hằng tuần.',
  'Năm 2023, dân số Thành phố Hồ Chí Minh khoảng 9,4 triệu người.\nĐây là đô thị đông dân nhất cả nước.',
  'Nón lá là chiếc nón truyền thống; người ta chằm nón từ lá cọ, lá buông.',
];
const docText = (i: number) => PARAS[i % 4] + ` (${i})`;
const input = path.join(root, 'docs.jsonl');
writeFileSync(input, Array.from({ length: 40 }, (_, i) => JSON.stringify({ id: `d${i}`, title: '', text: docText(i), source: 'test' })).join('\n') + '\n');
const tokFile = path.join(root, 'tok.json');

test('vilm tokenizer train writes tokenizer.json with the exact vocabulary and prints a summary', () => {
  const r = vilm('tokenizer', 'train', '--in', input, '--vocab-size', '330', '--out', tokFile);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /vocabulary: 330 = 3 specials .* \+ 256 bytes \+ 71 merges/);
  assert.match(r.stdout, /corpus: 40 documents/);
  const tok = loadTokenizer(tokFile);
  assert.equal(tok.vocabSize, 330);
  assert.match(r.stdout, new RegExp(`sha256 ${tok.sha256.slice(0, 16)}`));
  const tokens = Array.from({ length: 40 }, (_, i) => tok.encode(docText(i)).length).reduce((a, b) => a + b, 0);
  assert.match(r.stdout, new RegExp(`tokens: ${tokens.toLocaleString("en-US")} `));
});

test('vilm tokenizer encode prints the ids as a JSON array; decode gives the text back', () => {
  const text = '  Huế và Đà Nẵng, năm 2023!\nxin chào';
  const r = vilm('tokenizer', 'encode', '--tokenizer', tokFile, '--text', text, '--bos-eos');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^\[\d+(,\d+)*\]\n$/);
  const ids = JSON.parse(r.stdout) as number[];
  assert.deepEqual(ids, [1, ...loadTokenizer(tokFile).encode(text), 2]);
  const d = vilm('tokenizer', 'decode', '--tokenizer', tokFile, '--ids', JSON.stringify(ids), '--json');
  assert.equal(d.status, 0, d.stderr);
  assert.equal(JSON.parse(d.stdout), text);
});

test('bad input: one-line errors, non-zero exit, no tokenizer.json left behind', () => {
  const out = path.join(root, 'big.json');
  const r = vilm('tokenizer', 'train', '--in', input, '--vocab-size', '50000', '--out', out);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^vilm: tokenizer train: the corpus can give at most \d+ tokens .*--vocab-size ≤ \d+$/m);
  assert.equal(existsSync(out), false);
  assert.deepEqual(readdirSync(root).filter((f) => f.includes('big')), []);
  assert.deepEqual(parseIds('[1, 20, 3]'), [1, 20, 3]);
  for (const bad of ['[1, "a"]', '1', '[1.5]', 'not json']) assert.throws(() => parseIds(bad), (e: unknown) => e instanceof UserError && /^--ids: expected a JSON array/.test(e.message));
});

test('--help shows examples', () => {
  const h = vilm('tokenizer', 'train', '--help');
  assert.equal(h.status, 0);
  assert.match(h.stdout, /--vocab-size .*default: 10000/);
  assert.match(h.stdout, /Examples:\n\s+# \S.*\n\s+vilm tokenizer train --in /);
});
