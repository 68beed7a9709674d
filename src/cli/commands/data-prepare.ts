import { readFileSync } from 'node:fs';
import { statSync } from 'node:fs';
import { defineCommand } from '../define.js';
import { loadTokenizer } from '../../tokenizer/index.js';
import { progress } from '../../util/progress.js';
import { log } from '../../util/log.js';
import type { Manifest } from '../../data/types.js';
import { prepareDataset, parseBuckets, SPLITS, DEFAULT_BUCKETS } from '../../data/prepare/prepare.js';

/** The human summary printed by `vilm data prepare` (also used by the benchmark). */
export function formatPrepareSummary(m: Manifest, outDir: string): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const lines = [
    `prepared ${outDir}: seed ${m.seed}, max-len ${m.maxLen}, buckets ${m.buckets.join(',')}, tokenizer ${m.tokenizerSha256.slice(0, 12)}…`,
    `${'split'.padEnd(11)}${'docs'.padStart(9)}${'sequences'.padStart(12)}${'tokens'.padStart(14)}`,
    ...SPLITS.map((s) => `${s.padEnd(11)}${n(m.splits[s].docs).padStart(9)}${n(m.splits[s].sequences).padStart(12)}${n(m.splits[s].tokens).padStart(14)}`),
    `${'bucket'.padEnd(11)}${m.buckets.map((b) => String(b).padStart(9)).join('')}`,
    ...SPLITS.map((s) => `${s.padEnd(11)}${m.buckets.map((b) => n(m.bucketHistogram[s][String(b)] ?? 0).padStart(9)).join('')}`),
    `padding waste: ${(100 * m.paddingWaste).toFixed(2)} % of token positions are <pad>`,
  ];
  return lines.join('\n') + '\n';
}

/** size for the progress total; a missing file is reported by prepareDataset with its name */
function fileSize(f: string): number {
  try { return statSync(f).size; } catch { return 0; }
}

export const prepareCommand = defineCommand({
  command: 'prepare',
  describe: 'split cleaned JSONL 8/1/1 by document, cut into <bos>… sequences, pad to length buckets, write Uint16 token files + manifest.json (+ the held-out documents as validation/test.jsonl)',
  builder: (y) => y
    .option('in', { type: 'string', array: true, demandOption: true, describe: 'cleaned JSONL file(s) (output of vilm data clean)' })
    .option('tokenizer', { type: 'string', demandOption: true, describe: 'tokenizer.json (vilm tokenizer train)' })
    .option('out', { type: 'string', demandOption: true, describe: 'output directory (replaced atomically)' })
    .option('seed', { type: 'number', default: 42, describe: 'seed of the 8/1/1 document split' })
    .option('max-len', { type: 'number', default: 256, describe: 'longest sequence (model max_len); buckets above it are dropped' })
    .option('buckets', { type: 'string', default: DEFAULT_BUCKETS.join(','), describe: 'padded sequence lengths, ascending' })
    .example('$0 data prepare --in runs/clean.jsonl --tokenizer runs/tokenizer.json --out runs/data', '')
    .example('$0 data prepare --in a.jsonl b.jsonl --tokenizer t.json --out d --seed 7 --max-len 128 --buckets 32,64,96,128', ''),
  handler: async (a) => {
    const buckets = parseBuckets(a.buckets);
    const tokenizer = loadTokenizer(a.tokenizer);
    const bar = progress('prepare', a.in.reduce((acc, f) => acc + fileSize(f), 0), 'bytes');
    let res;
    try {
      res = await prepareDataset({
        inputs: a.in, tokenizer, tokenizerJson: readFileSync(a.tokenizer, 'utf8'), out: a.out, seed: a.seed, maxLen: a['max-len'], buckets,
        onProgress: (bytes, total, docs) => { bar.setTotal(total); bar.update(bytes, { docs }); },
      });
    } catch (e) {
      bar.abort();
      throw e;
    }
    bar.done(`${res.manifest.splits.train.docs + res.manifest.splits.validation.docs + res.manifest.splits.test.docs} docs`);
    if (res.droppedBuckets.length > 0) log.warn(`buckets above --max-len ${a['max-len']} not used`, { dropped: res.droppedBuckets.join(',') });
    if (res.skippedDocs > 0) log.warn('documents without text skipped', { docs: res.skippedDocs });
    for (const s of SPLITS) if (res.manifest.splits[s].sequences === 0) log.warn(`split '${s}' is empty (too few documents for 8/1/1)`);
    process.stdout.write(formatPrepareSummary(res.manifest, a.out));
  },
});
