/**
 * Benchmark of `vilm data prepare` on the real corpus (not a test; needs ../shared).
 *
 *   npx tsx scripts/bench-prepare.ts [--corpus /work/shared/corpus/viwiki] [--work /tmp/vilm-bench-prepare]
 *                                    [--tokenizer FILE] [--vocab-size 10000] [--seed 42]
 *
 * 1. cleans the corpus with the cleaner into WORK/clean.jsonl (timed, not part of the target);
 * 2. reuses --tokenizer, or WORK/tokenizer.json, or trains one (trainTokenizer) on the cleaned text;
 * 3. runs the prepare step alone in a child process (so its peak RSS is its own) and times it.
 * The child also packs every document with the greedy baseline (same units, no look-ahead) so the
 * padding waste of the two strategies is compared side by side in one run.
 * Prints a table and writes bench-results/bench-prepare.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { cleanCorpus } from '../src/data/clean/index.ts';
import { loadTokenizer, trainTokenizer, saveTokenizer } from '../src/tokenizer/index.ts';
import { readCorpus } from '../src/data/jsonl.ts';
import { prepareDataset, SPLITS, DEFAULT_BUCKETS } from '../src/data/prepare/prepare.ts';
import { packDocument, packGreedy, bucketFor, type PackOptions } from '../src/data/prepare/sequences.ts';
import type { Tokenizer } from '../src/tokenizer/types.ts';
import type { Manifest } from '../src/data/types.ts';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

interface ChildResult {
  seconds: number;
  encodeSeconds: number;
  tokenizerLoadSeconds: number;
  peakRssMB: number;
  inputBytes: number;
  manifest: Manifest;
  greedyWaste: number;
  dpWaste: number;
}

/** The prepare step alone (child process). */
async function child(): Promise<void> {
  const input = arg('in', ''), tokFile = arg('tokenizer', ''), out = arg('out', ''), seed = Number(arg('seed', '42'));
  const t0 = performance.now();
  const base = loadTokenizer(tokFile);
  const tokenizerLoadSeconds = (performance.now() - t0) / 1000;
  let encodeMs = 0;
  // same tokenizer, with the time spent in encode() counted
  const tok: Tokenizer = {
    vocabSize: base.vocabSize, padId: base.padId, bosId: base.bosId, eosId: base.eosId, sha256: base.sha256,
    encode: (text) => { const t = performance.now(); const ids = base.encode(text); encodeMs += performance.now() - t; return ids; },
    decode: (ids) => base.decode(ids),
  };
  const buckets = [...DEFAULT_BUCKETS];
  const pack: PackOptions = { limit: buckets[buckets.length - 1], buckets, bosId: tok.bosId, eosId: tok.eosId };
  const cmp = { greedyPos: 0, greedyTok: 0, dpPos: 0, dpTok: 0 };
  let hookMs = 0;
  const t1 = performance.now();
  const res = await prepareDataset({
    inputs: [input], tokenizer: tok, out, seed, maxLen: 256, buckets,
    onDocument: (units) => {
      const t = performance.now();
      for (const s of packGreedy(units, pack)) { cmp.greedyPos += bucketFor(s.length, buckets); cmp.greedyTok += s.length; }
      for (const s of packDocument(units, pack)) { cmp.dpPos += bucketFor(s.length, buckets); cmp.dpTok += s.length; }
      hookMs += performance.now() - t;
    },
  });
  const seconds = (performance.now() - t1 - hookMs) / 1000;
  const r: ChildResult = {
    seconds, encodeSeconds: encodeMs / 1000, tokenizerLoadSeconds,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    inputBytes: res.inputBytes, manifest: res.manifest,
    greedyWaste: (cmp.greedyPos - cmp.greedyTok) / cmp.greedyPos,
    dpWaste: (cmp.dpPos - cmp.dpTok) / cmp.dpPos,
  };
  process.stdout.write(JSON.stringify(r) + '\n');
}

async function main(): Promise<void> {
  const corpus = arg('corpus', '/work/shared/corpus/viwiki');
  const work = arg('work', '/tmp/vilm-bench-prepare');
  const seed = arg('seed', '42');
  mkdirSync(work, { recursive: true });
  const files = readdirSync(corpus).filter((f) => f.endsWith('.jsonl')).sort().map((f) => path.join(corpus, f));
  const rawBytes = files.reduce((a, f) => a + statSync(f).size, 0);

  const clean = path.join(work, 'clean.jsonl');
  let t = performance.now();
  const report = await cleanCorpus(files, clean);
  const cleanSeconds = (performance.now() - t) / 1000;

  let tokFile = arg('tokenizer', path.join(work, 'tokenizer.json'));
  let trainSeconds: number | null = null;
  if (!existsSync(tokFile)) {
    tokFile = path.join(work, 'tokenizer.json');
    t = performance.now();
    async function* texts(): AsyncGenerator<string> { for await (const d of readCorpus(clean)) yield d.text; }
    await saveTokenizer(await trainTokenizer(texts(), { vocabSize: Number(arg('vocab-size', '10000')) }), tokFile);
    trainSeconds = (performance.now() - t) / 1000;
  }

  const out = path.join(work, 'prepared');
  t = performance.now();
  const c = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/bench-prepare.ts', '--child', '--in', clean, '--tokenizer', tokFile, '--out', out, '--seed', seed], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  const wallSeconds = (performance.now() - t) / 1000;
  if (c.status !== 0) throw new Error(`prepare child failed (exit ${c.status})`);
  const r = JSON.parse(c.stdout.trim().split('\n').pop()!) as ChildResult;
  const m = r.manifest;
  const docs = SPLITS.reduce((a, s) => a + m.splits[s].docs, 0);
  const tokens = SPLITS.reduce((a, s) => a + m.splits[s].tokens, 0);
  const sequences = SPLITS.reduce((a, s) => a + m.splits[s].sequences, 0);
  const result = {
    machine: `${process.platform} ${process.arch}, node ${process.version}`,
    corpus, rawMB: rawBytes / 1e6, cleanSeconds, docsIn: report.docsIn, docsCleaned: report.docsOut,
    tokenizer: tokFile, tokenizerTrainSeconds: trainSeconds,
    prepare: {
      inputMB: r.inputBytes / 1e6, docs, sequences, tokens,
      seconds: r.seconds, wallSecondsWithStartup: wallSeconds, encodeSeconds: r.encodeSeconds,
      MBps: r.inputBytes / 1e6 / r.seconds, tokensPerSecond: tokens / r.seconds,
      peakRssMB: r.peakRssMB, paddingWaste: m.paddingWaste,
      paddingWasteGreedy: r.greedyWaste, wasteRatioDpToGreedy: r.dpWaste / r.greedyWaste,
      splits: m.splits, bucketHistogram: m.bucketHistogram,
    },
    target: { seconds: 180, met: wallSeconds <= 180 },
  };
  const f = (x: number, d = 1) => x.toFixed(d);
  const rows: [string, string][] = [
    ['corpus', `${corpus} (${f(rawBytes / 1e6)} MB, ${report.docsIn} docs)`],
    ['clean (not in target)', `${f(cleanSeconds)} s → ${report.docsOut} docs, ${f(r.inputBytes / 1e6)} MB`],
    ['tokenizer', trainSeconds === null ? `${tokFile} (reused)` : `${tokFile} (trained in ${f(trainSeconds)} s)`],
    ['prepare seconds', `${f(r.seconds)} s (wall with process start ${f(wallSeconds)} s; encode ${f(r.encodeSeconds)} s; target ≤ 180 s)`],
    ['prepare MB/s', f(r.inputBytes / 1e6 / r.seconds, 2)],
    ['docs / sequences / tokens', `${docs} / ${sequences} / ${tokens.toLocaleString('en-US')}`],
    ['peak RSS', `${f(r.peakRssMB)} MB`],
    ['padding waste (DP cuts)', `${f(100 * m.paddingWaste, 2)} %`],
    ['padding waste (greedy)', `${f(100 * r.greedyWaste, 2)} %  (DP/greedy = ${f(r.dpWaste / r.greedyWaste, 3)})`],
    ...SPLITS.map((s): [string, string] => [`${s} docs/seqs/tokens`, `${m.splits[s].docs} / ${m.splits[s].sequences} / ${m.splits[s].tokens.toLocaleString('en-US')}`]),
    ...SPLITS.map((s): [string, string] => [`${s} buckets`, m.buckets.map((b) => `${b}:${m.bucketHistogram[s][String(b)]}`).join(' ')]),
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n');
  mkdirSync('bench-results', { recursive: true });
  writeFileSync('bench-results/bench-prepare.json', JSON.stringify(result, null, 2) + '\n');
  process.stdout.write('wrote bench-results/bench-prepare.json\n');
}

if (process.argv.includes('--child')) await child(); else await main();
