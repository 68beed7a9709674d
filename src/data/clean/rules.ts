import { defaultNewsSources, type NewsSources } from './sources.js';

/**
 * The cleaning rules, in the order they run on one document. `cleanText` is pure (no I/O besides
 * loading the default sources file once) and is reused by eval on free text.
 */
export const CLEAN_RULES = [
  'nfc',                 // Unicode NFC (code points saved by composing)
  'whitespace',          // \r, tabs, odd spaces, runs of spaces, spaces at line ends
  'wikiSections',        // "== Tham khảo ==" and the other reference/link sections, heading and body
  'wikiHeadings',        // the "==" markup of the other headings; headings of empty sections
  'newsTags',            // "(Dân trí) -", "TTO -", trailing "Theo VnExpress"
  'nonLatin',            // characters outside Latin script, digits, punctuation, whitespace
  'emptyLines',          // blank lines (paragraphs are separated by one "\n")
  'duplicateParagraphs', // exact repeats of an earlier paragraph of the same document
] as const;
export type CleanRule = typeof CLEAN_RULES[number];

/** Characters (code points) removed by each rule. */
export type RemovedCounts = Record<CleanRule, number>;

export interface CleanTextOptions {
  /** newspaper names (configs/news-sources.yaml by default) */
  sources?: NewsSources;
  /** section titles dropped with their body (lower case); DEFAULT_DROP_SECTIONS by default */
  dropSections?: readonly string[];
}

export interface CleanTextResult {
  text: string;
  removed: RemovedCounts;
}

/** Wikipedia sections that hold references and links, not prose. */
export const DEFAULT_DROP_SECTIONS: readonly string[] = [
  'tham khảo', 'tài liệu tham khảo', 'nguồn tham khảo', 'sách tham khảo', 'thư mục', 'thư mục tham khảo',
  'liên kết ngoài', 'liên kết bên ngoài', 'liên kết', 'chú thích', 'ghi chú', 'chú giải', 'xem thêm',
  'đọc thêm', 'nguồn', 'trích dẫn', 'references', 'external links', 'see also', 'notes', 'further reading',
];

export function emptyCounts(): RemovedCounts {
  return Object.fromEntries(CLEAN_RULES.map((r) => [r, 0])) as RemovedCounts;
}

/** Code points in a string (an emoji is one character, two UTF-16 units). */
export function countChars(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // count a high surrogate followed by a low one once
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Character classes. Written as a lookup table over the BMP rather than a /\p{Script=Latin}/ regex
// because the rule is not exactly "Latin script": Vietnamese needs Latin-1 Supplement, Latin
// Extended-A/B and Latin Extended Additional (U+1EA0–U+1EF9: ạ ả ấ … ỹ), plus ₫, dashes, quotes,
// degree and superscripts, while IPA (U+0250–U+02FF, also Latin script!) must go. A table is
// also ~10× faster than a regex callback on 77 MB.

/** 1 = keep, 0 = remove. Astral code points (emoji, CJK extensions, math alphanumerics) are all removed. */
const KEEP = new Uint8Array(0x10000);
function keepRange(a: number, b: number): void { KEEP.fill(1, a, b + 1); }
keepRange(0x0a, 0x0a);          // \n (other whitespace is normalised to ' ' or '\n' first)
keepRange(0x20, 0x7e);          // ASCII letters, digits, punctuation
keepRange(0xa1, 0xff);          // Latin-1 Supplement: à á â ã è é ê ì í ò ó ô õ ù ú ý, « » ° ± × ² ³ ½ © §
KEEP[0xad] = 0;                 //   except the invisible soft hyphen
keepRange(0x100, 0x24f);        // Latin Extended-A (ă đ ĩ ũ Đ Ă) and -B (ơ ư Ơ Ư)
keepRange(0x1e00, 0x1eff);      // Latin Extended Additional (ạ ả ấ ầ ẩ ẫ ậ … ỹ)
keepRange(0x2010, 0x2027);      // dashes, quotes ‘ ’ “ ”, bullets, ellipsis
keepRange(0x2030, 0x205e);      // ‰ ′ ″ ‹ › ⁄ …
keepRange(0x2070, 0x209f);      // superscripts and subscripts (m², CO₂)
keepRange(0x20a0, 0x20c0);      // currency: ₫ € …
for (const c of [0x2103, 0x2116, 0x2212, 0x2248, 0x2260, 0x2264, 0x2265]) KEEP[c] = 1; // ℃ № − ≈ ≠ ≤ ≥

/** Combining diacritical marks: kept only on a kept Latin letter (after NFC, Vietnamese needs none). */
function isCombiningMark(c: number): boolean {
  return (c >= 0x300 && c <= 0x36f) || (c >= 0x1ab0 && c <= 0x1aff) || (c >= 0x1dc0 && c <= 0x1dff)
    || (c >= 0x20d0 && c <= 0x20ff) || (c >= 0xfe20 && c <= 0xfe2f);
}
function isKeptLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0xc0 && c <= 0x24f && c !== 0xd7 && c !== 0xf7)
    || (c >= 0x1e00 && c <= 0x1eff);
}

/**
 * Remove characters outside the kept set. A combining mark (U+0300–U+036F) stays only when it
 * follows a kept Latin letter (possibly after other kept marks): "ɛ̃" loses both the IPA letter
 * and its tilde, a stray mark after a space goes, "n̄" stays. NFC has already composed every
 * Vietnamese letter, so Vietnamese text keeps all its diacritics.
 */
export function removeNonLatin(s: string): { text: string; removed: number } {
  let out = '';
  let runStart = 0;     // start of the current run of kept code units
  let removed = 0;
  let prevKeptLetter = false; // the last base character was a kept Latin letter
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let keep: boolean;
    let width = 1;
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      keep = false; width = 2; prevKeptLetter = false;
    } else if (isCombiningMark(c)) {
      keep = c <= 0x36f && prevKeptLetter;
    } else {
      keep = KEEP[c] === 1;
      prevKeptLetter = keep && isKeptLetter(c);
    }
    if (!keep) {
      if (i > runStart) out += s.slice(runStart, i);
      removed++;
      i += width - 1;
      runStart = i + 1;
    }
  }
  if (removed === 0) return { text: s, removed: 0 };
  if (runStart < s.length) out += s.slice(runStart);
  return { text: out, removed };
}

// ---------------------------------------------------------------------------------------------

/** Spaces other than ' ' (NBSP, en/em spaces, ideographic space, tabs…) become ' '. */
const ODD_SPACE = /[\t\v\f\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]/g;
/** Invisible format characters (zero-width, direction marks, BOM) are removed with the non-Latin rule. */

function normaliseWhitespace(s: string, counts: RemovedCounts): string {
  const before = s.length;
  // line ends: \r\n and \r → \n; Unicode line/paragraph separators → \n
  let t = s.replace(/\r\n?/g, '\n').replace(/[\u2028\u2029\u0085]/g, '\n').replace(ODD_SPACE, ' ');
  // runs of spaces → one space; no spaces at line start/end
  t = t.replace(/ {2,}/g, ' ').replace(/^ | $/gm, '');
  counts.whitespace += before - t.length; // all removed characters here are BMP: units = code points
  return t;
}

/** A line of a document; kept headings are exempt from the news-tag and duplicate rules. */
interface Line { text: string; heading: boolean }

const HEADING = /^(={1,6})\s*(.*?)\s*\1\s*$/u;

function isDropTitle(title: string, drop: ReadonlySet<string>): boolean {
  const t = title.toLowerCase().replace(/[\s:.]+$/u, '').trim();
  if (drop.has(t)) return true;
  // "Ghi chú và tham khảo", "Chú thích, tham khảo"
  const parts = t.split(/\s*[,&]\s*|\s+(?:và|and)\s+/u).filter((p) => p !== '');
  return parts.length > 1 && parts.every((p) => drop.has(p));
}

/**
 * Wiki leftovers. A heading whose title is in `drop` goes with everything up to the next heading
 * of the same or a higher level; other headings keep their title as a plain line (markup removed)
 * unless their section turns out empty.
 */
function cleanWiki(lines: string[], drop: ReadonlySet<string>, counts: RemovedCounts): Line[] {
  // pass 1: drop reference sections
  const kept: { line: string; level: number }[] = []; // level 0 = not a heading
  let dropLevel = 0; // > 0 while inside a dropped section of this level
  for (const line of lines) {
    const m = HEADING.exec(line);
    const level = m ? m[1].length : 0;
    if (m && dropLevel > 0 && level <= dropLevel) dropLevel = 0;
    if (dropLevel > 0) { counts.wikiSections += countChars(line) + 1; continue; }
    if (m && isDropTitle(m[2], drop)) { dropLevel = level; counts.wikiSections += countChars(line) + 1; continue; }
    kept.push({ line, level });
  }
  // pass 2: a heading is kept (as its bare title) only if some text follows before the next
  // heading of the same or a higher level
  const out: Line[] = [];
  for (let i = 0; i < kept.length; i++) {
    const { line, level } = kept[i];
    if (level === 0) { out.push({ text: line, heading: false }); continue; }
    let hasBody = false;
    for (let j = i + 1; j < kept.length; j++) {
      if (kept[j].level > 0 && kept[j].level <= level) break;
      if (kept[j].level === 0 && kept[j].line.trim() !== '') { hasBody = true; break; }
    }
    const title = HEADING.exec(line)![2];
    if (!hasBody || title === '') { counts.wikiHeadings += countChars(line) + 1; continue; }
    counts.wikiHeadings += countChars(line) - countChars(title);
    out.push({ text: title, heading: true });
  }
  return out;
}

function stripNewsTags(lines: Line[], src: NewsSources, counts: RemovedCounts): Line[] {
  const out = lines.map((line) => {
    if (line.heading) return line;
    const m = src.leadingBracketed.exec(line.text) ?? src.leadingBare.exec(line.text);
    if (!m) return line;
    counts.newsTags += countChars(m[0]);
    return { text: line.text.slice(m[0].length), heading: false };
  });
  // trailing attribution lines ("Theo VnExpress"), skipping blank lines at the end
  let end = out.length;
  for (;;) {
    while (end > 0 && out[end - 1].text.trim() === '') end--;
    if (end === 0 || !src.attribution.test(out[end - 1].text)) break;
    counts.newsTags += countChars(out[end - 1].text) + 1;
    out.splice(end - 1, 1);
    end--;
  }
  return out;
}

const dropSetCache = new WeakMap<readonly string[], ReadonlySet<string>>();
function dropSet(list: readonly string[]): ReadonlySet<string> {
  let s = dropSetCache.get(list);
  if (!s) { s = new Set(list.map((t) => t.normalize('NFC').toLowerCase())); dropSetCache.set(list, s); }
  return s;
}

/**
 * Clean one document. Returns the cleaned text (paragraphs separated by a single "\n", no
 * leading/trailing whitespace) and the number of characters each rule removed.
 */
export function cleanText(text: string, opts: CleanTextOptions = {}): CleanTextResult {
  const counts = emptyCounts();
  const sources = opts.sources ?? defaultNewsSources();
  const drop = dropSet(opts.dropSections ?? DEFAULT_DROP_SECTIONS);

  // 1. NFC: "Việt" typed as V-i-e-̣-̂-t (decomposed) becomes the same code points as precomposed input
  const nfc = text.normalize('NFC');
  counts.nfc = countChars(text) - countChars(nfc);

  // 2. whitespace and line ends (so every later rule sees "\n"-separated lines)
  const raw = normaliseWhitespace(nfc, counts).split('\n');

  // 3. wiki sections and headings, 4. newspaper tags
  let lines = stripNewsTags(cleanWiki(raw, drop, counts), sources, counts);

  // 5. characters outside Latin/digits/punctuation/whitespace; removal can leave double or
  //    edge spaces ("xin chào 😀 bạn"), which the whitespace rule tidies
  lines = lines.map((line) => {
    const r = removeNonLatin(line.text);
    counts.nonLatin += r.removed;
    if (r.removed === 0) return line;
    // removal can also leave empty brackets ("Hà Nội (河内)") and a space before punctuation
    // ("viết là 河内.") — tidied only on lines where something was removed
    const unbracketed = r.text.replace(/\(\s*\)|\[\s*\]/g, '');
    counts.nonLatin += r.text.length - unbracketed.length;
    const tidy = unbracketed.replace(/ {2,}/g, ' ').replace(/ +([.,;:!?…)\]])/g, '$1').trim();
    counts.whitespace += unbracketed.length - tidy.length;
    return { text: tidy, heading: line.heading };
  });

  // 6. empty lines, 7. exact duplicate paragraphs (headings such as "Tháng 1" may repeat)
  const out: string[] = [];
  const seen = new Set<string>();
  for (const { text: line, heading } of lines) {
    if (line === '') { counts.emptyLines += 1; continue; }
    if (!heading && seen.has(line)) { counts.duplicateParagraphs += countChars(line) + 1; continue; }
    if (!heading) seen.add(line);
    out.push(line);
  }
  // every dropped line above also dropped one "\n"; the last kept line has none
  const result = out.join('\n');
  if (out.length === 0) {
    // n lines have n-1 separators, so with every line dropped one "\n" was counted twice:
    // take it back from the last line-dropping rule that fired
    const lineRules: CleanRule[] = ['duplicateParagraphs', 'emptyLines', 'newsTags', 'wikiHeadings', 'wikiSections'];
    const r = lineRules.find((x) => counts[x] > 0);
    if (r) counts[r] -= 1;
  }
  return { text: result, removed: counts };
}
