import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { availableParallelism } from 'node:os';
import path from 'node:path';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-start-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

test('vilm start: sample corpus → tokenizer → prepared data → 2 worker threads → val loss, sample text, report', { timeout: 480_000 }, () => {
  const out = path.join(root, 'run');
  const r = spawnSync('node', ['--import', 'tsx', 'src/cli/main.ts', 'start', '--steps', '4', '--out', out, '--max-tokens', '12'], { encoding: 'utf8', env: { ...process.env, CI: '1' } });
  assert.equal(r.status, 0, r.stderr);
  // the run folder holds what the README promises
  for (const f of ['checkpoint.vilm', 'final.json', 'log.jsonl', 'report.html', 'data/tokenizer.json', 'data/prepared/manifest.json']) {
    assert.ok(existsSync(path.join(out, f)), `missing ${f}`);
  }
  const final = JSON.parse(readFileSync(path.join(out, 'final.json'), 'utf8')) as { step: number; valLoss: number; testLoss: number };
  assert.equal(final.step, 4);
  assert.ok(Number.isFinite(final.valLoss) && final.valLoss > 0);
  // the printed summary carries the validation loss and a non-empty Vietnamese sample after the prompt
  assert.match(r.stdout, new RegExp(`validation loss:\\s+${final.valLoss.toFixed(3)}`));
  const sample = /sample:\s+(.*)/.exec(r.stdout)?.[1] ?? '';
  assert.ok(sample.startsWith('Việt Nam là'), sample);
  assert.ok(sample.length > 'Việt Nam là'.length + 3, sample);
  // the sample config matches the tokenizer trained on the sample corpus
  const tok = JSON.parse(readFileSync(path.join(out, 'data/tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> }; added_tokens: unknown[] };
  assert.equal(Object.keys(tok.model.vocab).length, 2000);
  // the worker threads did the work: 2, or as many as the machine has CPUs when fewer (the fleet
  // never runs more busy threads than cores, src/fleet/coordinator/thread-link.ts)
  const log = readFileSync(path.join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; workers?: number });
  const expected = Math.min(2, availableParallelism());
  assert.ok(log.some((rec) => rec.type === 'step' && rec.workers === expected), `steps with ${expected} workers`);
});

test('vilm start refuses a run folder that already holds a finished run, and a missing corpus, in one line', () => {
  const out = path.join(root, 'run');
  const again = spawnSync('node', ['--import', 'tsx', 'src/cli/main.ts', 'start', '--out', out], { encoding: 'utf8' });
  assert.equal(again.status, 1);
  assert.match(again.stderr.trim(), /^vilm: --out .*already holds a finished run/);
  const missing = spawnSync('node', ['--import', 'tsx', 'src/cli/main.ts', 'start', '--corpus', path.join(root, 'nope'), '--out', path.join(root, 'x')], { encoding: 'utf8' });
  assert.equal(missing.status, 1);
  assert.equal(missing.stderr.trim().split('\n').length, 1);
  assert.match(missing.stderr, /--corpus .*nope: no such file or folder/);
});
