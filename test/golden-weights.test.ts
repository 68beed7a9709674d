/**
 * The golden bytes: a fixed short run (configs/test.yaml on the built-in sample corpus, 6 steps,
 * one in-process worker, wasm) must end with exactly this weightsSha256. It guards the whole math
 * path — cleaning, tokenizer, prepare, sampler, model forward/backward, reduction, optimizer — so a
 * refactor that changes any byte fails here. A change that alters the math ON PURPOSE updates
 * GOLDEN in its own commit and says why.
 *
 * The run must also have done something (a pinned hash of untouched weights would pass a broken
 * optimizer): the weights differ from their initial values and the training loss fell.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/index.ts';
import { buildLayout, initParams } from '../src/model/layout.ts';
import { weightsSha256 } from '../src/train/checkpoint.ts';
import { preparedData } from './support/fixtures.ts';

/** configs/test.yaml, sample corpus (512-token tokenizer), 6 steps, wasm. */
const GOLDEN = 'd9938b97f2249d5a0862a21a642d35b13530327fd09581f6041cf062a3e2086a';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-golden-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

test('golden weightsSha256 of a fixed 6-step run (configs/test.yaml, sample corpus, wasm)', { timeout: 300_000 }, () => {
  const data = preparedData(path.join(root, 'prep'));
  const out = path.join(root, 'run');
  const r = spawnSync(process.execPath, [
    '--import', 'tsx', 'src/cli/main.ts', 'train', '--config', 'configs/test.yaml', '--data', data, '--out', out,
    '--backend', 'wasm', '--test-sequences', '8',
  ], { encoding: 'utf8', timeout: 280_000 });
  assert.equal(r.status, 0, r.stderr);
  const final = JSON.parse(readFileSync(path.join(out, 'final.json'), 'utf8')) as { step: number; weightsSha256: string };
  assert.equal(final.step, 6);

  // something happened: the weights moved away from their initialisation and the loss fell
  const cfg = loadConfig('configs/test.yaml');
  const init = weightsSha256(initParams(buildLayout(cfg.model), cfg.model, cfg.train.seed));
  assert.notEqual(final.weightsSha256, init, 'the weights never moved');
  const losses = readFileSync(path.join(out, 'log.jsonl'), 'utf8').trim().split('\n')
    .map((l) => JSON.parse(l) as { type: string; loss?: number }).filter((x) => x.type === 'step').map((x) => x.loss!);
  assert.equal(losses.length, 6);
  assert.ok(losses[5] < losses[0] - 0.2, `training loss did not fall: ${losses.join(', ')}`);

  assert.equal(final.weightsSha256, GOLDEN);
});
