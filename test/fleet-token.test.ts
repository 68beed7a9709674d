import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readTokenFile } from '../src/cli/token-file.ts';
import { UserError } from '../src/util/errors.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'vilm-token-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
}

test('--token-file: a good token is read and trimmed; no file means no token', () => {
  assert.equal(readTokenFile(file('good', '  0123456789abcdef0123\n')), '0123456789abcdef0123');
  assert.equal(readTokenFile(undefined), undefined);
});

test('--token-file: missing, too short, or the shipped example token are refused with one line naming the file', () => {
  const cases: [string, RegExp][] = [
    [path.join(dir, 'missing'), /missing: cannot read --token-file \(ENOENT\)/],
    [file('short', 'abc\n'), /short: the token must be at least 16 characters/],
    [file('example', 'replace-me-with-openssl-rand-hex-32\n'), /example: still the example token/],
  ];
  for (const [f, re] of cases) {
    assert.throws(() => readTokenFile(f), (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n'));
  }
});
