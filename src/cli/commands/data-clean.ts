import { defineCommand } from '../define.js';
import { log } from '../../util/log.js';
import { cleanCorpus, formatCleanReport, DEFAULT_MIN_CHARS } from '../../data/clean/corpus.js';
import { loadNewsSources, DEFAULT_SOURCES_FILE } from '../../data/clean/sources.js';

export const cleanCommand = defineCommand({
  command: 'clean',
  describe: 'clean JSONL documents: NFC, newspaper tags, non-Latin characters, wiki reference sections, empty lines, duplicates',
  builder: (y) => y
    .option('in', { type: 'string', array: true, demandOption: true, describe: 'input JSONL files ({id,title,text,source,url} a line)' })
    .option('out', { type: 'string', demandOption: true, describe: 'output JSONL (written atomically)' })
    .option('min-chars', { type: 'number', default: DEFAULT_MIN_CHARS, describe: 'drop documents shorter than this after cleaning' })
    .option('sources', { type: 'string', default: DEFAULT_SOURCES_FILE, defaultDescription: 'configs/news-sources.yaml', describe: 'newspaper names whose tags are removed' })
    .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON' })
    .example('$0 data clean --in data/sample/*.jsonl --out runs/clean/sample.jsonl', 'clean the sample corpus'),
  handler: async (a) => {
    const sources = loadNewsSources(a.sources);
    const t0 = Date.now();
    const report = await cleanCorpus(a.in, a.out, { minChars: a['min-chars'], sources });
    log.info('data clean: done', { out: a.out, seconds: (Date.now() - t0) / 1000 });
    process.stdout.write((a.json ? JSON.stringify(report, null, 2) : formatCleanReport(report)) + '\n');
  },
});
