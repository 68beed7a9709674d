import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { cleanCorpus, formatCleanReport } from '../src/data/clean/index.ts';
import { UserError } from '../src/util/errors.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'vilm-clean-corpus-'));
const doc = (id: string, text: string) => JSON.stringify({ id, title: `Bài ${id}`, text, source: 'test', url: `https://example.org/${id}` });
const long = 'Đồng bằng sông Cửu Long là vùng đất phù sa màu mỡ, nơi có mạng lưới kênh rạch chằng chịt và những cánh đồng lúa thẳng cánh cò bay.';

function writeInputs(): [string, string] {
  const a = path.join(dir, 'a.jsonl');
  const b = path.join(dir, 'b.jsonl');
  writeFileSync(a, [
    doc('1', `(Dân trí) - ${long}\r\n\r\n== Tham khảo ==\r\nSách A`),
    doc('2', 'Quá ngắn 😀.'),
    doc('3', `${long}\nTheo VnExpress`),
  ].join('\n') + '\n');
  writeFileSync(b, doc('4', `TTO - ${long}`) + '\n' + doc('5', `Hà Nội (TTXVN) - Một bài khác hẳn. ${long}`) + '\n');
  return [a, b];
}

test('cleanCorpus streams several files, drops short and duplicate documents, reports per rule', async () => {
  const [a, b] = writeInputs();
  const out = path.join(dir, 'out', 'clean.jsonl');
  const r = await cleanCorpus([a, b], out, { minChars: 50 });
  const docs = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
  // doc 1 survives; 2 is too short; 3 and 4 clean to the same text as 1 (duplicates); 5 is different
  assert.deepEqual(docs.map((d) => d.id), ['1', '5']);
  assert.equal(docs[0].text, long);
  assert.equal(docs[0].url, 'https://example.org/1');
  assert.equal(docs[0].title, 'Bài 1');
  assert.equal(docs[1].text, `Một bài khác hẳn. ${long}`);
  assert.equal(r.docsIn, 5);
  assert.equal(r.docsOut, 2);
  assert.equal(r.droppedShort, 1);
  assert.equal(r.droppedDuplicate, 2);
  assert.ok(r.removed.newsTags > 0 && r.removed.wikiSections > 0 && r.removed.nonLatin > 0);
  const removed = Object.values(r.removed).reduce((s, x) => s + x, 0);
  assert.equal(r.charsIn - removed - r.charsDroppedShort - r.charsDroppedDuplicate, r.charsOut);
  const table = formatCleanReport(r);
  assert.match(table, /docs in: 5 {2}docs out: 2/);
  assert.match(table, /newsTags/);
});

test('bad input: a missing text field names the file and line, and leaves no output', async () => {
  const bad = path.join(dir, 'bad.jsonl');
  writeFileSync(bad, doc('1', long) + '\n' + JSON.stringify({ id: '2', title: 'x' }) + '\n');
  const outDir = path.join(dir, 'bad-out');
  await assert.rejects(cleanCorpus([bad], path.join(outDir, 'o.jsonl')), (e: unknown) => e instanceof UserError && e.message === `${bad}:2: missing text field 'text'`);
  assert.deepEqual(existsSync(outDir) ? readdirSync(outDir) : [], []);
  const empty = path.join(dir, 'empty.jsonl');
  writeFileSync(empty, '');
  await assert.rejects(cleanCorpus([empty], path.join(outDir, 'o.jsonl')), (e: unknown) => e instanceof UserError && e.message.includes(empty));
  await assert.rejects(cleanCorpus([path.join(dir, 'nope.jsonl')], path.join(outDir, 'o.jsonl')), (e: unknown) => e instanceof UserError && e.message.includes('nope.jsonl'));
  await assert.rejects(cleanCorpus([], path.join(outDir, 'o.jsonl')), UserError);
  assert.deepEqual(existsSync(outDir) ? readdirSync(outDir) : [], []);
});

test('vilm data clean prints the report; bad input exits non-zero with one line', () => {
  const [a, b] = writeInputs();
  const out = path.join(dir, 'cli.jsonl');
  const ok = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'data', 'clean', '--in', a, b, '--out', out, '--min-chars', '50', '--json'], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  const report = JSON.parse(ok.stdout) as { docsOut: number; removed: Record<string, number> };
  assert.equal(report.docsOut, 2);
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').length, 2);
  const bad = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'data', 'clean', '--in', path.join(dir, 'missing.jsonl'), '--out', out], { encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /^vilm: .*missing\.jsonl.*\n$/);
});
