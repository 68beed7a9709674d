import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { readCorpus, JsonlWriter } from '../jsonl.js';
import { UserError } from '../../util/errors.js';
import { progress } from '../../util/progress.js';
import type { CorpusDoc } from '../types.js';
import { CLEAN_RULES, cleanText, countChars, emptyCounts, type CleanTextOptions, type RemovedCounts } from './rules.js';

export interface CleanCorpusOptions extends CleanTextOptions {
  /** documents shorter than this many characters after cleaning are dropped */
  minChars?: number;
}

export const DEFAULT_MIN_CHARS = 100;

export interface CleanReport {
  files: string[];
  docsIn: number;
  docsOut: number;
  droppedShort: number;
  droppedDuplicate: number;
  /** characters (code points) of the input texts and of the written texts */
  charsIn: number;
  charsOut: number;
  /** characters removed by each rule (documents dropped whole are counted separately) */
  removed: RemovedCounts;
  /** characters of the cleaned documents dropped as too short / duplicate */
  charsDroppedShort: number;
  charsDroppedDuplicate: number;
}

/**
 * Stream JSONL documents through `cleanText` into one JSONL file (written atomically: nothing
 * appears under `outFile` unless every input was read). Whole documents that are exact
 * duplicates of an earlier cleaned document (any input file) are dropped; only a 16-byte hash
 * per document is kept in memory.
 */
export async function cleanCorpus(inFiles: string[], outFile: string, opts: CleanCorpusOptions = {}): Promise<CleanReport> {
  if (inFiles.length === 0) throw new UserError('data clean: no input files (--in)');
  const minChars = opts.minChars ?? DEFAULT_MIN_CHARS;
  if (!Number.isInteger(minChars) || minChars < 0) throw new UserError(`data clean: --min-chars must be a non-negative integer, got ${minChars}`);
  let totalBytes = 0;
  for (const f of inFiles) {
    try { totalBytes += statSync(f).size; } catch (e) { throw new UserError(`${f}: cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)})`); }
  }
  const report: CleanReport = {
    files: inFiles, docsIn: 0, docsOut: 0, droppedShort: 0, droppedDuplicate: 0, charsIn: 0, charsOut: 0,
    removed: emptyCounts(), charsDroppedShort: 0, charsDroppedDuplicate: 0,
  };
  const seen = new Set<string>();
  const bar = progress('clean', totalBytes, 'bytes');
  let bytes = 0;
  const out = await JsonlWriter.open(outFile);
  try {
    for (const file of inFiles) {
      for await (const doc of readCorpus(file)) {
        report.docsIn++;
        bytes += Buffer.byteLength(doc.text) + 64;
        // text + JSON overhead estimated (the reader does not report its offset); capped below the total
        if (report.docsIn % 500 === 0) bar.update(Math.min(bytes, totalBytes), { docs: report.docsIn });
        report.charsIn += countChars(doc.text);
        const r = cleanText(doc.text, opts);
        for (const rule of CLEAN_RULES) report.removed[rule] += r.removed[rule];
        const n = countChars(r.text);
        if (n < minChars) { report.droppedShort++; report.charsDroppedShort += n; continue; }
        const h = createHash('sha256').update(r.text).digest('base64').slice(0, 22);
        if (seen.has(h)) { report.droppedDuplicate++; report.charsDroppedDuplicate += n; continue; }
        seen.add(h);
        const cleaned: CorpusDoc = { id: doc.id, title: doc.title.normalize('NFC'), text: r.text, source: doc.source, ...(doc.url !== undefined ? { url: doc.url } : {}) };
        await out.write(cleaned);
        report.docsOut++;
        report.charsOut += n;
      }
    }
    if (report.docsIn === 0) throw new UserError(`data clean: no documents in ${inFiles.join(', ')}`);
    await out.commit();
  } catch (e) {
    bar.abort(); // no line: the error is the one line the user sees
    await out.abort();
    throw e;
  }
  bar.update(totalBytes, { docs: report.docsIn });
  bar.done(`${report.docsIn} docs in, ${report.docsOut} out`);
  return report;
}

/** The report as an aligned text table (what `vilm data clean` prints). */
export function formatCleanReport(r: CleanReport): string {
  const num = (n: number) => n.toLocaleString('en-US');
  const pct = (n: number) => (r.charsIn ? (100 * n / r.charsIn).toFixed(2) + ' %' : '-');
  const rows: [string, string, string][] = [
    ...CLEAN_RULES.map((rule): [string, string, string] => [rule, num(r.removed[rule]), pct(r.removed[rule])]),
    ['docs dropped: too short', num(r.charsDroppedShort), pct(r.charsDroppedShort)],
    ['docs dropped: duplicate', num(r.charsDroppedDuplicate), pct(r.charsDroppedDuplicate)],
  ];
  const w = Math.max(...rows.map((x) => x[0].length));
  return [
    `docs in: ${num(r.docsIn)}  docs out: ${num(r.docsOut)}  dropped too short: ${num(r.droppedShort)}  dropped duplicate: ${num(r.droppedDuplicate)}`,
    `characters in: ${num(r.charsIn)}  out: ${num(r.charsOut)}`,
    `${'removed by'.padEnd(w)}  ${'characters'.padStart(12)}  ${'of input'.padStart(9)}`,
    ...rows.map(([a, b, c]) => `${a.padEnd(w)}  ${b.padStart(12)}  ${c.padStart(9)}`),
  ].join('\n');
}
