import { promises as fs } from 'node:fs';
import { UserError } from '../../util/errors.js';
import { log } from '../../util/log.js';
import { progress } from '../../util/progress.js';
import { CrawlInterrupted, HttpClient, type HttpOptions } from './http.js';
import { CrawlOutput } from './output.js';
import { stopAfterError, titleToPath, type CrawlSummary } from './dump.js';
import { wikitextToPlain } from './wikitext.js';

/**
 * `vilm data crawl wikipedia --api URL (--titles-file F | --category NAME)`: pages through the
 * MediaWiki action API (`action=query&prop=revisions&rvprop=content&rvslots=main`,
 * `formatversion=2`) — a list of titles in batches, or the members of a category through
 * `generator=categorymembers` — following the API's `continue` protocol (pass every key of
 * `continue` back unchanged until it is absent). The resume cursor is exactly that: the batch
 * number and the `continue` object of the next request.
 */
export interface ApiCrawlOptions extends HttpOptions {
  api: string;
  titlesFile?: string;
  category?: string;
  out: string;
  resume?: boolean;
  source?: string;
  maxDocs?: number;
  /** titles per request (≤ 50, the API's limit for normal clients); default 20 */
  batchSize?: number;
  /** called after each document is written, with the running count */
  onDoc?: (count: number) => void;
}

export interface ApiCursor {
  /** titles mode: index of the current batch; category mode: always 0 */
  batch: number;
  /** the API's `continue` object for the next request, or null at the start of a batch */
  cont: Record<string, string> | null;
}

interface ApiPage {
  pageid?: number;
  ns?: number;
  title?: string;
  missing?: boolean;
  invalid?: boolean;
  fullurl?: string;
  revisions?: { slots?: { main?: { content?: string } } }[];
}

interface ApiResponse {
  error?: { code?: string; info?: string };
  continue?: Record<string, string>;
  query?: { pages?: ApiPage[] };
}

export async function crawlApi(opts: ApiCrawlOptions): Promise<CrawlSummary> {
  const t0 = Date.now();
  if ((opts.titlesFile === undefined) === (opts.category === undefined)) {
    throw new UserError('--api needs exactly one of --titles-file or --category');
  }
  let apiUrl: URL;
  try { apiUrl = new URL(opts.api); } catch { throw new UserError(`--api: not a URL: ${opts.api}`); }
  const source = opts.source ?? 'viwiki';
  const batchSize = Math.min(Math.max(1, opts.batchSize ?? 20), 50);
  const titles = opts.titlesFile !== undefined ? await readTitles(opts.titlesFile) : undefined;
  const category = opts.category !== undefined ? categoryTitle(opts.category) : undefined;
  const batches = titles ? Math.ceil(titles.length / batchSize) : 1;

  const what = titles ? `titles ${opts.titlesFile} (${titles.length})` : `category ${category}`;
  const fingerprint = `api ${apiUrl.href} ${what} source=${source}`;
  const { output, cursor: resumeAt } = await CrawlOutput.open<ApiCursor>(opts.out, { resume: opts.resume ?? false, fingerprint });
  const client = new HttpClient(opts);
  const skipped = { missing: 0, namespace: 0, redirect: 0, empty: 0 };
  let cursor: ApiCursor = resumeAt ?? { batch: 0, cont: null };
  const bar = titles
    ? progress('crawl wikipedia api', titles.length, 'titles', { start: Math.min(cursor.batch * batchSize, titles.length) })
    : progress('crawl wikipedia api', 0, 'pages', { start: output.count });
  let responses = 0;

  try {
    outer: while (cursor.batch < batches) {
      const params: Record<string, string> = {
        action: 'query', format: 'json', formatversion: '2',
        prop: 'revisions|info', rvprop: 'content', rvslots: 'main', inprop: 'url',
      };
      if (titles) {
        params.titles = titles.slice(cursor.batch * batchSize, (cursor.batch + 1) * batchSize).join('|');
        params.redirects = '1'; // a listed title that is a redirect gives its target article
      } else {
        Object.assign(params, { generator: 'categorymembers', gcmtitle: category as string, gcmnamespace: '0', gcmtype: 'page', gcmlimit: String(batchSize) });
      }
      if (cursor.cont) Object.assign(params, cursor.cont);
      const url = new URL(apiUrl.href);
      for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);

      const body = (await client.getJson(url.href)) as ApiResponse;
      responses++;
      if (body.error) throw new UserError(`${url.href}: API error ${body.error.code ?? '?'}: ${body.error.info ?? ''}`.trim());
      if (!body.query && !body.continue) {
        if (titles || responses > 1 || cursor.cont) break; // nothing (more) to return
        throw new UserError(`${apiUrl.href}: ${category} has no members (or does not exist)`);
      }
      for (const page of body.query?.pages ?? []) {
        if (opts.signal?.aborted) throw new CrawlInterrupted();
        if (page.missing || page.invalid) { skipped.missing++; log.warn(`no page "${page.title ?? '?'}" on ${apiUrl.host}`); continue; }
        const content = page.revisions?.[0]?.slots?.main?.content;
        if (content === undefined) continue; // its revision comes in a later response (rvcontinue)
        if (page.ns !== 0) { skipped.namespace++; continue; }
        const text = wikitextToPlain(content);
        if (text === '') { if (/^\s*#/.test(content)) skipped.redirect++; else skipped.empty++; continue; }
        const title = page.title ?? '';
        await output.write({
          id: `${source}:${page.pageid ?? title}`,
          title,
          text,
          source,
          url: page.fullurl ?? `${apiUrl.origin}/wiki/${titleToPath(title)}`,
        });
        opts.onDoc?.(output.count);
        if (opts.maxDocs !== undefined && output.count >= opts.maxDocs) break outer;
      }
      // the response is fully written: move the cursor past it
      cursor = body.continue ? { batch: cursor.batch, cont: stripContinue(body.continue) } : { batch: cursor.batch + 1, cont: null };
      await output.checkpoint(cursor, true);
      bar.update(titles ? Math.min(cursor.batch * batchSize, titles.length) : output.count, { docs: output.count });
    }
    if (output.count === 0) {
      await output.discard();
      throw new UserError(`${apiUrl.href}: no articles with text for ${what}`);
    }
    await output.commit();
  } catch (e) {
    bar.abort();
    // no cursor: the state saved at the last response boundary is the consistent one
    throw await stopAfterError(e, output, undefined, opts.out);
  }
  const summary: CrawlSummary = { docs: output.count, seen: responses, skipped, out: opts.out, seconds: (Date.now() - t0) / 1000 };
  bar.done(`${summary.docs} docs in ${responses} requests (${client.requests} with retries; skipped: ${skipped.missing} missing, ${skipped.namespace} other namespaces, ${skipped.redirect} redirects, ${skipped.empty} empty) → ${opts.out}`);
  return summary;
}

/** Keep only string values (the API's continue object is flat strings). */
function stripContinue(c: Record<string, unknown>): Record<string, string> {
  const o: Record<string, string> = {};
  for (const [k, v] of Object.entries(c)) if (typeof v === 'string' || typeof v === 'number') o[k] = String(v);
  return o;
}

/** `Sông Việt Nam` → `Category:Sông Việt Nam`; `Thể loại:X` and `Category:X` are kept as given. */
export function categoryTitle(name: string): string {
  const n = name.trim();
  if (/^(thể loại|category)\s*:/iu.test(n)) return n;
  return `Category:${n}`;
}

/** One title a line (UTF-8); blank lines ignored; duplicates dropped (first kept). */
async function readTitles(file: string): Promise<string[]> {
  let buf: Buffer;
  try { buf = await fs.readFile(file); } catch (e) {
    throw new UserError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let text: string;
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(buf); } catch {
    const line = findBadUtf8Line(buf);
    throw new UserError(`${file}:${line}: invalid UTF-8`);
  }
  const seen = new Set<string>();
  const titles: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const t = raw.trim().normalize('NFC');
    if (t === '') return;
    if (t.includes('|')) throw new UserError(`${file}:${i + 1}: a title cannot contain '|'`);
    if (!seen.has(t)) { seen.add(t); titles.push(t); }
  });
  if (titles.length === 0) throw new UserError(`${file}: empty input (no titles)`);
  return titles;
}

function findBadUtf8Line(buf: Buffer): number {
  const dec = new TextDecoder('utf-8', { fatal: true });
  let start = 0;
  let line = 1;
  for (let i = 0; i <= buf.length; i++) {
    if (i === buf.length || buf[i] === 10) {
      try { dec.decode(buf.subarray(start, i)); } catch { return line; }
      start = i + 1;
      line++;
    }
  }
  return line;
}
