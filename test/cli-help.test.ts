/**
 * `--help` as a user reads it (issue 12): wrapped at the terminal's width between words, never in
 * the middle of one; each example a `# description` line above a command on one line, so it can be
 * copied; unwrapped when piped.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const squash = (s: string) => s.replace(/\s+/g, ' ');

test('help on an 80-column terminal: no line over 80, every description with its words whole', { timeout: 60_000 }, () => {
  // util-linux `script` gives the command a real terminal of 80 columns
  const r = spawnSync('script', ['-qc', 'stty cols 80; node bin/vilm.js eval --help', '/dev/null'], { encoding: 'utf8', timeout: 50_000 });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.replace(/\r/g, '').split('\n');
  assert.ok(lines.length > 20, r.stdout);
  for (const l of lines) assert.ok(l.length <= 80, `wider than the terminal: ${JSON.stringify(l)}`);
  const text = squash(r.stdout.replace(/\r/g, ''));
  for (const d of ['threads scoring the --in windows (1: in the main thread); the result is the same for any number',
    'tfjs backend (auto: tensorflow when installed, else wasm, else cpu)']) {
    assert.ok(text.includes(d), `cut or missing: ${d}`);
  }
});

test('examples piped: a # line with the description, then the whole command on one line', { timeout: 60_000 }, () => {
  const r = spawnSync(process.execPath, ['bin/vilm.js', 'coordinator', '--help'], { encoding: 'utf8', timeout: 50_000 });
  assert.equal(r.status, 0, r.stderr);
  const ex = r.stdout.split('\nExamples:\n')[1]?.split('\n').map((l) => l.trim()).filter(Boolean) ?? [];
  assert.ok(ex.length >= 6 && ex.length % 2 === 0, r.stdout);
  for (let i = 0; i < ex.length; i += 2) {
    assert.match(ex[i], /^# \S/, `description line: ${ex[i]}`);
    assert.match(ex[i + 1], /^vilm (coordinator|worker) /, `command line: ${ex[i + 1]}`);
  }
  assert.ok(ex.includes('vilm coordinator --workers 0 --min-workers 2 --host 0.0.0.0 --token-file token.txt --data runs/data --out runs/r'));
});

test('the top-level help lists export once', { timeout: 60_000 }, () => {
  const r = spawnSync(process.execPath, ['bin/vilm.js', '--help'], { encoding: 'utf8', timeout: 50_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.match(/vilm (model )?export/g)?.length, 1, r.stdout);
  const m = spawnSync(process.execPath, ['bin/vilm.js', 'model', '--help'], { encoding: 'utf8', timeout: 50_000 });
  assert.doesNotMatch(m.stdout, /export/);
});
