import type { SplitName } from '../types.js';

/** Fractions of documents per split: 8/1/1. */
export const SPLIT_FRACTIONS: Record<SplitName, number> = { train: 0.8, validation: 0.1, test: 0.1 };

/**
 * The split of a document, from a hash of (seed, document id) alone: no state, no pass over the
 * whole corpus, independent of input order, and a document can never land in two splits.
 * FNV-1a over the UTF-16 code units followed by the murmur3 finaliser (FNV alone mixes the last
 * characters poorly, and ids often differ only there).
 */
export function splitOf(id: string, seed: number): SplitName {
  const u = hashUnit(id, seed);
  if (u < SPLIT_FRACTIONS.train) return 'train';
  if (u < SPLIT_FRACTIONS.train + SPLIT_FRACTIONS.validation) return 'validation';
  return 'test';
}

/** A uniform number in [0, 1) determined by (id, seed). */
export function hashUnit(id: string, seed: number): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  h = Math.imul(h, 0x01000193) >>> 0;
  h ^= Math.floor(seed / 4294967296) >>> 0; // seeds above 2^32 still matter
  h = Math.imul(h, 0x01000193) >>> 0;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // fmix32
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}
