/**
 * Bad input through the real CLI: a corpus line that is not a JSON object, invalid UTF-8, an empty
 * corpus, an unknown flag — a `vilm:` line naming the file (and line) or the flag, a non-zero exit,
 * and no output file left behind.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-cli-input-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

const vilm = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', timeout: 60_000 });
const errorLine = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('vilm: '));

test('corpus errors: a non-object line, invalid UTF-8 and an empty file name the file (and line); nothing is written', { timeout: 120_000 }, () => {
  const cases: [string, Buffer, RegExp][] = [
    ['array-line.jsonl', Buffer.from('{"id":"a","title":"t","text":"Xin chào Việt Nam, đây là một câu."}\n[1,2]\n'), /array-line\.jsonl:2: expected a JSON object$/],
    ['bad-utf8.jsonl', Buffer.concat([Buffer.from('{"id":"a","title":"t","text":"ok '), Buffer.from([0xff, 0xfe]), Buffer.from(' bad"}\n')]), /bad-utf8\.jsonl: invalid UTF-8 near line 1$/],
    ['empty.jsonl', Buffer.alloc(0), /empty\.jsonl: empty input$/],
  ];
  for (const [name, bytes, re] of cases) {
    const f = path.join(root, name);
    writeFileSync(f, bytes);
    const out = path.join(root, `${name}.out`);
    const r = vilm('data', 'clean', '--in', f, '--out', out);
    assert.notEqual(r.status, 0, name);
    const lines = errorLine(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], re);
    // and nothing else: no progress or summary line before the error
    assert.equal(r.stderr.trim(), lines[0], `${name}: stderr is the one error line`);
    assert.ok(!existsSync(out), `${name}: no output left`);
  }
});

test('an unknown flag is refused with exit 2, naming it', { timeout: 60_000 }, () => {
  const r = vilm('eval', '--in', 'x.jsonl', '--bogus-flag', '1');
  assert.equal(r.status, 2, r.stderr);
  assert.match(errorLine(r.stderr)[0] ?? '', /Unknown arguments?: bogus-flag/);
});
