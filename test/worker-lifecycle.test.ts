/**
 * A remote worker's life: SIGTERM makes it leave at once with exit 0 (as PID 1 in a container,
 * Node ignores SIGTERM unless it handles it), while it waits for a coordinator that is away.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('SIGTERM while retrying an absent coordinator: one log line, exit 0, promptly', { timeout: 120_000 }, async () => {
  const port = await closedPort();
  const p = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'worker', '--connect', `ws://127.0.0.1:${port}`, '--retry', '300'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  let sentAt = 0;
  p.stderr!.on('data', (b: Buffer) => {
    err += b.toString();
    if (!sentAt && /retrying/.test(err)) { sentAt = Date.now(); p.kill('SIGTERM'); }
  });
  const killer = setTimeout(() => p.kill('SIGKILL'), 100_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((res) => p.on('exit', (c, s) => res([c, s])));
  clearTimeout(killer);
  assert.ok(sentAt > 0, `the worker never started retrying:\n${err}`);
  assert.equal(signal, null, 'it handled the signal instead of dying by it');
  assert.equal(code, 0, err);
  assert.match(err, /SIGTERM: leaving the coordinator/);
  assert.ok(Date.now() - sentAt < 20_000, 'left promptly');
});
