import type { Argv } from 'yargs';
import { defineCommand } from '../define.js';
import { UserError } from '../../util/errors.js';
import type { CrawlSummary } from '../../data/crawl/dump.js';
import { DEFAULT_HF_ENDPOINT, DEFAULT_USER_AGENT } from '../../data/crawl/http.js';

/** Options shared by the HTTP sources: politeness, retries, resume. */
function httpOptions<T>(y: Argv<T>) {
  return y
    .option('rate', { type: 'number', default: 2, describe: 'requests per second (retries included)' })
    .option('retries', { type: 'number', default: 5, describe: 'retries on 429/5xx/network errors, with exponential backoff (Retry-After honoured)' })
    .option('retry-base-ms', { type: 'number', default: 1000, describe: 'first backoff wait; doubles each retry' })
    .option('user-agent', { type: 'string', default: DEFAULT_USER_AGENT, describe: 'User-Agent header (put a contact in it for Wikimedia)' });
}

/** Ctrl-C stops the crawl cleanly: the part file and its cursor stay for --resume. */
async function withInterrupt(run: (signal: AbortSignal) => Promise<CrawlSummary>, json: boolean): Promise<void> {
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.once('SIGINT', onSigint);
  process.once('SIGTERM', onSigint);
  try {
    const summary = await run(ac.signal);
    if (json) process.stdout.write(JSON.stringify(summary) + '\n');
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}

const wikipedia = defineCommand({
  command: 'wikipedia',
  describe: 'Vietnamese Wikipedia → JSONL {id,title,text,source,url}: from an XML dump (.xml.bz2) or the MediaWiki API',
  builder: (y) => httpOptions(y
    .option('dump', { type: 'string', describe: 'MediaWiki XML export, .xml.bz2 (multistream too) or .xml' })
    .option('api', { type: 'string', describe: 'MediaWiki API endpoint, e.g. https://vi.wikipedia.org/w/api.php' })
    .option('titles-file', { type: 'string', describe: 'with --api: one article title a line' })
    .option('category', { type: 'string', describe: 'with --api: the articles of this category ("Thể loại:" optional)' })
    .option('out', { type: 'string', demandOption: true, describe: 'output JSONL (appears only when complete; OUT.part while running)' })
    .option('resume', { type: 'boolean', default: false, describe: 'continue an interrupted crawl from OUT.part' })
    .option('source', { type: 'string', default: 'viwiki', describe: '"source" field of each line' })
    .option('max-docs', { type: 'number', describe: 'stop after this many articles' })
    .option('decompressor', { choices: ['auto', 'js', 'bzip2'] as const, default: 'auto' as const, describe: 'with --dump: bz2 via the system bzip2 (faster, auto when on PATH) or unbzip2-stream (pure JS)' })
    .option('batch-size', { type: 'number', default: 20, describe: 'with --api: pages per request (≤ 50)' })
    .option('json', { type: 'boolean', default: false, describe: 'print the summary as JSON on stdout' })
    .conflicts('dump', ['api', 'titles-file', 'category'])
    .conflicts('titles-file', 'category')
    // UserError: the CLI prints it as one line (yargs would report a plain Error as an internal error)
    .check((a) => {
      if (!a.dump && !a.api) throw new UserError('give --dump FILE.xml.bz2 or --api URL', 2);
      if (a.api && !a['titles-file'] && !a.category) throw new UserError('--api needs --titles-file FILE or --category NAME', 2);
      return true;
    })
    .example('$0 data crawl wikipedia --dump viwiki-latest-pages-articles-multistream.xml.bz2 --out runs/viwiki.jsonl', 'the whole dump, streamed')
    .example('$0 data crawl wikipedia --api https://vi.wikipedia.org/w/api.php --category "Sông Việt Nam" --out runs/song.jsonl --rate 1', 'one category through the API')),
  handler: async (a) => {
    const { crawlDump } = await import('../../data/crawl/dump.js');
    const { crawlApi } = await import('../../data/crawl/mediawiki.js');
    await withInterrupt((signal) => {
      if (a.dump) return crawlDump({ dump: a.dump, out: a.out, resume: a.resume, source: a.source, maxDocs: a['max-docs'], decompressor: a.decompressor, signal });
      if (!a.api) throw new UserError('give --dump or --api');
      return crawlApi({
        api: a.api, titlesFile: a['titles-file'], category: a.category, out: a.out, resume: a.resume, source: a.source,
        maxDocs: a['max-docs'], batchSize: a['batch-size'],
        rate: a.rate, retries: a.retries, retryBaseMs: a['retry-base-ms'], userAgent: a['user-agent'], signal,
      });
    }, a.json);
  },
});

const hf = defineCommand({
  command: 'hf',
  describe: 'a Hugging Face dataset → JSONL {id,title,text,source,url} through the datasets-server API',
  builder: (y) => httpOptions(y
    .option('dataset', { type: 'string', demandOption: true, describe: 'dataset id, e.g. wikimedia/wikipedia' })
    .option('config', { type: 'string', describe: 'config (subset); default: the only one, or "default"' })
    .option('split', { type: 'string', describe: 'split; default: train' })
    .option('column', { type: 'string', default: 'text', describe: 'the text column' })
    .option('title-column', { type: 'string', default: 'title', describe: 'the title column, used when present' })
    .option('endpoint', { type: 'string', default: DEFAULT_HF_ENDPOINT, describe: 'datasets-server base URL' })
    .option('via', { choices: ['rows', 'parquet'] as const, default: 'parquet' as const, describe: '/rows pages (100 rows a request, long cells may be truncated) or the /parquet shards (range requests, full cells)' })
    .option('token', { type: 'string', default: process.env.HF_TOKEN, defaultDescription: '$HF_TOKEN', describe: 'Hugging Face token for gated datasets' })
    .option('out', { type: 'string', demandOption: true, describe: 'output JSONL (appears only when complete; OUT.part while running)' })
    .option('resume', { type: 'boolean', default: false, describe: 'continue an interrupted crawl from OUT.part' })
    .option('max-docs', { type: 'number', describe: 'stop after this many rows with text' })
    .option('json', { type: 'boolean', default: false, describe: 'print the summary as JSON on stdout' })
    .example('$0 data crawl hf --dataset wikimedia/wikipedia --config 20231101.vi --out runs/hf-viwiki.jsonl', 'Parquet shards of a config')),
  handler: async (a) => {
    const { crawlHf } = await import('../../data/crawl/hf.js');
    await withInterrupt((signal) => crawlHf({
      dataset: a.dataset, config: a.config, split: a.split, column: a.column, titleColumn: a['title-column'],
      endpoint: a.endpoint, via: a.via, token: a.token, out: a.out, resume: a.resume, maxDocs: a['max-docs'],
      rate: a.rate, retries: a.retries, retryBaseMs: a['retry-base-ms'], userAgent: a['user-agent'], signal,
    }), a.json);
  },
});

export const crawlCommand = defineCommand({
  command: 'crawl <source>',
  describe: 'download raw text: Wikipedia (dump or API) or a Hugging Face dataset, as JSONL',
  builder: (y) => y.command(wikipedia).command(hf).demandCommand(1),
  handler: () => undefined,
});
