/**
 * Corpus → prepared data set in one call (clean → tokenizer → split/buckets), used by `vilm start`
 * and by `vilm train` / `vilm coordinator` when no `--data` is given: the built-in sample, prepared
 * once into a cache folder and reused by every later run with the same model sizes and seed.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunConfig } from '../config/index.js';
import { cleanCorpus } from '../data/clean/index.js';
import { readCorpus } from '../data/jsonl.js';
import { prepareDataset, DEFAULT_BUCKETS } from '../data/prepare/prepare.js';
import { trainTokenizer, saveTokenizer } from '../tokenizer/index.js';
import { UserError } from '../util/errors.js';
import { log } from '../util/log.js';

/** The built-in sample corpus (ships with the package, so found from any directory). */
export const SAMPLE_CORPUS = fileURLToPath(new URL('../../data/sample', import.meta.url));

/** What the preparation needs from the run: the tokenizer's size, the longest row, the split seed. */
export interface PrepareSizes { vocabSize: number; maxLen: number; seed: number }

/**
 * Clean `inputs` into DIR/clean.jsonl, train a tokenizer (DIR/tokenizer.json), and split/bucket
 * the sequences into DIR/prepared (the folder `--data` takes). Returns DIR/prepared.
 */
export async function prepareCorpus(inputs: string[], dir: string, s: PrepareSizes): Promise<string> {
  const cleanFile = path.join(dir, 'clean.jsonl');
  const rep = await cleanCorpus(inputs, cleanFile, {});
  log.info('cleaned', { docsIn: rep.docsIn, docsOut: rep.docsOut, charsIn: rep.charsIn, charsOut: rep.charsOut });

  const tokFile = path.join(dir, 'tokenizer.json');
  const texts = async function* () { for await (const d of readCorpus(cleanFile)) yield d.text; };
  const tok = await trainTokenizer(texts(), { vocabSize: s.vocabSize });
  await saveTokenizer(tok, tokFile);
  log.info('tokenizer trained', { vocabSize: tok.vocabSize, file: tokFile });

  const prepared = path.join(dir, 'prepared');
  const prep = await prepareDataset({
    inputs: [cleanFile], tokenizer: tok, tokenizerJson: tok.json, out: prepared, seed: s.seed,
    maxLen: s.maxLen, buckets: [...DEFAULT_BUCKETS],
  });
  const m = prep.manifest;
  log.info('prepared', { train: m.splits.train.sequences, validation: m.splits.validation.sequences, test: m.splits.test.sequences, paddingWaste: m.paddingWaste });
  return prepared;
}

/** JSONL files named directly or found (non-recursively) in the named folders, sorted. */
export function corpusFiles(inputs: string[]): string[] {
  const files: string[] = [];
  for (const p of inputs) {
    let st;
    try { st = statSync(p); } catch { throw new UserError(`--corpus ${p}: no such file or folder`); }
    if (st.isDirectory()) {
      const found = readdirSync(p).filter((f) => f.endsWith('.jsonl')).sort().map((f) => path.join(p, f));
      if (found.length === 0) throw new UserError(`--corpus ${p}: no .jsonl files in this folder`);
      files.push(...found);
    } else files.push(p);
  }
  return files;
}

/** A run folder's time stamp: 20261201-104512 (UTC). */
export function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

/** vilm's cache folder: $VILM_CACHE_DIR, else $XDG_CACHE_HOME/vilm, else ~/.cache/vilm. */
export function cacheDir(): string {
  if (process.env.VILM_CACHE_DIR) return process.env.VILM_CACHE_DIR;
  return path.join(process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'vilm');
}

/**
 * The built-in sample prepared for this run's sizes: CACHE/sample-<key>/prepared, built on first
 * use. The key hashes the sample's files and the sizes, so a changed sample or config gets its own
 * folder. Built in a temp folder and renamed into place: an interrupted build leaves no half cache,
 * and two runs building at once both end with a complete one.
 */
export async function sampleData(cfg: RunConfig): Promise<string> {
  const sizes: PrepareSizes = { vocabSize: cfg.model.vocab_size, maxLen: cfg.model.max_len, seed: cfg.train.seed };
  const files = corpusFiles([SAMPLE_CORPUS]);
  const h = createHash('sha256').update(JSON.stringify(sizes));
  for (const f of files) h.update(path.basename(f)).update(readFileSync(f));
  const dir = path.join(cacheDir(), `sample-${h.digest('hex').slice(0, 16)}`);
  const prepared = path.join(dir, 'prepared');
  if (existsSync(path.join(prepared, 'manifest.json'))) {
    log.info(`no --data: the built-in sample, prepared in ${prepared}`);
    return prepared;
  }
  log.info(`no --data: preparing the built-in sample once into ${prepared}`);
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    await prepareCorpus(files, tmp, sizes);
    try { renameSync(tmp, dir); } catch (e) {
      // another run finished the same cache first: use that one
      if (!existsSync(path.join(prepared, 'manifest.json'))) throw e;
    }
  } finally { rmSync(tmp, { recursive: true, force: true }); }
  return prepared;
}
