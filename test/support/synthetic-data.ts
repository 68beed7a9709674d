/**
 * A prepared-data directory of random token rows (the on-disk format of `vilm data prepare`,
 * src/data/dataset.ts), for benchmarks and tests of the distribution machinery that need the
 * shapes of real data but not real text (no tokenizer, so no bits per byte).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Rng } from '../../src/util/rng.ts';

export interface SyntheticDataOptions {
  vocab: number;
  /** bucket lengths, ascending */
  buckets: number[];
  /** train rows per bucket (validation and test get a quarter, at least 2) */
  rowsPerBucket: number;
  seed: number;
  /** rows per bucket of a split, instead of the defaults (e.g. { test: 0 } for an empty test split) */
  splitRows?: Partial<Record<'train' | 'validation' | 'test', number>>;
}

export function writeSyntheticData(dir: string, o: SyntheticDataOptions): string {
  mkdirSync(dir, { recursive: true });
  const rng = new Rng(o.seed);
  const splits = ['train', 'validation', 'test'] as const;
  const stats: Record<string, { docs: number; sequences: number; tokens: number }> = {};
  const hist: Record<string, Record<string, number>> = {};
  for (const s of splits) {
    const n = o.splitRows?.[s] ?? (s === 'train' ? o.rowsPerBucket : Math.max(2, Math.floor(o.rowsPerBucket / 4)));
    const parts: Buffer[] = [];
    let tokens = 0;
    hist[s] = {};
    for (let bi = 0; bi < o.buckets.length; bi++) {
      const b = o.buckets[bi], lo = bi > 0 ? o.buckets[bi - 1] + 1 : 2;
      const rows = new Uint16Array(n * b); // [n, b], <pad> = 0 after the text
      for (let r = 0; r < n; r++) {
        const len = lo + rng.int(b - lo + 1);
        for (let t = 0; t < len; t++) rows[r * b + t] = 1 + rng.int(o.vocab - 1);
        tokens += len;
      }
      parts.push(Buffer.from(rows.buffer));
      hist[s][String(b)] = n;
    }
    writeFileSync(path.join(dir, `${s}.bin`), Buffer.concat(parts));
    stats[s] = { docs: n * o.buckets.length, sequences: n * o.buckets.length, tokens };
  }
  // manifest last: a directory with a manifest is complete
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({
    seed: o.seed, tokenizerSha256: '0'.repeat(64), maxLen: o.buckets[o.buckets.length - 1], buckets: o.buckets, paddingWaste: 0,
    splits: stats, bucketHistogram: hist, files: { train: 'train.bin', validation: 'validation.bin', test: 'test.bin' },
  }, null, 2));
  return dir;
}
