import { createReadStream, promises as fs } from 'node:fs';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { PassThrough } from 'node:stream';
import unbzip2 from 'unbzip2-stream';
import { SaxesParser } from 'saxes';
import { UserError } from '../../util/errors.js';
import { log } from '../../util/log.js';
import { progress } from '../../util/progress.js';
import { CrawlInterrupted } from './http.js';
import { CrawlOutput } from './output.js';
import { wikitextToPlain } from './wikitext.js';

/** One `<page>` of a MediaWiki XML export (the last revision's text). */
export interface DumpPage {
  id: string;
  ns: number;
  title: string;
  redirect: boolean;
  text: string;
}

export interface DumpInfo {
  /** article URL prefix from `<siteinfo><base>`, e.g. `https://vi.wikipedia.org/wiki/` */
  urlPrefix: string;
  /** compressed bytes read so far (for progress) */
  bytesRead: number;
  fileSize: number;
}

/**
 * How to decompress bz2: `js` is unbzip2-stream (pure JS, always there, ~4 MB/s of XML here);
 * `bzip2` pipes through the system binary in a second process (several times faster on the 1.5 GB
 * dump); `auto` takes the binary when it is on PATH. Both handle concatenated (multistream) files.
 */
export type Decompressor = 'auto' | 'js' | 'bzip2';

let systemBzip2: boolean | undefined;
export function haveSystemBzip2(): boolean {
  systemBzip2 ??= spawnSync('bzip2', ['--help'], { stdio: 'ignore' }).error === undefined;
  return systemBzip2;
}

/**
 * Stream the pages of a MediaWiki XML dump (`.xml.bz2`, single- or multistream, or plain `.xml`),
 * in constant memory: file → bz2 decompressor (see Decompressor; concatenated bz2 streams as in
 * the `…-multistream.xml.bz2` dumps work) → strict UTF-8 decoder → saxes. Only the current page's
 * fields are held; pages are yielded as their `</page>` is parsed, and the file stream is paused
 * while the consumer works (pipe backpressure).
 */
export async function* readDumpPages(file: string, info: DumpInfo = { urlPrefix: '', bytesRead: 0, fileSize: 0 }, decompressor: Decompressor = 'auto'): AsyncGenerator<DumpPage> {
  const { size, bz2 } = await probe(file);
  info.fileSize = size;
  if (size === 0) throw new UserError(`${file}: empty input`);

  const src = createReadStream(file, { highWaterMark: 1 << 20 });
  const pass = new PassThrough({ highWaterMark: 1 << 20 });
  src.on('error', (e: NodeJS.ErrnoException) => pass.destroy(new UserError(`${file}: cannot read (${e.code ?? e.message})`)));
  let bz: ReturnType<typeof unbzip2> | undefined;
  let child: ChildProcessWithoutNullStreams | undefined;
  let exited: Promise<void> | undefined;
  if (decompressor === 'bzip2' && !haveSystemBzip2()) throw new UserError('--decompressor bzip2: no bzip2 binary on PATH');
  if (bz2 && (decompressor === 'bzip2' || (decompressor === 'auto' && haveSystemBzip2()))) {
    const proc = spawn('bzip2', ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
    child = proc;
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    // bzip2 exits non-zero on a cut-off or damaged file ("Compressed file ends unexpectedly")
    exited = new Promise<void>((resolve, reject) => {
      proc.on('error', (e) => reject(new UserError(`${file}: cannot run bzip2 (${e.message})`)));
      proc.on('close', (code, signal) => {
        if (code === 0) resolve();
        else reject(new UserError(`${file}: truncated or corrupt bz2 data (${stderr.split('\n').map((l) => l.trim()).find((l) => l !== '') ?? `bzip2 exit ${code ?? signal}`})`));
      });
    });
    exited.catch(() => undefined); // observed after the stream ends
    proc.stdin.on('error', () => undefined); // EPIPE when bzip2 gives up early; its exit code tells why
    src.pipe(proc.stdin);
    proc.stdout.pipe(pass);
  } else if (bz2) {
    bz = unbzip2();
    // unbzip2-stream reports a cut-off file as "input stream ended prematurely" or as a TypeError
    // from reading past its buffer; both mean the same thing to the user.
    bz.on('error', (e: Error) => pass.destroy(new UserError(`${file}: truncated or corrupt bz2 data after ${src.bytesRead} bytes (${e.message})`)));
    src.pipe(bz).pipe(pass);
  } else {
    src.pipe(pass);
  }

  const decoder = new TextDecoder('utf-8', { fatal: true });
  const parser = new SaxesParser({ position: true });
  const ready: DumpPage[] = [];
  const path: string[] = [];
  let buf = '';
  let collecting = false;
  let page: DumpPage | undefined;
  let pagesSeen = 0;
  let lastId = '';

  // Text is collected only inside the few elements we need; the path tells `<id>` of the page
  // apart from the revision's and the contributor's ids.
  const want = (p: string[]): boolean => {
    const n = p.length;
    if (n === 3 && p[1] === 'page') return p[2] === 'title' || p[2] === 'ns' || p[2] === 'id';
    if (n === 4 && p[1] === 'page') return p[2] === 'revision' && p[3] === 'text';
    return n === 3 && p[1] === 'siteinfo' && p[2] === 'base';
  };
  parser.on('opentag', (t) => {
    path.push(t.name);
    if (path.length === 2 && t.name === 'page') page = { id: '', ns: 0, title: '', redirect: false, text: '' };
    else if (page && path.length === 3 && t.name === 'redirect') page.redirect = true;
    collecting = want(path);
    buf = '';
  });
  parser.on('text', (t) => { if (collecting) buf += t; });
  parser.on('cdata', (t) => { if (collecting) buf += t; });
  parser.on('closetag', (t) => {
    if (collecting) {
      if (page && path.length === 3) {
        if (t.name === 'title') page.title = buf;
        else if (t.name === 'ns') page.ns = Number(buf.trim());
        else if (t.name === 'id') page.id = buf.trim();
      } else if (page && path.length === 4) {
        page.text = buf; // several revisions (history dumps): the last one wins
      } else if (path.length === 3 && t.name === 'base') {
        const m = /^(.*\/wiki\/)/.exec(buf.trim());
        info.urlPrefix = m ? m[1] : new URL('/wiki/', buf.trim()).href;
      }
      collecting = false;
      buf = '';
    }
    if (path.length === 2 && t.name === 'page' && page) {
      ready.push(page);
      pagesSeen++;
      lastId = page.id;
      page = undefined;
    }
    path.pop();
  });

  const where = () => (lastId ? ` after page id ${lastId}` : '');
  const feed = (text: string) => {
    try {
      parser.write(text);
    } catch (e) {
      throw new UserError(`${file}: invalid XML${where()} (${(e as Error).message.split('\n')[0]})`);
    }
  };

  let decompressed = 0;
  try {
    for await (const chunk of pass as AsyncIterable<Buffer>) {
      info.bytesRead = src.bytesRead;
      let text: string;
      try {
        text = decoder.decode(chunk, { stream: true });
      } catch {
        // locate the bad byte: parse the valid prefix so the message can name the page and line
        const lossy = new TextDecoder('utf-8').decode(chunk);
        const bad = Math.max(0, lossy.indexOf('\uFFFD'));
        try { parser.write(lossy.slice(0, bad)); } catch { /* the encoding error is the one to report */ }
        throw new UserError(`${file}: invalid UTF-8 in the XML at byte ${decompressed + Buffer.byteLength(lossy.slice(0, bad))} (line ${parser.line})${where()}`);
      }
      decompressed += chunk.length;
      feed(text);
      while (ready.length > 0) yield ready.shift() as DumpPage;
    }
    if (exited) await exited; // a bzip2 failure explains an early end better than the XML parser
    let tail: string;
    try { tail = decoder.decode(); } catch { throw new UserError(`${file}: invalid UTF-8 at the end of the XML${where()}`); }
    feed(tail);
    try { parser.close(); } catch (e) {
      throw new UserError(`${file}: XML ends early${where()}, the file looks truncated (${(e as Error).message.split('\n')[0]})`);
    }
    while (ready.length > 0) yield ready.shift() as DumpPage;
    if (decompressed === 0) throw new UserError(`${file}: empty input (no XML inside)`);
    if (pagesSeen === 0) throw new UserError(`${file}: no <page> elements: not a MediaWiki XML export?`);
  } finally {
    src.destroy();
    pass.destroy();
    bz?.destroy();
    if (child && child.exitCode === null) child.kill();
  }
}

async function probe(file: string): Promise<{ size: number; bz2: boolean }> {
  let fh;
  try {
    fh = await fs.open(file, 'r');
  } catch (e) {
    throw new UserError(`${file}: cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(3);
    await fh.read(head, 0, 3, 0);
    return { size, bz2: head.toString('latin1') === 'BZh' };
  } finally {
    await fh.close();
  }
}

export interface CrawlSummary {
  docs: number;
  /** pages looked at (for dumps), API responses or rows (for HTTP sources) */
  seen: number;
  skipped: Record<string, number>;
  out: string;
  seconds: number;
}

export interface DumpCrawlOptions {
  dump: string;
  out: string;
  resume?: boolean;
  /** `source` field of every line (default 'viwiki') */
  source?: string;
  /** stop (and commit) after this many documents */
  maxDocs?: number;
  /** bz2 decompressor (default auto: the system bzip2 when present, else unbzip2-stream) */
  decompressor?: Decompressor;
  /** Ctrl-C: stop, keep the part file for --resume */
  signal?: AbortSignal;
  /** called after each document is written, with the running count (progress hooks, tests) */
  onDoc?: (count: number) => void;
}

/** Resume point of a dump crawl: pages consumed (all namespaces) and the last one's id, as a check. */
export interface DumpCursor { pagesSeen: number; lastPageId: string }

/**
 * `vilm data crawl wikipedia --dump`: namespace-0, non-redirect pages → plain text → JSONL.
 * Resuming re-reads the dump (bz2 has no cheap random access) but skips converting and writing the
 * pages already done.
 */
export async function crawlDump(opts: DumpCrawlOptions): Promise<CrawlSummary> {
  const t0 = Date.now();
  const source = opts.source ?? 'viwiki';
  const stat = await fs.stat(opts.dump).catch(() => undefined);
  if (!stat) throw new UserError(`${opts.dump}: no such file`);
  const fingerprint = `dump ${opts.dump} (${stat.size} bytes) source=${source}`;
  const { output, cursor: resumeAt } = await CrawlOutput.open<DumpCursor>(opts.out, { resume: opts.resume ?? false, fingerprint });
  const info: DumpInfo = { urlPrefix: '', bytesRead: 0, fileSize: stat.size };
  const bar = progress('crawl wikipedia dump', stat.size, 'bytes');
  const skipped = { redirect: 0, namespace: 0, empty: 0 };
  let cursor: DumpCursor = resumeAt ?? { pagesSeen: 0, lastPageId: '' };
  let seen = 0;
  try {
    for await (const page of readDumpPages(opts.dump, info, opts.decompressor)) {
      if (opts.signal?.aborted) throw new CrawlInterrupted();
      seen++;
      if (resumeAt && seen <= resumeAt.pagesSeen) {
        if (seen === resumeAt.pagesSeen && page.id !== resumeAt.lastPageId) {
          throw new UserError(`${opts.dump}: page ${seen} has id ${page.id}, but the partial crawl stopped at id ${resumeAt.lastPageId}; not the same dump`);
        }
        continue;
      }
      if (page.ns !== 0) skipped.namespace++;
      else if (page.redirect) skipped.redirect++;
      else {
        const text = wikitextToPlain(page.text);
        if (text === '') skipped.empty++; // also redirects not flagged with <redirect/>
        else {
          const prefix = info.urlPrefix || 'https://vi.wikipedia.org/wiki/';
          await output.write({ id: `${source}:${page.id}`, title: page.title, text, source, url: prefix + titleToPath(page.title) });
          opts.onDoc?.(output.count);
        }
      }
      cursor = { pagesSeen: seen, lastPageId: page.id };
      await output.checkpoint(cursor);
      if (seen % 200 === 0) bar.update(info.bytesRead, { pages: seen, docs: output.count });
      if (opts.maxDocs !== undefined && output.count >= opts.maxDocs) break;
    }
    if (resumeAt && seen < resumeAt.pagesSeen) {
      throw new UserError(`${opts.dump}: has ${seen} pages, but the partial crawl had read ${resumeAt.pagesSeen}; not the same dump`);
    }
    if (output.count === 0) {
      await output.discard();
      throw new UserError(`${opts.dump}: no articles (namespace 0, not redirects) with text found`);
    }
    await output.commit();
  } catch (e) {
    bar.abort();
    throw await stopAfterError(e, output, cursor, opts.out);
  }
  const summary: CrawlSummary = { docs: output.count, seen, skipped, out: opts.out, seconds: (Date.now() - t0) / 1000 };
  bar.update(info.bytesRead, { pages: seen, docs: output.count });
  bar.done(`${summary.docs} docs from ${seen} pages (skipped: ${skipped.namespace} other namespaces, ${skipped.redirect} redirects, ${skipped.empty} empty) → ${opts.out}`);
  return summary;
}

/** `Hội An (thành phố)` → `H%E1%BB%99i_An_(th%C3%A0nh_ph%E1%BB%91)`, as MediaWiki writes article URLs. */
export function titleToPath(title: string): string {
  return encodeURIComponent(title.replace(/ /g, '_')).replace(/%2F/g, '/').replace(/%3A/g, ':').replace(/%28/g, '(').replace(/%29/g, ')').replace(/%2C/g, ',');
}

/**
 * After a failure or Ctrl-C: keep the part file and save the cursor when something was written
 * (so `--resume` continues), otherwise delete it. Returns the error to throw.
 */
export async function stopAfterError<C>(e: unknown, output: CrawlOutput<C>, cursor: C | undefined, out: string): Promise<unknown> {
  const count = output.count;
  if (count > 0) await output.suspend(cursor).catch(() => undefined);
  else await output.discard().catch(() => undefined);
  if (e instanceof CrawlInterrupted) {
    return new UserError(count > 0 ? `interrupted: ${count} docs kept in ${CrawlOutput.partPath(out)}; rerun with --resume to continue` : 'interrupted', 130);
  }
  if (count > 0) log.info(`partial output kept in ${CrawlOutput.partPath(out)} (${count} docs); rerun with --resume to continue`);
  return e;
}
