import test from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readTokenFile, tokenBits } from '../src/cli/token-file.ts';
import { UserError } from '../src/util/errors.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'vilm-token-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const HEX64 = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';

function file(name: string, text: string, mode = 0o600): string {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  chmodSync(f, mode);
  return f;
}

/** stderr lines written while `fn` runs. */
function stderrOf(fn: () => void): string {
  const write = process.stderr.write.bind(process.stderr);
  let out = '';
  process.stderr.write = ((chunk: string | Uint8Array) => { out += String(chunk); return true; }) as typeof process.stderr.write;
  try { fn(); } finally { process.stderr.write = write; }
  return out;
}

test('--token-file: a good token is read and trimmed; no file means no token', () => {
  assert.equal(readTokenFile(file('good', `  ${HEX64}\n`)), HEX64);
  const b64 = 'n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg='; // 32 random bytes, base64
  assert.equal(readTokenFile(file('b64', b64)), b64);
  assert.equal(readTokenFile(undefined), undefined);
});

test('--token-file: fewer than 256 bits of entropy is refused (hex needs 64 characters, base64 43)', () => {
  assert.ok(tokenBits(HEX64) >= 256 && tokenBits(HEX64.slice(0, 63)) < 256);
  assert.equal(tokenBits('a'.repeat(500)), 0);
  for (const t of [HEX64.slice(0, 63), 'correct horse battery staple', '0123456789abcdef0123', 'x'.repeat(100)]) {
    assert.throws(() => readTokenFile(file('weak', t)), (e: unknown) => e instanceof UserError && /weak: the token carries at most \d+ bits, at least 256/.test(e.message) && !e.message.includes('\n'));
  }
});

test('--token-file: a token file readable by group or others is used with a warning naming it (as ssh does)', () => {
  const open = file('open', HEX64, 0o644);
  const warned = stderrOf(() => assert.equal(readTokenFile(open), HEX64));
  assert.match(warned, /open: the token file is readable by group or others \(mode 644\); chmod 600/);
  assert.equal(stderrOf(() => readTokenFile(file('closed', HEX64, 0o600))), '');
});

test('--token-file: missing, too short, or the shipped example token are refused with one line naming the file', () => {
  const cases: [string, RegExp][] = [
    [path.join(dir, 'missing'), /missing: cannot read --token-file \(ENOENT\)/],
    [file('short', 'abc\n'), /short: the token carries at most \d+ bits/],
    [file('example', 'replace-me-with-openssl-rand-hex-32\n'), /example: still the example token/],
  ];
  for (const [f, re] of cases) {
    assert.throws(() => readTokenFile(f), (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n'));
  }
});
