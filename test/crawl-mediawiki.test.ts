import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type http from 'node:http';
import { crawlApi, categoryTitle } from '../src/data/crawl/mediawiki.ts';
import { CrawlOutput } from '../src/data/crawl/output.ts';
import { parseRetryAfter } from '../src/data/crawl/http.ts';
import { wikitextToPlain } from '../src/data/crawl/wikitext.ts';
import { UserError } from '../src/util/errors.ts';
import { setQuiet } from '../src/util/log.ts';
import { startServer, sendJson, runCli, type FixtureServer, type Req } from './support/crawl-server.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
let dir: string;
let server: FixtureServer;

// ---- a small fake Vietnamese Wikipedia behind /w/api.php --------------------------------------
interface WikiPage { pageid: number; ns: number; title: string; content: string }
const RIVERS = ['Sông Hồng', 'Sông Đà', 'Sông Lô', 'Sông Mã', 'Sông Cả', 'Sông Hương', 'Sông Thu Bồn', 'Sông Ba', 'Sông Đồng Nai', 'Sông Sài Gòn', 'Sông Tiền', 'Sông Hậu', 'Sông Cầu'];
const WIKI = new Map<string, WikiPage>();
RIVERS.forEach((t, i) => WIKI.set(t, {
  pageid: 500 + i, ns: 0, title: t,
  content: `{{Hộp thông tin sông|tên=${t}}}\n'''${t}''' là một con sông ở [[Việt Nam]] dài ${100 + i * 37}&nbsp;km.<ref>Tổng cục Thủy lợi</ref>\n\n== Dòng chảy ==\nSông chảy qua [[tỉnh]] [[Hà Giang|Hà Giang]].\n[[Thể loại:Sông Việt Nam]]`,
}));
WIKI.set('Hồng Hà', { pageid: 900, ns: 0, title: 'Hồng Hà', content: '#đổi [[Sông Hồng]]' });
WIKI.set('Thể loại:Sông Việt Nam', { pageid: 901, ns: 14, title: 'Thể loại:Sông Việt Nam', content: 'Các sông.' });
const REDIRECTS = new Map([['Hồng Hà', 'Sông Hồng']]);
const CATEGORY = 'Thể loại:Sông Việt Nam';
const MEMBERS = [...RIVERS.slice(0, 11), 'Hồng Hà']; // a redirect among the members, as happens

const fullurl = (t: string) => `https://vi.wikipedia.org/wiki/${encodeURIComponent(t.replace(/ /g, '_'))}`;
const apiPage = (p: WikiPage, withContent = true) => ({
  pageid: p.pageid, ns: p.ns, title: p.title, fullurl: fullurl(p.title), contentmodel: 'wikitext',
  ...(withContent ? { revisions: [{ slots: { main: { contentmodel: 'wikitext', contentformat: 'text/x-wiki', content: p.content } } }] } : {}),
});

type Fault = (res: http.ServerResponse) => void;
let faults = new Map<number, Fault>();
let failFrom = Infinity; // every request from this number on gets HTTP 500

function wikiApi(req: Req, res: http.ServerResponse, n: number): void {
  if (req.url.pathname === '/latin1/api.php') { res.writeHead(200, { 'content-type': 'application/json' }); res.end(Buffer.from('{"query":{"pages":[{"title":"S\xf4ng"}]}}', 'latin1')); return; }
  if (req.url.pathname !== '/w/api.php') { res.writeHead(404, { 'content-type': 'text/html' }); res.end('<h1>Not Found</h1>'); return; }
  const f = faults.get(n);
  if (f) { f(res); return; }
  if (n >= failFrom) { res.writeHead(500); res.end('Internal Server Error'); return; }
  const q = req.url.searchParams;
  assert.equal(q.get('action'), 'query');
  assert.equal(q.get('formatversion'), '2');
  assert.equal(q.get('rvslots'), 'main');
  assert.equal(q.get('rvprop'), 'content');
  const titles = q.get('titles');
  if (titles !== null) {
    const pages = titles.split('|').map((t) => {
      const target = q.get('redirects') === '1' ? REDIRECTS.get(t) ?? t : t;
      const p = WIKI.get(target);
      return p ? apiPage(p) : { ns: 0, title: t, missing: true };
    });
    sendJson(res, { batchcomplete: true, query: { pages } });
    return;
  }
  // generator=categorymembers with continuation; the second page of members also splits its
  // revisions over two responses (rvcontinue), as the real API does when content is large
  assert.equal(q.get('generator'), 'categorymembers');
  const cat = q.get('gcmtitle');
  if (cat !== CATEGORY && cat !== 'Category:Sông Việt Nam') { sendJson(res, { batchcomplete: true }); return; }
  const limit = Number(q.get('gcmlimit'));
  const start = Number(q.get('gcmcontinue') ?? 0);
  const slice = MEMBERS.slice(start, start + limit).map((t) => WIKI.get(t) as WikiPage);
  const next = start + limit < MEMBERS.length ? { gcmcontinue: String(start + limit), continue: 'gcmcontinue||' } : undefined;
  const rv = q.get('rvcontinue');
  if (start === limit && rv === null) {
    sendJson(res, { query: { pages: slice.map((p, i) => apiPage(p, i < 2)) }, continue: { rvcontinue: '2', gcmcontinue: String(start), continue: 'gcmcontinue||' } });
    return;
  }
  const from = rv === null ? 0 : Number(rv);
  sendJson(res, { ...(next ? { continue: next } : { batchcomplete: true }), query: { pages: slice.map((p, i) => apiPage(p, i >= from)) } });
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'vilm-crawl-mw-'));
  setQuiet(true);
  server = await startServer(wikiApi);
});
after(async () => { await server.close(); rmSync(dir, { recursive: true, force: true }); setQuiet(false); });

const api = () => `${server.url}/w/api.php`;
const readLines = (f: string) => readFileSync(f, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
const fast = { rate: 1000, retries: 3, retryBaseMs: 20 };
const reset = () => { faults = new Map(); failFrom = Infinity; server.requests.length = 0; };

test('titles file: batches, redirects followed, missing and non-article pages skipped, 429 and 500 retried', async () => {
  reset();
  const titlesFile = path.join(dir, 'titles.txt');
  writeFileSync(titlesFile, ['Sông Hồng', '', 'Sông Đà', 'Hồng Hà', 'Sông Không Có', 'Sông Đà', CATEGORY, 'Sông Mã', 'Sông Cả\r'].join('\n'));
  // request 2: 429 with Retry-After; request 4: 500; both succeed on retry
  faults.set(2, (res) => { res.writeHead(429, { 'retry-after': '0' }); res.end('slow down'); });
  faults.set(4, (res) => { res.writeHead(500); res.end('oops'); });
  const out = path.join(dir, 'titles.jsonl');
  const s = await crawlApi({ api: api(), titlesFile, out, batchSize: 2, ...fast });
  const docs = readLines(out);
  // Hồng Hà redirects to Sông Hồng: the same article twice (the API returns what was asked)
  assert.deepEqual(docs.map((d) => d.title), ['Sông Hồng', 'Sông Đà', 'Sông Hồng', 'Sông Mã', 'Sông Cả']);
  const hong = WIKI.get('Sông Hồng') as WikiPage;
  assert.deepEqual(docs[0], { id: `viwiki:${hong.pageid}`, title: 'Sông Hồng', text: wikitextToPlain(hong.content), source: 'viwiki', url: fullurl('Sông Hồng') });
  assert.equal(docs[0].text, 'Sông Hồng là một con sông ở Việt Nam dài 100 km.\n\n== Dòng chảy ==\nSông chảy qua tỉnh Hà Giang.');
  assert.deepEqual(s.skipped, { missing: 1, namespace: 1, redirect: 0, empty: 0 });
  // 4 batches of 2 titles (7 distinct titles) + 2 retries
  assert.equal(server.requests.length, 6);
  assert.match(String(server.requests[0].headers['user-agent']), /^vilm-crawl\//);
});

test('Retry-After is honoured instead of the (here enormous) exponential backoff; 429 forever gives up cleanly', async () => {
  reset();
  const titlesFile = path.join(dir, 't1.txt');
  writeFileSync(titlesFile, 'Sông Lô\n');
  faults.set(1, (res) => { res.writeHead(429, { 'retry-after': '1' }); res.end(); });
  const out = path.join(dir, 'ra.jsonl');
  // with a 10-minute backoff base, only Retry-After: 1 lets this finish within the test timeout
  await crawlApi({ api: api(), titlesFile, out, rate: 1000, retries: 2, retryBaseMs: 600_000 });
  assert.equal(readLines(out)[0].title, 'Sông Lô');

  reset();
  for (let i = 1; i <= 3; i++) faults.set(i, (res) => { res.writeHead(429, { 'retry-after': '0' }); res.end(); });
  const out2 = path.join(dir, 'ra2.jsonl');
  await assert.rejects(crawlApi({ api: api(), titlesFile, out: out2, rate: 1000, retries: 2, retryBaseMs: 600_000 }),
    (e: unknown) => e instanceof UserError && e.message.startsWith(`${api()}?`) && /HTTP 429 Too Many Requests .*gave up after 2 retries/.test(e.message));
  assert.ok(!existsSync(out2) && !existsSync(CrawlOutput.partPath(out2)));
  assert.equal(parseRetryAfter('2'), 2000);
  assert.ok((parseRetryAfter(new Date(Date.now() + 5000).toUTCString()) ?? 0) > 3000);
  assert.equal(parseRetryAfter('soon'), undefined);
});

test('category: generator continuation and rvcontinue, redirects skipped, "Thể loại:" optional', { timeout: 20_000 }, async () => {
  reset();
  const out = path.join(dir, 'cat.jsonl');
  const s = await crawlApi({ api: api(), category: 'Sông Việt Nam', out, batchSize: 4, ...fast });
  const docs = readLines(out);
  assert.deepEqual(docs.map((d) => d.title), RIVERS.slice(0, 11));
  assert.equal(s.skipped.redirect, 1);
  assert.equal(new Set(docs.map((d) => d.id)).size, docs.length, 'no page twice');
  // 3 member pages of 4, the second split in two by rvcontinue
  assert.equal(server.requests.length, 4);
  assert.equal(categoryTitle('Thể loại:Sông Việt Nam'), CATEGORY);
  assert.equal(categoryTitle('Sông Việt Nam'), 'Category:Sông Việt Nam');

  await assert.rejects(crawlApi({ api: api(), category: 'Không tồn tại', out: path.join(dir, 'none.jsonl'), ...fast }), /Category:Không tồn tại has no members/);
});

test('resume after the server fails mid-crawl gives output identical to an uninterrupted run', async () => {
  reset();
  const clean = path.join(dir, 'clean.jsonl');
  await crawlApi({ api: api(), category: CATEGORY, out: clean, batchSize: 3, ...fast });
  const cleanRequests = server.requests.length;

  reset();
  failFrom = 3; // requests 3, 4, … fail: two responses done, then 500 until retries run out
  const out = path.join(dir, 'resumed.jsonl');
  await assert.rejects(crawlApi({ api: api(), category: CATEGORY, out, batchSize: 3, rate: 1000, retries: 1, retryBaseMs: 10 }),
    (e: unknown) => e instanceof UserError && /HTTP 500 Internal Server Error \(gave up after 1 retries\)/.test(e.message));
  assert.ok(!existsSync(out));
  assert.equal(readLines(CrawlOutput.partPath(out)).length, 5); // 3 + 2 (the rvcontinue half)

  reset();
  await crawlApi({ api: api(), category: CATEGORY, out, batchSize: 3, resume: true, ...fast });
  assert.equal(readFileSync(out, 'utf8'), readFileSync(clean, 'utf8'));
  assert.equal(server.requests.length, cleanRequests - 2, 'the resumed run starts where the first stopped');
  assert.equal(server.requests[0].url.searchParams.get('gcmcontinue'), '3');
  assert.equal(server.requests[0].url.searchParams.get('rvcontinue'), '2');
});

test('HTTP 404, unreadable titles files and bad options fail with one line naming the URL or file', async () => {
  reset();
  const titlesFile = path.join(dir, 't404.txt');
  writeFileSync(titlesFile, 'Sông Hồng\n');
  const out = path.join(dir, '404.jsonl');
  await assert.rejects(crawlApi({ api: `${server.url}/wrong/api.php`, titlesFile, out, ...fast }),
    (e: unknown) => e instanceof UserError && e.message.startsWith(`${server.url}/wrong/api.php?`) && e.message.endsWith(': HTTP 404 Not Found'));
  assert.equal(server.requests.length, 1, '404 is not retried');
  assert.ok(!existsSync(out) && !existsSync(CrawlOutput.partPath(out)));

  await assert.rejects(crawlApi({ api: `${server.url}/latin1/api.php`, titlesFile, out, ...fast }),
    (e: unknown) => e instanceof UserError && /\/latin1\/api\.php\?\S+: response is not valid UTF-8$/.test(e.message));
  // nothing listens on a port we just closed: network errors are retried, then reported
  const closed = await startServer(() => undefined);
  await closed.close();
  await assert.rejects(crawlApi({ api: `${closed.url}/w/api.php`, titlesFile, out, rate: 1000, retries: 1, retryBaseMs: 5 }),
    (e: unknown) => e instanceof UserError && e.message.startsWith(closed.url) && /network error \(ECONNREFUSED\) \(gave up after 1 retries\)$/.test(e.message));
  assert.ok(!existsSync(out) && !existsSync(CrawlOutput.partPath(out)));

  const bad = path.join(dir, 'bad.txt');
  writeFileSync(bad, Buffer.concat([Buffer.from('Sông Hồng\nSông '), Buffer.from([0xc3, 0x28]), Buffer.from('\n')]));
  await assert.rejects(crawlApi({ api: api(), titlesFile: bad, out, ...fast }), /bad\.txt:2: invalid UTF-8/);
  const empty = path.join(dir, 'empty.txt');
  writeFileSync(empty, '\n\n');
  await assert.rejects(crawlApi({ api: api(), titlesFile: empty, out, ...fast }), /empty\.txt: empty input/);
  await assert.rejects(crawlApi({ api: api(), out, ...fast }), /exactly one of --titles-file or --category/);
  await assert.rejects(crawlApi({ api: 'not a url', category: 'x', out, ...fast }), /--api: not a URL/);
});

test('CLI: vilm data crawl wikipedia --api --category end to end; a 404 exits non-zero with one line', async () => {
  reset();
  const out = path.join(dir, 'cli.jsonl');
  const r = await runCli(['data', 'crawl', 'wikipedia', '--api', api(), '--category', 'Sông Việt Nam', '--out', out, '--rate', '1000', '--retry-base-ms', '10', '--batch-size', '5'], ROOT);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readLines(out).map((d) => d.title), RIVERS.slice(0, 11));

  const out2 = path.join(dir, 'cli404.jsonl');
  const r2 = await runCli(['data', 'crawl', 'wikipedia', '--api', `${server.url}/nope`, '--category', 'X', '--out', out2], ROOT);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /^vilm: http:\/\/127\.0\.0\.1:\d+\/nope\?\S+: HTTP 404 Not Found/m);
  assert.equal(r2.stderr.split('\n').filter((l) => l.startsWith('vilm: ')).length, 1);
  assert.ok(!existsSync(out2));

  const r3 = await runCli(['data', 'crawl', 'wikipedia', '--api', api(), '--out', out2], ROOT);
  assert.equal(r3.code, 2);
  assert.equal(r3.stderr.trim(), 'vilm: --api needs --titles-file FILE or --category NAME');
});
