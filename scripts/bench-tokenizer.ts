/**
 * Tokenizer benchmark on the real corpus: training time for the 10k vocabulary, and encoding speed
 * of vilm's encoder next to the Hugging Face `tokenizers` package on the same tokenizer.json, in
 * one run. Also checks, on every document, that both give the same ids, that decoding gives the
 * text back exactly, and that vilm's pre-tokenization scanner matches the GPT-2 regex.
 *
 *   npx tsx scripts/bench-tokenizer.ts [--in /work/shared/corpus/viwiki] [--vocab-size 10000] [--raw]
 *
 * The text is cleaned with `cleanText` (src/data/clean) first, as `vilm data clean` would, unless
 * --raw. Speeds are MB of UTF-8 text per second of wall time, and per second of CPU time of this
 * process (the machine is shared, so wall time depends on the load; CPU time much less so; the
 * `tokenizers` package may use several threads, which CPU time counts). Prints a table and writes
 * bench-results/bench-tokenizer.json.
 */
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { readCorpus } from '../src/data/jsonl.ts';
import { cleanText } from '../src/data/clean/index.ts';
import { trainTokenizer, saveTokenizer, loadTokenizer, preTokenizeRegex } from '../src/tokenizer/index.ts';
import { forEachPiece } from '../src/tokenizer/bytelevel.ts';
import { writeFileAtomic } from '../src/util/atomic.ts';

interface HfEncoding { getIds(): number[] }
interface HfTokenizer {
  encode(s: string): Promise<HfEncoding>;
  encodeBatch(s: string[]): Promise<HfEncoding[]>;
  decode(ids: number[], skipSpecialTokens: boolean): Promise<string>;
}
const hf = createRequire(import.meta.url)('tokenizers') as { Tokenizer: { fromFile(f: string): HfTokenizer } };

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

/** Wall and CPU seconds of `f`. */
async function timed<T>(f: () => Promise<T> | T): Promise<{ value: T; wall: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await f();
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return { value, wall, cpu: (c.user + c.system) / 1e6 };
}

async function main(): Promise<void> {
  const dir = arg('in', '/work/shared/corpus/viwiki');
  const vocabSize = Number(arg('vocab-size', '10000'));
  const raw = flag('raw');
  const outJson = arg('out', 'bench-results/bench-tokenizer.json');
  const tokFile = arg('tokenizer-out', 'runs/bench-tokenizer/tokenizer.json');
  const files = readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort().map((f) => path.join(dir, f));

  // 1. read (and clean) the corpus into memory
  const load = await timed(async () => {
    const texts: string[] = [];
    let rawBytes = 0;
    for (const f of files) {
      for await (const d of readCorpus(f)) {
        rawBytes += Buffer.byteLength(d.text, 'utf8');
        const t = raw ? d.text : cleanText(d.text).text;
        if (t.length > 0) texts.push(t);
      }
    }
    return { texts, rawBytes };
  });
  const texts = load.value.texts;
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t, 'utf8'), 0);
  const mb = bytes / 1e6;
  console.error(`corpus: ${files.length} files, ${texts.length} documents, ${mb.toFixed(1)} MB ${raw ? 'raw' : 'cleaned'} text (read${raw ? '' : ' + clean'} ${load.wall.toFixed(1)} s)`);

  // 2. train
  const train = await timed(() => trainTokenizer(texts, { vocabSize }));
  const t = train.value;
  await saveTokenizer(t, tokFile);
  console.error(`trained ${t.vocabSize} tokens in ${train.wall.toFixed(1)} s`);

  // 3. load both
  const vLoad = await timed(() => loadTokenizer(tokFile));
  const hLoad = await timed(() => hf.Tokenizer.fromFile(tokFile));
  const tok = vLoad.value, ref = hLoad.value;

  // 4. vilm encode: first pass (cache cold), second pass (cache warm)
  const vIds: Uint16Array[] = new Array(texts.length);
  const v1 = await timed(() => { let n = 0; texts.forEach((s, i) => { const ids = tok.encode(s); vIds[i] = Uint16Array.from(ids); n += ids.length; }); return n; });
  const v2 = await timed(() => { let n = 0; for (const s of texts) n += tok.encode(s).length; return n; });
  console.error(`vilm encode: ${(mb / v1.wall).toFixed(1)} MB/s cold, ${(mb / v2.wall).toFixed(1)} MB/s warm`);

  // 5. tokenizers: one await per document, then encodeBatch in chunks of 256 documents
  let mismatched = 0;
  let firstMismatch = '';
  const h1 = await timed(async () => {
    let n = 0;
    for (let i = 0; i < texts.length; i++) {
      const ids = (await ref.encode(texts[i])).getIds();
      n += ids.length;
      const mine = vIds[i];
      let same = ids.length === mine.length;
      for (let k = 0; same && k < ids.length; k++) same = ids[k] === mine[k];
      if (!same) { mismatched++; if (!firstMismatch) firstMismatch = `document ${i}`; }
    }
    return n;
  });
  const h2 = await timed(async () => {
    let n = 0;
    for (let i = 0; i < texts.length; i += 256) {
      for (const e of await ref.encodeBatch(texts.slice(i, i + 256))) n += e.getIds().length;
    }
    return n;
  });
  console.error(`tokenizers encode: ${(mb / h1.wall).toFixed(1)} MB/s one by one, ${(mb / h2.wall).toFixed(1)} MB/s encodeBatch`);

  // 6. exactness: round trip on every document (vilm), decode agreement on every 10th (tokenizers)
  let roundTripFailures = 0, decodeMismatches = 0;
  const dec = await timed(() => { for (let i = 0; i < texts.length; i++) if (tok.decode(vIds[i]) !== texts[i]) roundTripFailures++; });
  for (let i = 0; i < texts.length; i += 10) if ((await ref.decode(Array.from(vIds[i]), true)) !== tok.decode(vIds[i])) decodeMismatches++;
  const re = preTokenizeRegex();
  let scannerMismatches = 0;
  const scan = await timed(() => {
    for (const s of texts) {
      const want = s.match(re) ?? [];
      let k = 0, ok = true;
      forEachPiece(s, (p) => { if (p !== want[k++]) ok = false; });
      if (!ok || k !== want.length) scannerMismatches++;
    }
  });
  void scan;

  const tokens = v1.value;
  const result = {
    corpus: { dir, files: files.length, documents: texts.length, cleaned: !raw, rawMB: load.value.rawBytes / 1e6, textMB: mb, characters: t.stats.characters, readSeconds: load.wall },
    train: {
      vocabSize: t.vocabSize, merges: t.stats.merges, uniqueWords: t.stats.uniqueWords, words: t.stats.words,
      wallSeconds: train.wall, cpuSeconds: train.cpu, countSeconds: t.stats.countSeconds, mergeSeconds: t.stats.mergeSeconds,
      tokens: t.stats.tokens, bytesPerToken: bytes / tokens, sha256: t.sha256,
    },
    load: { vilmSeconds: vLoad.wall, tokenizersSeconds: hLoad.wall },
    encode: {
      vilmCold: { wallSeconds: v1.wall, cpuSeconds: v1.cpu, mbPerSecond: mb / v1.wall, mbPerCpuSecond: mb / v1.cpu },
      vilmWarm: { wallSeconds: v2.wall, cpuSeconds: v2.cpu, mbPerSecond: mb / v2.wall, mbPerCpuSecond: mb / v2.cpu },
      tokenizersEach: { wallSeconds: h1.wall, cpuSeconds: h1.cpu, mbPerSecond: mb / h1.wall, mbPerCpuSecond: mb / h1.cpu },
      tokenizersBatch: { wallSeconds: h2.wall, cpuSeconds: h2.cpu, mbPerSecond: mb / h2.wall, mbPerCpuSecond: mb / h2.cpu },
      vilmColdVsTokenizersEach: h1.wall / v1.wall,
      vilmColdVsTokenizersBatch: h2.wall / v1.wall,
    },
    decode: { vilmMbPerSecond: mb / dec.wall },
    checks: {
      tokens, tokenizersTokens: h1.value, batchTokens: h2.value,
      documentsWithDifferentIds: mismatched, firstMismatch,
      roundTripFailures, decodeMismatchesOfSampled: decodeMismatches, decodeSampled: Math.ceil(texts.length / 10),
      scannerVsRegexMismatches: scannerMismatches,
    },
    machine: { cpus: (await import('node:os')).cpus().length, loadavg: (await import('node:os')).loadavg(), node: process.version },
    date: new Date().toISOString(),
  };

  const f = (x: number, d = 1) => x.toFixed(d);
  const rows: [string, string, string, string][] = [
    ['step', 'wall s', 'cpu s', 'MB/s (wall | cpu)'],
    [`read${raw ? '' : ' + cleanText'} ${f(mb)} MB`, f(load.wall), '', ''],
    [`train ${t.vocabSize} (count words)`, f(t.stats.countSeconds), '', ''],
    [`train ${t.vocabSize} (merges)`, f(t.stats.mergeSeconds), '', ''],
    [`train ${t.vocabSize} total`, f(train.wall), f(train.cpu), `${f(mb / train.wall)} | ${f(mb / train.cpu)}`],
    ['vilm encode, cold cache', f(v1.wall), f(v1.cpu), `${f(mb / v1.wall)} | ${f(mb / v1.cpu)}`],
    ['vilm encode, warm cache', f(v2.wall), f(v2.cpu), `${f(mb / v2.wall)} | ${f(mb / v2.cpu)}`],
    ['tokenizers encode, one by one', f(h1.wall), f(h1.cpu), `${f(mb / h1.wall)} | ${f(mb / h1.cpu)}`],
    ['tokenizers encodeBatch(256)', f(h2.wall), f(h2.cpu), `${f(mb / h2.wall)} | ${f(mb / h2.cpu)}`],
    ['vilm decode', f(dec.wall), f(dec.cpu), `${f(mb / dec.wall)} | ${f(mb / dec.cpu)}`],
  ];
  const w = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((x, c) => (c === 0 ? x.padEnd(w[c]) : x.padStart(w[c]))).join('  ');
  console.log(line(rows[0]));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows.slice(1)) console.log(line(r));
  console.log('');
  console.log(`vilm (cold) vs tokenizers one by one: ${f(h1.wall / v1.wall, 2)}x; vs encodeBatch: ${f(h2.wall / v1.wall, 2)}x (wall time ratios, >1 = vilm faster)`);
  console.log(`${tokens.toLocaleString('en-US')} tokens, ${f(bytes / tokens, 2)} bytes/token; ${t.stats.uniqueWords.toLocaleString('en-US')} distinct words`);
  console.log(`checks: ids differ in ${mismatched} of ${texts.length} documents; round trip failures ${roundTripFailures}; ` +
    `tokenizers decode differs in ${decodeMismatches} of ${result.checks.decodeSampled} sampled; scanner vs regex differs in ${scannerMismatches}`);
  console.log(`load average ${result.machine.loadavg.map((x) => x.toFixed(1)).join(' ')} on ${result.machine.cpus} CPUs`);
  await writeFileAtomic(outJson, JSON.stringify(result, null, 2) + '\n');
  console.log(`wrote ${outJson}`);
}

await main();
