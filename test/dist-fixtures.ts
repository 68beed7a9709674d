/**
 * Shared fixtures for the dist-* and train-* tests (not a test file itself).
 *
 * `syntheticData(dir, vocab)`: a small prepared-data directory (the format of `vilm data prepare`,
 * src/data/dataset.ts) with random token rows in buckets 16 and 32 — enough for the distribution
 * and toy-model tests that do not need real text.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Rng } from '../src/util/rng.ts';

export function syntheticData(dir: string, vocab: number, seed = 1, rowsPerBucket = 24): string {
  mkdirSync(dir, { recursive: true });
  const rng = new Rng(seed);
  const buckets = [16, 32];
  const splits = ['train', 'validation', 'test'] as const;
  const stats: Record<string, { docs: number; sequences: number; tokens: number }> = {};
  const hist: Record<string, Record<string, number>> = {};
  for (const s of splits) {
    const n = s === 'train' ? rowsPerBucket : 4;
    const parts: Uint16Array[] = [];
    let tokens = 0;
    hist[s] = {};
    for (const b of buckets) {
      const rows = new Uint16Array(n * b);
      for (let r = 0; r < n; r++) {
        const len = Math.max(2, b - rng.int(Math.floor(b / 2)));
        for (let t = 0; t < len; t++) rows[r * b + t] = 1 + rng.int(vocab - 1);
        tokens += len;
      }
      parts.push(rows);
      hist[s][String(b)] = n;
    }
    const all = Buffer.concat(parts.map((p) => Buffer.from(p.buffer)));
    writeFileSync(path.join(dir, `${s}.bin`), all);
    stats[s] = { docs: n, sequences: n * buckets.length, tokens };
  }
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({
    seed, tokenizerSha256: '0'.repeat(64), maxLen: 32, buckets, paddingWaste: 0.2, splits: stats, bucketHistogram: hist,
    files: { train: 'train.bin', validation: 'validation.bin', test: 'test.bin' },
  }));
  return dir;
}
