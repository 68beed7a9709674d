import { statSync } from 'node:fs';
import { readCorpus } from '../jsonl.js';
import { UserError } from '../../util/errors.js';
import type { Tokenizer } from '../../tokenizer/types.js';
import type { Manifest, SplitName, SplitStats } from '../types.js';
import { segmentText, type TextUnit } from './segment.js';
import { packDocument, bucketFor, type PackOptions, type Unit } from './sequences.js';
import { splitOf } from './split.js';
import { DatasetWriter } from './writer.js';

export const SPLITS: readonly SplitName[] = ['train', 'validation', 'test'];
export const DEFAULT_BUCKETS: readonly number[] = [50, 100, 150, 200, 250];

export interface PrepareOptions {
  inputs: string[];
  tokenizer: Tokenizer;
  /** the tokenizer.json text: copied into DIR/tokenizer.json so training finds it with the data */
  tokenizerJson?: string;
  out: string;
  seed: number;
  maxLen: number;
  buckets: number[];
  /** called every few documents with input bytes consumed so far (approximate) and the total */
  onProgress?: (bytes: number, totalBytes: number, docs: number) => void;
  /** sees every document's encoded units (benchmarks compare packing strategies on them) */
  onDocument?: (units: readonly Unit[], split: SplitName) => void;
}

export interface PrepareResult {
  manifest: Manifest;
  /** documents that produced no tokens (empty text) */
  skippedDocs: number;
  inputBytes: number;
  /** buckets dropped because they exceed --max-len */
  droppedBuckets: number[];
}

/** Parse `--buckets 50,100,150` — positive integers, strictly ascending, ≤ 65,535. */
export function parseBuckets(spec: string | number | readonly (string | number)[]): number[] {
  const parts = (Array.isArray(spec) ? spec.map(String) : String(spec).split(',')).flatMap((s) => String(s).split(','));
  const out: number[] = [];
  for (const raw of parts) {
    const s = raw.trim();
    if (!/^\d+$/.test(s)) throw new UserError(`--buckets: '${raw}' is not a positive integer (expected e.g. 50,100,150,200,250)`);
    const b = Number(s);
    if (b < 3 || b > 65535) throw new UserError(`--buckets: ${b} is out of range (3..65535)`);
    if (out.length > 0 && b <= out[out.length - 1]) throw new UserError(`--buckets: must be strictly ascending, got ${out[out.length - 1]} then ${b}`);
    out.push(b);
  }
  if (out.length === 0) throw new UserError('--buckets: empty list');
  return out;
}

/**
 * The buckets a run uses: those ≤ max-len (a sequence padded to its bucket must still fit the
 * model's max_len). Sequences hold at most the largest of them — i.e. min(max-len, largest bucket)
 * when max-len is itself at or above a bucket edge.
 */
export function usableBuckets(buckets: readonly number[], maxLen: number): { used: number[]; dropped: number[] } {
  if (!Number.isInteger(maxLen) || maxLen < 3) throw new UserError(`--max-len: must be an integer ≥ 3, got ${maxLen}`);
  const used = buckets.filter((b) => b <= maxLen);
  const dropped = buckets.filter((b) => b > maxLen);
  if (used.length === 0) throw new UserError(`--buckets: no bucket ≤ --max-len ${maxLen} (smallest is ${buckets[0]})`);
  return { used, dropped };
}

/** The units of a document with their ids (empty units dropped). */
export function encodeUnits(tok: Tokenizer, text: string): Unit[] {
  const units: TextUnit[] = segmentText(text);
  const out: Unit[] = [];
  for (const u of units) {
    const ids = tok.encode(u.text);
    if (ids.length > 0) out.push({ ids, end: u.end });
  }
  return out;
}

/**
 * `vilm data prepare`: stream cleaned JSONL documents, split them 8/1/1 by a hash of (seed, id),
 * cut them into `<bos>…` sequences at paragraph/sentence ends, pad to buckets and write
 * `DIR/<split>.bin` + `DIR/manifest.json` atomically. Memory: one document at a time plus fixed
 * write buffers.
 */
export async function prepareDataset(opt: PrepareOptions): Promise<PrepareResult> {
  const tok = opt.tokenizer;
  if (opt.inputs.length === 0) throw new UserError('--in: no input files');
  if (tok.vocabSize > 65536) throw new UserError(`tokenizer: vocabulary of ${tok.vocabSize} ids does not fit 16-bit token files (max 65,536)`);
  if (tok.padId !== 0) throw new UserError(`tokenizer: <pad> must be id 0, got ${tok.padId}`);
  if (!Number.isSafeInteger(opt.seed) || opt.seed < 0) throw new UserError(`--seed: must be a non-negative integer, got ${opt.seed}`);
  const { used: buckets, dropped } = usableBuckets(opt.buckets, opt.maxLen);
  const limit = buckets[buckets.length - 1];
  const pack: PackOptions = { limit, buckets, bosId: tok.bosId, eosId: tok.eosId };

  let totalBytes = 0;
  for (const f of opt.inputs) {
    try { totalBytes += statSync(f).size; } catch (e) {
      throw new UserError(`${f}: cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
  }

  const stats = Object.fromEntries(SPLITS.map((s) => [s, { docs: 0, sequences: 0, tokens: 0 }])) as Record<SplitName, SplitStats>;
  const hist = Object.fromEntries(SPLITS.map((s) => [s, Object.fromEntries(buckets.map((b) => [String(b), 0]))])) as Record<SplitName, Record<string, number>>;
  let positions = 0, skipped = 0, bytes = 0, docsSeen = 0;

  const writer = DatasetWriter.open(opt.out, buckets);
  try {
    for (const file of opt.inputs) {
      for await (const doc of readCorpus(file)) {
        docsSeen++;
        bytes += Buffer.byteLength(doc.text) + doc.id.length + doc.title.length + 40; // ≈ line bytes
        const units = encodeUnits(tok, doc.text);
        const seqs = packDocument(units, pack);
        if (seqs.length === 0) { skipped++; continue; }
        const split = splitOf(doc.id, opt.seed);
        opt.onDocument?.(units, split);
        // held-out documents are kept as text too: `vilm eval --in DIR/test.jsonl` scores the
        // same documents the model never trained on, and compressors get the same bytes
        if (split !== 'train') writer.writeText(split, JSON.stringify({ id: doc.id, title: doc.title, text: doc.text }));
        const st = stats[split];
        st.docs++;
        for (const seq of seqs) {
          const b = bucketFor(seq.length, buckets);
          writer.write(split, b, seq);
          st.sequences++;
          st.tokens += seq.length;
          hist[split][String(b)]++;
          positions += b;
        }
        if (opt.onProgress && docsSeen % 16 === 0) opt.onProgress(Math.min(bytes, totalBytes), totalBytes, docsSeen);
      }
    }
    const tokens = SPLITS.reduce((a, s) => a + stats[s].tokens, 0);
    if (tokens === 0) throw new UserError(`--in ${opt.inputs.join(' ')}: empty input (no document with text)`);
    const manifest: Manifest = {
      seed: opt.seed,
      tokenizerSha256: tok.sha256,
      maxLen: opt.maxLen,
      buckets,
      paddingWaste: (positions - tokens) / positions,
      splits: stats,
      bucketHistogram: hist,
      files: Object.fromEntries(SPLITS.map((s) => [s, DatasetWriter.fileName(s)])) as Record<SplitName, string>,
    };
    writer.ensureText(['validation', 'test']);
    writer.commit(SPLITS, {
      ...(opt.tokenizerJson !== undefined ? { 'tokenizer.json': opt.tokenizerJson } : {}),
      'manifest.json': JSON.stringify(manifest, null, 2) + '\n',
    });
    opt.onProgress?.(totalBytes, totalBytes, docsSeen);
    return { manifest, skippedDocs: skipped, inputBytes: totalBytes, droppedBuckets: dropped };
  } catch (e) {
    writer.abort();
    throw e;
  }
}
