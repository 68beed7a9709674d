import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, appendFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { crawlDump, readDumpPages } from '../src/data/crawl/dump.ts';
import { CrawlOutput } from '../src/data/crawl/output.ts';
import { UserError } from '../src/util/errors.ts';
import { setQuiet } from '../src/util/log.ts';
import { haveBzip2, bzip2, runCli } from './support/crawl-server.ts';

const HAVE_BZIP2 = haveBzip2();
const SKIP = HAVE_BZIP2 ? false : 'no system bzip2 binary to compress the fixture dump';
const ROOT = path.resolve(import.meta.dirname, '..');
let dir: string;

before(() => { dir = mkdtempSync(path.join(tmpdir(), 'vilm-crawl-dump-')); setQuiet(true); });
after(() => { rmSync(dir, { recursive: true, force: true }); setQuiet(false); });

const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

interface FixturePage { id: number; ns: number; title: string; text: string; redirect?: boolean }

/** Pages like the viwiki dump's: articles, redirects, templates (ns 10), categories (ns 14). */
function fixturePages(n: number): FixturePage[] {
  const provinces = ['Hà Giang', 'Cao Bằng', 'Lào Cai', 'Điện Biên', 'Sơn La', 'Quảng Ninh', 'Nghệ An', 'Thừa Thiên Huế', 'Đắk Lắk', 'Cà Mau'];
  const pages: FixturePage[] = [];
  for (let i = 1; i <= n; i++) {
    const p = provinces[i % provinces.length];
    const id = 1000 + i * 7;
    if (i % 11 === 0) { pages.push({ id, ns: 0, title: `${p} ${i} (định hướng)`, text: `#đổi [[${p}]]`, redirect: true }); continue; }
    if (i % 13 === 0) { pages.push({ id, ns: 10, title: `Bản mẫu:Hộp ${i}`, text: `{{{1}}} mẫu ${i}` }); continue; }
    if (i % 17 === 0) { pages.push({ id, ns: 14, title: `Thể loại:Xã ${i}`, text: `[[Thể loại:${p}]]` }); continue; }
    pages.push({
      id, ns: 0, title: `Xã ${i}, ${p}`,
      text: `{{Thông tin đơn vị hành chính Việt Nam|tên=Xã ${i}|dân số=${i * 131}}}\n'''Xã ${i}''' là một [[xã (Việt Nam)|xã]] thuộc tỉnh [[${p}]], [[Việt Nam]].<ref>{{chú thích web|url=http://x.vn}}</ref>\n[[Tập tin:Xa ${i}.jpg|nhỏ|Ảnh xã ${i}]]\n\n== Địa lý ==\nXã có diện tích ${i}&nbsp;km².\n\n== Tham khảo ==\n{{tham khảo}}\n[[Thể loại:Xã thuộc tỉnh ${p}]]\n[[en:Commune ${i}]]`,
    });
  }
  return pages;
}

function pageXml(p: FixturePage): string {
  return `  <page>\n    <title>${xmlEscape(p.title)}</title>\n    <ns>${p.ns}</ns>\n    <id>${p.id}</id>\n${p.redirect ? `    <redirect title="x" />\n` : ''}` +
    `    <revision>\n      <id>${p.id * 10 + 1}</id>\n      <parentid>${p.id * 10}</parentid>\n      <timestamp>2024-05-01T00:00:00Z</timestamp>\n` +
    `      <contributor>\n        <username>Bot</username>\n        <id>42</id>\n      </contributor>\n      <model>wikitext</model>\n      <format>text/x-wiki</format>\n` +
    `      <text bytes="${Buffer.byteLength(p.text)}" xml:space="preserve">${xmlEscape(p.text)}</text>\n      <sha1>x</sha1>\n    </revision>\n  </page>\n`;
}

const HEADER = `<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="vi">\n  <siteinfo>\n    <sitename>Wikipedia</sitename>\n    <dbname>viwiki</dbname>\n    <base>https://vi.wikipedia.org/wiki/Trang_Ch%C3%ADnh</base>\n    <namespaces>\n      <namespace key="0" case="first-letter" />\n    </namespaces>\n  </siteinfo>\n`;
const FOOTER = '</mediawiki>\n';

/** Like `…-pages-articles-multistream.xml.bz2`: a bz2 stream for the header, one per 100 pages, one for the footer. */
function multistream(pages: FixturePage[]): Buffer {
  const parts = [bzip2(HEADER)];
  for (let i = 0; i < pages.length; i += 100) parts.push(bzip2(pages.slice(i, i + 100).map(pageXml).join('')));
  parts.push(bzip2(FOOTER));
  return Buffer.concat(parts);
}

const PAGES = fixturePages(260);
const ARTICLES = PAGES.filter((p) => p.ns === 0 && !p.redirect);
const readLines = (f: string) => readFileSync(f, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, string>);

test('multistream and single-stream dumps give the same articles, namespace 0 only, no redirects', { skip: SKIP }, async () => {
  const multi = path.join(dir, 'multi.xml.bz2');
  const single = path.join(dir, 'single.xml.bz2');
  writeFileSync(multi, multistream(PAGES));
  writeFileSync(single, bzip2(HEADER + PAGES.map(pageXml).join('') + FOOTER));
  const outM = path.join(dir, 'multi.jsonl');
  const outS = path.join(dir, 'single.jsonl');
  // unbzip2-stream (pure JS) and the system bzip2 both read concatenated streams
  const s = await crawlDump({ dump: multi, out: outM, decompressor: 'js' });
  await crawlDump({ dump: single, out: outS, decompressor: 'js' });
  assert.equal(readFileSync(outM, 'utf8'), readFileSync(outS, 'utf8'));
  const outB = path.join(dir, 'multi-bzip2.jsonl');
  await crawlDump({ dump: multi, out: outB, decompressor: 'bzip2' });
  assert.equal(readFileSync(outB, 'utf8'), readFileSync(outM, 'utf8'));

  const docs = readLines(outM);
  assert.equal(docs.length, ARTICLES.length);
  assert.equal(s.docs, ARTICLES.length);
  assert.equal(s.seen, PAGES.length);
  assert.deepEqual(docs.map((d) => d.title), ARTICLES.map((p) => p.title));
  const d0 = docs[0];
  const p0 = ARTICLES[0];
  assert.deepEqual(Object.keys(d0), ['id', 'title', 'text', 'source', 'url']);
  assert.equal(d0.id, `viwiki:${p0.id}`);
  assert.equal(d0.source, 'viwiki');
  assert.equal(d0.url, `https://vi.wikipedia.org/wiki/${encodeURIComponent(p0.title.replace(/ /g, '_')).replace(/%2C/g, ',')}`);
  const n = p0.title.match(/\d+/)?.[0];
  const prov = p0.title.split(', ')[1];
  assert.equal(d0.text, `Xã ${n} là một xã thuộc tỉnh ${prov}, Việt Nam.\n\n== Địa lý ==\nXã có diện tích ${n} km².\n\n== Tham khảo ==`);
  for (const d of docs) assert.ok(!/Thể loại|Tập tin|\{\{|\[\[|<ref|Commune/.test(d.text), d.text);
  assert.ok(!existsSync(CrawlOutput.partPath(outM)) && !existsSync(CrawlOutput.statePath(outM)), 'no part/state left after commit');
});

test('resume after an interruption gives byte-identical output (a torn last line is cut off)', { skip: SKIP }, async () => {
  const dump = path.join(dir, 'resume.xml.bz2');
  writeFileSync(dump, multistream(PAGES));
  const clean = path.join(dir, 'clean.jsonl');
  await crawlDump({ dump, out: clean });

  const out = path.join(dir, 'resumed.jsonl');
  const ac = new AbortController();
  await assert.rejects(crawlDump({ dump, out, signal: ac.signal, onDoc: (n) => { if (n === 57) ac.abort(); } }),
    (e: unknown) => e instanceof UserError && /interrupted: 57 docs kept in .*resumed\.jsonl\.part; rerun with --resume/.test(e.message));
  assert.ok(!existsSync(out), 'no complete-looking output after an interruption');
  const part = CrawlOutput.partPath(out);
  assert.equal(readLines(part).length, 57);
  appendFileSync(part, '{"id":"viwiki:99999","title":"nửa dòng'); // a crash mid-write
  const s = await crawlDump({ dump, out, resume: true });
  assert.equal(s.docs, ARTICLES.length);
  assert.equal(readFileSync(out, 'utf8'), readFileSync(clean, 'utf8'));
  assert.ok(!existsSync(part));

  // resuming against another dump is refused
  const other = path.join(dir, 'other.xml.bz2');
  writeFileSync(other, multistream(PAGES.slice(0, 120)));
  const ac2 = new AbortController();
  await assert.rejects(crawlDump({ dump: dump, out: path.join(dir, 'x.jsonl'), signal: ac2.signal, onDoc: (n) => { if (n === 5) ac2.abort(); } }));
  await assert.rejects(crawlDump({ dump: other, out: path.join(dir, 'x.jsonl'), resume: true }), /the partial crawl was made from/);
});

test('truncated bz2, invalid UTF-8, empty input and non-dumps fail with the file name and leave no output', { skip: SKIP }, async () => {
  const whole = multistream(PAGES);
  const cases: [string, Buffer, RegExp][] = [
    ['truncated.xml.bz2', whole.subarray(0, Math.floor(whole.length * 0.6)), /truncated\.xml\.bz2: (truncated or corrupt bz2 data|XML ends early)/],
    ['badutf8.xml.bz2', bzip2(Buffer.concat([Buffer.from(HEADER + pageXml(ARTICLES[0])), Buffer.from('  <page><title>\xff\xfe'.split('').map((c) => c.charCodeAt(0))), Buffer.from('</title></page></mediawiki>')])), /badutf8\.xml\.bz2: invalid UTF-8 in the XML at byte \d+ \(line \d+\) after page id \d+/],
    ['empty.xml.bz2', Buffer.alloc(0), /empty\.xml\.bz2: empty input/],
    ['nopages.xml.bz2', bzip2(HEADER + FOOTER), /nopages\.xml\.bz2: no <page> elements/],
    ['garbage.xml.bz2', Buffer.from('BZh9 this is not bzip2 at all'), /garbage\.xml\.bz2: truncated or corrupt bz2/],
    ['plain.xml', Buffer.from(HEADER + pageXml(ARTICLES[0]) + '  <page><title>cụt'), /plain\.xml: XML ends early after page id \d+/],
  ];
  for (const decompressor of ['js', 'bzip2'] as const) {
    for (const [name, data, re] of cases) {
      const file = path.join(dir, name);
      writeFileSync(file, data);
      const out = path.join(dir, `${name}.jsonl`);
      await assert.rejects(crawlDump({ dump: file, out, decompressor }),
        (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n'), `${name} (${decompressor})`);
      assert.ok(!existsSync(out), `${name}: no output`);
    }
  }
  await assert.rejects(crawlDump({ dump: path.join(dir, 'nope.bz2'), out: path.join(dir, 'n.jsonl') }), /nope\.bz2: no such file/);
});

test('readDumpPages streams the page id (not revision/contributor ids), ns, redirect flag and last revision', { skip: SKIP }, async () => {
  const file = path.join(dir, 'pages.xml.bz2');
  const history = `  <page>\n    <title>Phở</title>\n    <ns>0</ns>\n    <id>77</id>\n    <revision><id>1</id><contributor><id>5</id></contributor><text>cũ</text></revision>\n    <revision><id>2</id><text>'''Phở''' mới</text></revision>\n  </page>\n`;
  writeFileSync(file, bzip2(HEADER + history + PAGES.slice(0, 12).map(pageXml).join('') + FOOTER));
  const got = [];
  for await (const p of readDumpPages(file)) got.push(p);
  assert.equal(got.length, 13);
  assert.deepEqual(got[0], { id: '77', ns: 0, title: 'Phở', redirect: false, text: "'''Phở''' mới" });
  assert.deepEqual(got.slice(1).map((p) => [p.id, p.ns, p.redirect]), PAGES.slice(0, 12).map((p) => [String(p.id), p.ns, Boolean(p.redirect)]));
});

test('CLI: vilm data crawl wikipedia --dump writes the JSONL; a truncated dump exits non-zero with one line', { skip: SKIP }, async () => {
  const dump = path.join(dir, 'cli.xml.bz2');
  const whole = multistream(PAGES);
  writeFileSync(dump, whole);
  const out = path.join(dir, 'cli.jsonl');
  const r = await runCli(['data', 'crawl', 'wikipedia', '--dump', dump, '--out', out, '--json'], ROOT);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).docs, ARTICLES.length);
  assert.equal(readLines(out).length, ARTICLES.length);

  const bad = path.join(dir, 'cli-truncated.xml.bz2');
  writeFileSync(bad, whole.subarray(0, whole.length - 200));
  const badOut = path.join(dir, 'cli-bad.jsonl');
  const r2 = await runCli(['data', 'crawl', 'wikipedia', '--dump', bad, '--out', badOut], ROOT);
  assert.notEqual(r2.code, 0);
  const errLines = r2.stderr.split('\n').filter((l) => l.startsWith('vilm: '));
  assert.equal(errLines.length, 1, r2.stderr);
  assert.match(errLines[0], /cli-truncated\.xml\.bz2: /);
  assert.ok(!existsSync(badOut));
});
