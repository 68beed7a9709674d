import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCorpus } from '../src/data/jsonl.ts';
import { cleanCorpus, cleanText, DEFAULT_MIN_CHARS } from '../src/data/clean/index.ts';
import type { CorpusDoc } from '../src/data/types.ts';

// The sample corpus shipped in data/sample/ (see data/sample/README.md): original text, JSONL,
// NFC, ≤ 300 KB, with a few deliberately dirty documents for the cleaner.

const DIR = 'data/sample';
const FILES = readdirSync(DIR).filter((f) => f.endsWith('.jsonl')).sort().map((f) => join(DIR, f));
const FIELDS = ['id', 'title', 'text', 'source', 'url'] as const;

/** Every document of every file, parsed with JSON.parse (no project code involved). */
function loadRaw(): (CorpusDoc & { file: string; line: number })[] {
  const docs: (CorpusDoc & { file: string; line: number })[] = [];
  for (const file of FILES) {
    const lines = readFileSync(file, 'utf8').split('\n');
    assert.equal(lines.at(-1), '', `${file}: must end with a newline`);
    lines.slice(0, -1).forEach((l, i) => {
      let v: unknown;
      assert.doesNotThrow(() => { v = JSON.parse(l); }, `${file}:${i + 1} is not JSON`);
      assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), `${file}:${i + 1}: not an object`);
      const o = v as Record<string, unknown>;
      for (const k of FIELDS) assert.ok(typeof o[k] === 'string' && o[k] !== '', `${file}:${i + 1}: field ${k} missing or empty`);
      docs.push({ ...(o as unknown as CorpusDoc), file, line: i + 1 });
    });
  }
  return docs;
}

// The dirty parts, as the README lists them.
const NEWS_TAG = /^(?:\(Dân trí\) - |TTO - |\(NLĐO\)- |VOV\.VN - |Hà Nội \(TTXVN\) - )/u;
const ATTRIBUTION = /^Theo VnExpress$/mu;
const EMOJI = /\p{Extended_Pictographic}/u;
const HAN = /\p{Script=Han}/u;
const IPA = /[\u0250-\u02ff]/u; // IPA Extensions + Spacing Modifier Letters (ʔ ɓ ː ˧ ˥)
const WIKI_SECTION = /^== (?:Tham khảo|Liên kết ngoài) ==$/mu;

function hasDuplicateParagraph(text: string): boolean {
  const paras = text.split('\n').filter((p) => p !== '');
  return new Set(paras).size !== paras.length;
}

/** True when nothing in the document is meant for the cleaner. */
function isClean(text: string): boolean {
  return !text.split('\n').some((p) => NEWS_TAG.test(p)) && !ATTRIBUTION.test(text) && !EMOJI.test(text)
    && !HAN.test(text) && !IPA.test(text) && !/^=/mu.test(text) && !/\n\n/u.test(text)
    && !hasDuplicateParagraph(text) && [...text].length >= DEFAULT_MIN_CHARS;
}

/** Vietnamese letters with diacritics (precomposed after NFC). */
const VI_LETTERS = /[àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ]/giu;

test('every line parses with all fields, ids are unique, text is NFC, total size ≤ 300 KB', async () => {
  assert.ok(FILES.length >= 4, `expected several files in ${DIR}, found ${FILES.length}`);
  const docs = loadRaw();
  const bytes = FILES.reduce((n, f) => n + statSync(f).size, 0);
  assert.ok(bytes <= 300 * 1024, `sample corpus is ${bytes} bytes, over 300 KB`);
  assert.ok(bytes >= 150 * 1024, `sample corpus is ${bytes} bytes, under the 150 KB target`);
  // enough documents that a document-level 8/1/1 split has something in every split
  assert.ok(docs.length >= 80, `only ${docs.length} documents`);
  const ids = new Set(docs.map((d) => d.id));
  assert.equal(ids.size, docs.length, 'duplicate document ids');
  for (const d of docs) {
    const where = `${d.file}:${d.line} (${d.id})`;
    assert.equal(d.text, d.text.normalize('NFC'), `${where}: text is not NFC`);
    assert.equal(d.title, d.title.normalize('NFC'), `${where}: title is not NFC`);
    assert.equal(d.source, 'vilm-sample', `${where}: source`);
    assert.equal(d.url, `https://vilm.example/sample/${d.id}`, `${where}: url`);
    assert.ok(!/\r|\t|\u00a0/u.test(d.text), `${where}: \\r, tab or NBSP in text`);
  }
  // the project's own reader agrees
  let n = 0;
  for (const f of FILES) for await (const d of readCorpus(f)) { assert.ok(ids.has(d.id)); n++; }
  assert.equal(n, docs.length);
});

test('the sample carries each kind of dirt the cleaner removes, in a minority of documents', () => {
  const docs = loadRaw();
  const all = docs.map((d) => d.text).join('\n');
  for (const tag of ['(Dân trí) - ', 'TTO - ', '(NLĐO)- ', 'VOV.VN - ', 'Hà Nội (TTXVN) - ']) {
    assert.ok(docs.some((d) => d.text.split('\n').some((p) => p.startsWith(tag))), `no paragraph starts with "${tag}"`);
  }
  assert.ok(docs.some((d) => /\nTheo VnExpress$/u.test(d.text)), 'no trailing "Theo VnExpress"');
  assert.match(all, EMOJI);
  assert.match(all, HAN);
  assert.match(all, IPA);
  assert.match(all, /^== Tham khảo ==$/mu);
  assert.match(all, /^== Liên kết ngoài ==$/mu);
  assert.ok(docs.some((d) => hasDuplicateParagraph(d.text)), 'no duplicate paragraph');
  assert.ok(docs.some((d) => [...d.text].length < DEFAULT_MIN_CHARS), 'no too-short document');
  const dirty = docs.filter((d) => !isClean(d.text)).length;
  assert.ok(dirty >= 10 && dirty < docs.length / 3, `${dirty} of ${docs.length} documents are dirty`);
});

test('cleanCorpus removes tags, symbols, reference sections, duplicates and short docs, and keeps the diacritics', async () => {
  const docs = loadRaw();
  const dir = mkdtempSync(join(tmpdir(), 'vilm-sample-'));
  try {
    const out = join(dir, 'clean.jsonl');
    const report = await cleanCorpus(FILES, out);
    assert.equal(report.docsIn, docs.length);
    for (const rule of ['newsTags', 'nonLatin', 'wikiSections', 'duplicateParagraphs', 'emptyLines'] as const) {
      assert.ok(report.removed[rule] > 0, `rule ${rule} removed nothing`);
    }
    const short = docs.filter((d) => [...cleanText(d.text).text].length < DEFAULT_MIN_CHARS).length;
    assert.ok(short >= 1);
    assert.equal(report.droppedShort, short);
    assert.equal(report.docsOut, docs.length - short);

    const cleaned: CorpusDoc[] = [];
    for await (const d of readCorpus(out)) cleaned.push(d);
    assert.equal(cleaned.length, report.docsOut);
    const raw = new Map(docs.map((d) => [d.id, d]));
    for (const c of cleaned) {
      const where = `cleaned ${c.id}`;
      const paras = c.text.split('\n');
      assert.ok(!paras.some((p) => NEWS_TAG.test(p)), `${where}: news tag left`);
      assert.ok(!ATTRIBUTION.test(c.text), `${where}: "Theo VnExpress" left`);
      assert.doesNotMatch(c.text, EMOJI, `${where}: emoji left`);
      assert.doesNotMatch(c.text, HAN, `${where}: CJK left`);
      assert.doesNotMatch(c.text, IPA, `${where}: IPA left`);
      assert.doesNotMatch(c.text, /^=|Tham khảo ==|Liên kết ngoài/mu, `${where}: wiki section left`);
      assert.ok(!paras.includes(''), `${where}: empty line left`);
      assert.ok(!hasDuplicateParagraph(c.text), `${where}: duplicate paragraph left`);
      assert.equal(c.text, c.text.normalize('NFC'));

      const r = raw.get(c.id)!;
      if (isClean(r.text)) {
        // text with nothing to clean is left exactly alone
        assert.equal(c.text, r.text, `${where}: clean document was changed`);
        continue;
      }
      // dirty documents keep their prose: each tagged paragraph survives without its tag, and
      // every Vietnamese letter of the kept paragraphs is still there
      for (const p of r.text.split('\n')) {
        const m = NEWS_TAG.exec(p);
        if (m && !EMOJI.test(p)) assert.ok(paras.includes(p.slice(m[0].length)), `${where}: lost "${p.slice(0, 40)}…"`);
      }
      const body = r.text.split(/\n\n== /u)[0]; // before the dropped reference sections
      const keptLetters = (body.replace(/^(?:\(Dân trí\) - |TTO - |\(NLĐO\)- |VOV\.VN - |Hà Nội \(TTXVN\) - )/gmu, '')
        .split('\n').filter((p, i, a) => a.indexOf(p) === i && !/^Theo VnExpress$/u.test(p)).join('\n').match(VI_LETTERS) ?? []).length;
      assert.equal((c.text.match(VI_LETTERS) ?? []).length, keptLetters, `${where}: Vietnamese letters lost`);
    }
    // the cleaned corpus still uses the whole Vietnamese alphabet
    const viIn = new Set(docs.flatMap((d) => d.text.toLowerCase().match(VI_LETTERS) ?? []));
    const viOut = new Set(cleaned.flatMap((d) => d.text.toLowerCase().match(VI_LETTERS) ?? []));
    assert.deepEqual([...viOut].sort(), [...viIn].sort());
    assert.ok(viOut.size >= 60, `only ${viOut.size} distinct Vietnamese letters`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
