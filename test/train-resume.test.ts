/**
 * `vilm train` (single process, the real model on wasm, configs/test.yaml): 10 steps straight give
 * the same weightsSha256 as 5 steps + --resume + 5 steps; the run directory holds final.json with
 * every field, a log.jsonl without duplicated steps, and bad invocations fail with one line.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadCheckpoint } from '../src/train/checkpoint.ts';
import type { RunLogRecord } from '../src/events/index.ts';
import { preparedData } from './support/fixtures.ts';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-train-resume-'));
const data = preparedData(path.join(root, 'prep'));
test.after(() => rmSync(root, { recursive: true, force: true }));
let straight = '';

function train(out: string, extra: string[]) {
  const r = spawnSync(process.execPath, [
    '--import', 'tsx', 'src/cli/main.ts', 'train', '--config', 'configs/test.yaml', '--data', data, '--out', path.join(root, out),
    '--backend', 'wasm', '--steps', '10', '--test-sequences', '8', ...extra,
  ], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Final { step: number; weightsSha256: string; trainLoss: number; valLoss: number; testLoss: number; testPpl: number; testBitsPerByte: number | null }

test('10 steps straight = 5 steps, then --resume for the other 5 (same weightsSha256)', () => {
  const a = train('straight', []);
  assert.equal(a.status, 0, a.stderr);
  const fa = JSON.parse(readFileSync(path.join(root, 'straight', 'final.json'), 'utf8')) as Final;
  assert.equal(fa.step, 10);
  for (const k of ['trainLoss', 'valLoss', 'testLoss', 'testPpl', 'testBitsPerByte'] as const) assert.ok(Number.isFinite(fa[k]), `${k} = ${fa[k]}`);
  // bits per UTF-8 byte: loss in bits spread over more than one byte per token
  assert.ok(fa.testBitsPerByte! > 0 && fa.testBitsPerByte! < fa.testLoss / Math.LN2);
  assert.ok(Math.abs(fa.testPpl - Math.exp(fa.testLoss)) < 1e-9 * fa.testPpl);
  assert.deepEqual(JSON.parse(a.stdout), fa);
  straight = fa.weightsSha256;

  const b1 = train('split', ['--stop-at', '5']);
  assert.equal(b1.status, 0, b1.stderr);
  assert.equal(existsSync(path.join(root, 'split', 'final.json')), false);
  const half = loadCheckpoint(path.join(root, 'split'));
  assert.equal(half.step, 5);
  const halfSeconds = half.meta.trainSeconds as number;
  assert.ok(halfSeconds > 0, 'the checkpoint keeps the training clock');
  const b2 = train('split', ['--resume']);
  assert.equal(b2.status, 0, b2.stderr);
  const fb = JSON.parse(readFileSync(path.join(root, 'split', 'final.json'), 'utf8')) as Final;
  assert.equal(fb.weightsSha256, fa.weightsSha256);
  // everything but the clock: trainSeconds is measured time; it carries over the resume
  const { trainSeconds: ta, ...restA } = fa as Final & { trainSeconds: number };
  const { trainSeconds: tb, ...restB } = fb as Final & { trainSeconds: number };
  assert.deepEqual(restB, restA);
  assert.ok(ta > 0 && tb > halfSeconds, `resumed clock ${tb} continues from ${halfSeconds}`);

  // the run log has each step once, in order, and per-step timings
  const recs = readFileSync(path.join(root, 'split', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as RunLogRecord);
  const steps = recs.filter((r) => r.type === 'step');
  assert.deepEqual(steps.map((r) => r.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  for (const s of steps) if (s.type === 'step') assert.ok(s.timing.total >= s.timing.compute && s.tokens > 0 && s.lr > 0);
  assert.ok(recs.some((r) => r.type === 'test'));
  assert.ok(recs.filter((r) => r.type === 'val').length >= 3);
});

test('one command starts and restarts a run: a finished run is not redone, a different config is refused in one line, --fresh starts over', { timeout: 240_000 }, () => {
  const r = train('nothing-here', ['--resume']);
  assert.equal(r.status, 1);
  assert.match(r.stderr.trim(), /^vilm: .*checkpoint\.vilm: no checkpoint to resume from$/);
  // the same command again after the run finished: exit 0, the same final.json, no training
  const again = train('straight', []);
  assert.equal(again.status, 0, again.stderr);
  assert.equal((JSON.parse(again.stdout) as Final).weightsSha256, straight);
  assert.match(again.stderr, /already finished/);
  assert.doesNotMatch(again.stderr, /step step=/);
  // another learning rate into the same OUT: refused, naming the field
  const other = train('straight', ['--set', 'train.lr=0.5']);
  assert.equal(other.status, 1);
  assert.match(other.stderr.trim().split('\n').pop()!, /^vilm: .*checkpoint\.vilm: train\.lr is 0\.01 in the checkpoint, the run asks for 0\.5 \(pass --fresh/);
  // --fresh: starts over (and ends where a fresh run ends)
  const fresh = train('straight', ['--fresh']);
  assert.equal(fresh.status, 0, fresh.stderr);
  assert.match(fresh.stderr, /--fresh: .* held a run; starting over/);
  assert.equal((JSON.parse(fresh.stdout) as Final).weightsSha256, straight);
  assert.equal(train('straight', ['--fresh', '--resume']).status, 2, 'contradictory flags');
});

test('SIGTERM: the step in progress finishes, a checkpoint is written, exit 75; the same command again completes the same run', { timeout: 240_000 }, async () => {
  const out = path.join(root, 'sigterm');
  const p = spawn(process.execPath, [
    '--import', 'tsx', 'src/cli/main.ts', 'train', '--config', 'configs/test.yaml', '--data', data, '--out', out,
    '--backend', 'wasm', '--steps', '10', '--test-sequences', '8',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  let sent = false;
  p.stderr!.on('data', (b: Buffer) => {
    err += b.toString();
    if (!sent && /step step=2 /.test(err)) { sent = true; p.kill('SIGTERM'); }
  });
  const code = await new Promise<number | null>((res) => p.on('exit', (c) => res(c)));
  assert.equal(code, 75, err);
  assert.match(err, /SIGTERM: stopping after the current step/);
  const step = loadCheckpoint(out).step;
  assert.ok(step >= 2 && step < 10, `checkpoint at step ${step}`);
  assert.equal(existsSync(path.join(out, 'final.json')), false);
  const r = train('sigterm', []);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /resuming the run in OUT/);
  assert.equal((JSON.parse(r.stdout) as Final).weightsSha256, straight);
});
