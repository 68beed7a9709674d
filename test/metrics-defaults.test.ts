/**
 * Metrics on by default (issue 12): `vilm train` / `vilm coordinator` serve them on
 * 127.0.0.1:9464 unless `--metrics-port 0`. The default port taken (another run) is a one-line
 * warning and a run without metrics; a port the user gave (flag or VILM_METRICS_PORT) taken is a
 * one-line error naming the flag, non-zero exit. The port logic is checked in-process with a
 * stand-in default port (9464 itself may be taken on a developer's machine), the flags through the CLI.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openRunMetrics } from '../src/cli/run-loop.ts';
import { DEFAULT_METRICS_LINGER, DEFAULT_METRICS_PORT } from '../src/cli/run-options.ts';
import { freePort } from '../scripts/fetch-prometheus.ts';
import { writeSyntheticData } from './support/synthetic-data.ts';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-metrics-defaults-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

/** A port held by someone else (closed by the returned function). */
async function occupied(): Promise<{ port: number; release: () => Promise<void> }> {
  const s: Server = createServer();
  await new Promise<void>((r, j) => { s.once('error', j); s.listen(0, '127.0.0.1', () => r()); });
  const port = (s.address() as { port: number }).port;
  return { port, release: () => new Promise<void>((r) => s.close(() => r())) };
}

/** stderr lines written while `f` runs. */
async function stderrOf<T>(f: () => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => { lines.push(...String(chunk).split('\n').filter((l) => l !== '')); return true; }) as typeof process.stderr.write;
  try { return { value: await f(), lines }; } finally { process.stderr.write = write; }
}

const args = (port: number | undefined) => ({ 'metrics-port': port, 'metrics-host': '127.0.0.1', 'metrics-linger': DEFAULT_METRICS_LINGER, backend: 'wasm' as const });

test('defaults: port 9464 on 127.0.0.1, linger 60 s', () => {
  assert.equal(DEFAULT_METRICS_PORT, 9464);
  assert.equal(DEFAULT_METRICS_LINGER, 60);
});

test('no port given: metrics on the default port; the default port taken: one warning, the run goes on without metrics', { timeout: 30_000 }, async () => {
  const free = await freePort();
  const on = await stderrOf(async () => {
    const m = await openRunMetrics(args(undefined), free);
    // serving at once (liveness), but the line comes when the run starts: an input error before
    // that stays the one line on stderr
    assert.equal((await fetch(`http://127.0.0.1:${free}/healthz`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${free}/readyz`)).status, 503);
    return m;
  });
  try {
    assert.equal(on.value.port, free);
    assert.equal(on.value.observers.length, 1);
    assert.deepEqual(on.lines, []);
    const started = await stderrOf(async () => { on.value.ready(); on.value.ready(); });
    assert.deepEqual(started.lines, [`metrics on http://127.0.0.1:${free}/metrics`]);
    assert.equal((await fetch(`http://127.0.0.1:${free}/readyz`)).status, 200);
  } finally { await on.value.close(); }

  const busy = await occupied();
  try {
    const off = await stderrOf(async () => { const m = await openRunMetrics(args(undefined), busy.port); m.ready(); m.ready(); return m; });
    assert.equal(off.value.port, null);
    assert.deepEqual(off.value.observers, []);
    assert.equal(off.lines.length, 1, off.lines.join('\n'));
    assert.match(off.lines[0], new RegExp(`^warn: metrics: 127\\.0\\.0\\.1:${busy.port} is taken .*this run has no metrics; --metrics-port P`));
    await off.value.linger();
    await off.value.close();

    // the same port asked for explicitly (flag or VILM_METRICS_PORT): a one-line error naming the flag
    await assert.rejects(openRunMetrics(args(busy.port), 1), (e: Error) => e.name === 'UserError'
      && new RegExp(`^--metrics-port ${busy.port}: cannot listen on 127\\.0\\.0\\.1:${busy.port} \\(EADDRINUSE: the port is taken\\)`).test(e.message)
      && !e.message.includes('\n'));
  } finally { await busy.release(); }

  // --metrics-port 0: off, silently
  const zero = await stderrOf(async () => { const m = await openRunMetrics(args(0), free); m.ready(); return m; });
  assert.equal(zero.value.port, null);
  assert.deepEqual(zero.lines, []);
  await assert.rejects(fetch(`http://127.0.0.1:${free}/healthz`), 'nothing listens');
});

test('bad metrics flags: one line naming the flag, before any work', async () => {
  for (const [a, re] of [
    [{ ...args(70000) }, /^--metrics-port: must be 0\.\.65535, got 70000$/],
    [{ ...args(1.5) }, /^--metrics-port: must be 0\.\.65535, got 1\.5$/],
    [{ ...args(undefined), 'metrics-linger': -1 }, /^--metrics-linger: must be a non-negative number of seconds, got -1$/],
    [{ ...args(undefined), 'metrics-linger': NaN }, /^--metrics-linger: must be a non-negative number of seconds, got NaN$/],
  ] as const) {
    await assert.rejects(openRunMetrics(a, 1), (e: Error) => e.name === 'UserError' && re.test(e.message), JSON.stringify(a));
  }
});

test('through the CLI: --help shows the defaults; a taken port given by flag or VILM_METRICS_PORT, and a bad --metrics-linger, are one error line with exit 1', { timeout: 200_000 }, async () => {
  const cli = (a: string[], env: Record<string, string> = {}) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...a],
    { encoding: 'utf8', timeout: 90_000, env: { ...process.env, ...env } });
  const help = cli(['coordinator', '--help']);
  assert.equal(help.status, 0, help.stderr);
  const flat = help.stdout.replace(/\s+/g, ' ');
  assert.match(flat, /--metrics-port .*0: off\..*\[default: 9464\]/);
  assert.match(flat, /--metrics-linger .*\[number\] \[default: 60\]/);

  const data = writeSyntheticData(path.join(root, 'data'), { vocab: 500, buckets: [16, 32], rowsPerBucket: 8, seed: 2 });
  const run = ['train', '--config', 'configs/test.yaml', '--data', data, '--backend', 'wasm', '--steps', '2'];
  const busy = await occupied();
  try {
    const viaFlag = cli([...run, '--out', path.join(root, 'a'), '--metrics-port', String(busy.port)]);
    assert.equal(viaFlag.status, 1, viaFlag.stderr);
    assert.equal(viaFlag.stderr.trim().split('\n').length, 1, viaFlag.stderr);
    assert.match(viaFlag.stderr.trim(), new RegExp(`^vilm: --metrics-port ${busy.port}: cannot listen on 127\\.0\\.0\\.1:${busy.port} \\(EADDRINUSE`));
    const viaEnv = cli([...run, '--out', path.join(root, 'b')], { VILM_METRICS_PORT: String(busy.port) });
    assert.equal(viaEnv.status, 1, viaEnv.stderr);
    assert.match(viaEnv.stderr.trim(), new RegExp(`^vilm: --metrics-port ${busy.port}: cannot listen`));
  } finally { await busy.release(); }
  const linger = cli([...run, '--out', path.join(root, 'c'), '--metrics-linger', '-5']);
  assert.equal(linger.status, 1, linger.stderr);
  assert.equal(linger.stderr.trim(), 'vilm: --metrics-linger: must be a non-negative number of seconds, got -5');
});
