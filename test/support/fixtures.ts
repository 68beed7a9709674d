/**
 * Shared fixtures for the dist-* and train-* tests (not a test file itself).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { writeSyntheticData } from './synthetic-data.ts';

/** Random token rows in buckets 16 and 32: enough for the distribution and toy-model tests. */
export function syntheticData(dir: string, vocab: number, seed = 1, rowsPerBucket = 24): string {
  return writeSyntheticData(dir, { vocab, buckets: [16, 32], rowsPerBucket, seed });
}

const SAMPLE = 'data/sample';

/**
 * The prepared data the end-to-end tests train on: the sample corpus (data/sample/*.jsonl) through
 * `vilm data clean`, `vilm tokenizer train --vocab-size 512` and `vilm data prepare` (buckets up to
 * configs/test.yaml's max_len 128), with the tokenizer.json copied in (for bits per byte). Takes a
 * few seconds; each test file calls it once.
 */
export function preparedData(dir: string): string {
  const files = readdirSync(SAMPLE).filter((f) => f.endsWith('.jsonl')).map((f) => path.join(SAMPLE, f));
  if (files.length === 0) throw new Error(`${SAMPLE}: no sample corpus`);
  const clean = path.join(dir, 'clean.jsonl');
  const tok = path.join(dir, 'tokenizer.json');
  const data = path.join(dir, 'data');
  const vilm = (args: string[]) => execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  vilm(['data', 'clean', '--in', ...files, '--out', clean]);
  vilm(['tokenizer', 'train', '--in', clean, '--vocab-size', '512', '--out', tok]);
  vilm(['data', 'prepare', '--in', clean, '--tokenizer', tok, '--out', data, '--max-len', '128', '--buckets', '32,64,96,128']);
  copyFileSync(tok, path.join(data, 'tokenizer.json'));
  return data;
}
