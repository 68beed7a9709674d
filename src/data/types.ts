import type { RngState } from '../util/rng.js';
import type { TokenBatch } from '../model/types.js';

/** One line of a corpus JSONL file (the format of ../shared/corpus/viwiki/*.jsonl). */
export interface CorpusDoc {
  id: string;
  title: string;
  text: string;
  source: string;
  url?: string;
}

export type SplitName = 'train' | 'validation' | 'test';

export interface SplitStats { docs: number; sequences: number; tokens: number }

/** DIR/manifest.json written by `vilm data prepare`. */
export interface Manifest {
  seed: number;
  tokenizerSha256: string;
  maxLen: number;
  buckets: number[];
  paddingWaste: number;
  splits: Record<SplitName, SplitStats>;
  /** per split, per bucket length: number of sequences */
  bucketHistogram: Record<SplitName, Record<string, number>>;
  /** format details (file names, dtype) for the loader */
  files: Record<SplitName, string>;
}

/** Serialisable sampler position: resuming from it yields exactly the batches that would have come next. */
export interface SamplerCursor {
  epoch: number;
  position: number;
  rng: RngState;
}

/** A batch from one bucket, with a fixed token budget. */
export interface BucketBatch extends TokenBatch {
  bucket: number;
}
