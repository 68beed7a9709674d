/**
 * Operator habits (issue 12): per-machine flags from VILM_* environment variables (named in
 * --help, the command line wins, a bad value is one line naming the variable), and
 * `--log-format json` giving nothing but JSON on stderr — worker-thread lines and the
 * coordinator's port line included.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-env-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

function vilm(args: string[], env: Record<string, string> = {}, timeout = 60_000) {
  return spawnSync(process.execPath, ['bin/vilm.js', ...args], { encoding: 'utf8', timeout, env: { ...process.env, ...env } });
}

test('--help names the environment variable of each per-machine flag', { timeout: 60_000 }, () => {
  const w = vilm(['worker', '--help']);
  for (const v of ['VILM_CONNECT', 'VILM_TOKEN_FILE', 'VILM_TLS_CA', 'VILM_THREADS', 'VILM_METRICS_PORT']) assert.match(w.stdout, new RegExp(`\\[env ${v}\\]`));
  const c = vilm(['coordinator', '--help'], { VILM_PORT: '7171' });
  for (const v of ['VILM_TOKEN_FILE', 'VILM_HOST', 'VILM_PORT', 'VILM_WORKERS']) assert.match(c.stdout, new RegExp(`\\[env ${v}\\]`));
  assert.match(c.stdout, /\[default: 7171, from VILM_PORT\]/);
});

test('VILM_CONNECT stands in for --connect; the flag wins; a bad number names the variable', { timeout: 120_000 }, () => {
  // nothing listens on port 9: the worker names the URL it tried, so we see which one it used
  const a = vilm(['worker', '--retry', '0'], { VILM_CONNECT: 'ws://127.0.0.1:9' });
  assert.notEqual(a.status, 0);
  assert.match(a.stderr, /ws:\/\/127\.0\.0\.1:9\b/);
  const b = vilm(['worker', '--retry', '0', '--connect', 'ws://127.0.0.1:19'], { VILM_CONNECT: 'ws://127.0.0.1:9' });
  assert.match(b.stderr, /ws:\/\/127\.0\.0\.1:19\b/);
  assert.doesNotMatch(b.stderr, /127\.0\.0\.1:9\b/);
  const c = vilm(['coordinator', '--workers', '1'], { VILM_PORT: 'seven' });
  assert.equal(c.status, 1, c.stderr);
  assert.equal(c.stderr.trim(), "vilm: VILM_PORT: expected a number for --port, got 'seven'");
});

test('--log-format json: every stderr line of a coordinator run with worker threads is a JSON object', { timeout: 300_000 }, () => {
  const r = vilm(['coordinator', '--workers', '2', '--port', '0', '--steps', '2', '--test-sequences', '4', '--set', 'train.eval_sequences=4',
    '--out', path.join(root, 'run'), '--log-format', 'json'], { VILM_CACHE_DIR: path.join(root, 'cache') }, 280_000);
  assert.equal(r.status, 0, r.stderr.slice(-2000));
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.ok(lines.length > 10, r.stderr);
  const records = lines.map((l) => {
    try { return JSON.parse(l) as { msg: string; thread?: string; port?: number }; } catch { assert.fail(`not JSON: ${l}`); }
  });
  assert.ok(records.some((x) => x.thread === 'worker'), 'no line from a worker thread');
  assert.ok(records.some((x) => x.msg === 'vilm-coordinator-port' && typeof x.port === 'number' && x.port > 0), 'no port record');
  const bad = vilm(['train', '--steps', 'x', '--log-format', 'json']);
  assert.equal(bad.status, 1);
  assert.deepEqual(bad.stderr.trim().split('\n').map((l) => (JSON.parse(l) as { level: string }).level), ['error']);
});
