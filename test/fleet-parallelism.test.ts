/**
 * A fleet larger than a step's micro-shards: the extra workers cannot compute (the micro-shards,
 * fixed by the config, are the units of work), and the coordinator says so once, naming the field
 * that would change it. configs/test.yaml has 4 micro-shards.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/index.ts';
import { shardsWithRows } from '../src/fleet/shard-tree.ts';
import { runTrainingLoop } from '../src/train/loop.ts';
import { setLogInterceptor } from '../src/util/log.ts';
import { preparedData } from './support/fixtures.ts';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-parallelism-'));
const data = preparedData(path.join(root, 'prep'));
const config = loadConfig('configs/test.yaml');
test.after(() => rmSync(root, { recursive: true, force: true }));

test('micro-shards with rows: min(rows, micro_shards)', () => {
  assert.equal(shardsWithRows(16, 8), 8);
  assert.equal(shardsWithRows(3, 8), 3);
  assert.equal(shardsWithRows(8, 8), 8);
});

/** Trains 2 steps with `threads` worker threads; returns the warnings about idle workers. */
async function idleWarnings(threads: number): Promise<string[]> {
  const lines: string[] = [];
  const prev = setLogInterceptor((line) => { lines.push(line); });
  let steps = 0;
  try {
    const r = await runTrainingLoop({
      config, dataDir: data, outDir: path.join(root, `run-${threads}`), resume: false, backend: 'wasm', inProcess: false,
      threads, stopAt: 2, testSequences: 4, observers: [{ onStep: () => { steps++; } }],
    });
    assert.equal(r.step, 2);
  } finally {
    setLogInterceptor(prev);
  }
  assert.equal(steps, 2, 'the run trained');
  return lines.filter((l) => l.includes('micro-shards with rows'));
}

test('more worker threads than micro-shards: one warning that names train.micro_shards', { timeout: 300_000 }, async () => {
  assert.equal(config.train.micro_shards, 4);
  const warned = await idleWarnings(6);
  assert.equal(warned.length, 1, warned.join(''));
  assert.match(warned[0], /6 workers, but a step of the \d+ bucket has 4 micro-shards with rows \(train\.micro_shards 4, \d+ rows\): at most 4 compute at once and 2 workers wait; to use them, raise train\.micro_shards/);
  assert.deepEqual(await idleWarnings(4), [], 'as many threads as micro-shards: no warning');
});
