/**
 * Wikitext → plain text for the Vietnamese Wikipedia.
 *
 * Written here rather than taken from a package: wtf_wikipedia (the usual JS choice) only knows the
 * English namespace names, so `[[Tập tin:…]]`, `[[Hình:…]]` and `[[Thể loại:…]]` leak into the text
 * as captions and category names. This converter is a small set of ordered passes:
 *
 *   1. redirect pages (`#REDIRECT`, `#đổi`) → ''            7. wiki links `[[…]]` (nested)
 *   2. comments `<!-- … -->`                                 8. external links `[url text]`
 *   3. references `<ref>…</ref>`, `<ref/>`, `<references>`  9. magic words, bold/italic quotes
 *   4. tags whose content is not prose (gallery, math, …)   10. remaining HTML tags, entities
 *   5. templates / parser functions `{{…}}`, `{{{…}}}`     11. per line: headings, lists, spacing
 *   6. tables `{| … |}` (nested)
 *
 * Templates go before links (a template may hold links and `]]`), and before tables (templates such
 * as `{{!}}` build table syntax). Section headings stay as `== … ==` lines (level kept) so the
 * cleaner can drop the reference sections that follow them.
 */

/** Namespaces whose links are not prose: files, images, categories, templates, media. Lower case. */
const HIDDEN_NAMESPACES = new Set([
  'tập tin', 'hình', 'hình ảnh', 'file', 'image', 'media', 'phương tiện',
  'thể loại', 'category',
  'bản mẫu', 'template',
]);

/** Interwiki prefixes that look like language codes but are visible links to sister projects. */
const NOT_LANGUAGES = new Set(['w', 'm', 'b', 'n', 'q', 's', 'v', 'mw', 'wikt', 'wikipedia', 'wp', 'mediawiki']);

/**
 * Language-code-shaped prefix (`en`, `fr`, `zh-yue`, `zh-min-nan`, `simple`, `be-tarask`): a link
 * `[[en:Hanoi]]` is an interlanguage link shown in the sidebar, not in the text.
 */
function isLanguagePrefix(prefix: string): boolean {
  if (NOT_LANGUAGES.has(prefix)) return false;
  return prefix === 'simple' || /^[a-z]{2,3}(-[a-z]{2,8}){0,2}$/.test(prefix);
}

/** Tags removed together with their content: nothing in them is running prose. */
const DROP_WITH_CONTENT = ['gallery', 'math', 'chem', 'ce', 'syntaxhighlight', 'source', 'score', 'timeline',
  'imagemap', 'mapframe', 'maplink', 'graph', 'templatedata', 'templatestyles', 'hiero', 'inputbox', 'categorytree'];

// one pass for all of them: `<math>…</math>`, `<gallery mode="x">…</gallery>`, `<templatestyles src="…"/>`
const DROP_RE = new RegExp(`<(${DROP_WITH_CONTENT.join('|')})\\b[^>]*?(?:\\/\\s*>|>[\\s\\S]*?<\\/\\1\\s*>)`, 'gi');

const REDIRECT_RE = /^\s*#\s*(redirect|đổi|chuyển|đổi hướng)\b/iu;

/** True for a redirect page's wikitext (`#REDIRECT [[…]]`, `#đổi [[…]]`). */
export function isRedirect(wikitext: string): boolean {
  return REDIRECT_RE.test(wikitext.slice(0, 40).normalize('NFC'));
}

/** Convert one page of wikitext to plain text with `== heading ==` lines. Redirects give ''. */
export function wikitextToPlain(wikitext: string): string {
  let s = wikitext.replace(/\r\n?/g, '\n');
  if (isRedirect(s)) return '';
  s = s.replace(/<!--[\s\S]*?(-->|$)/g, '');
  s = removeReferences(s);
  s = s.replace(DROP_RE, '');
  s = removeTemplates(s);
  s = removeTables(s);
  s = replaceLinks(s);
  s = replaceExternalLinks(s);
  s = s.replace(/__[A-ZĐ_]+__/g, ''); // __TOC__, __NOTOC__, __KHÔNGMỤCLỤC__ …
  s = removeQuotes(s);
  s = s.replace(/<br\s*\/?>/gi, '\n');
  s = s.replace(/<\/?[a-zA-Z][a-zA-Z0-9]*(\s[^<>]*)?\/?>/g, ''); // <span …>, </small>, <nowiki/>, …
  s = decodeEntities(s);
  return tidyLines(s);
}

/** `<ref name="x" />`, `<ref …>…</ref>`, `<references />`, `<references>…</references>`. */
function removeReferences(s: string): string {
  return s
    .replace(/<ref\b[^>]*\/\s*>/gi, '')
    .replace(/<ref\b[^>]*>[\s\S]*?<\/ref\s*>/gi, '')
    .replace(/<references\b[^>]*\/\s*>/gi, '')
    .replace(/<references\b[^>]*>[\s\S]*?<\/references\s*>/gi, '');
}

/**
 * Remove `{{…}}` templates and parser functions and `{{{…}}}` parameters, nested, by a scan with a
 * stack of open brace kinds (2 or 3). Unbalanced openers are kept literally (so one stray `{{`
 * does not eat the rest of the article) and the scan continues after them.
 */
export function removeTemplates(s: string): string {
  let out = '';
  let i = 0;
  while (i < s.length) {
    const open = s.indexOf('{{', i);
    if (open < 0) { out += s.slice(i); break; }
    out += s.slice(i, open);
    const end = matchBraces(s, open);
    if (end < 0) { out += '{{'; i = open + 2; continue; } // unbalanced: keep it, go on
    i = end;
  }
  return out;
}

/** Index just past the `}}`/`}}}` closing the opener at `start`, or -1 if it never closes. */
function matchBraces(s: string, start: number): number {
  const stack: number[] = [];
  let i = start;
  while (i < s.length) {
    if (s.startsWith('{{{', i) && !s.startsWith('{{{{', i)) { stack.push(3); i += 3; continue; }
    if (s.startsWith('{{', i)) { stack.push(2); i += 2; continue; }
    if (s.startsWith('}}', i)) {
      const top = stack[stack.length - 1];
      if (top === 3 && s.startsWith('}}}', i)) { stack.pop(); i += 3; } else { stack.pop(); i += 2; }
      if (stack.length === 0) return i;
      continue;
    }
    i++;
  }
  return -1;
}

/**
 * Remove tables: from a line starting with `{|` to the line starting with `|}` that closes it
 * (tables nest). An unclosed table runs to the end of the page, as MediaWiki renders it.
 */
export function removeTables(s: string): string {
  const lines = s.split('\n');
  const kept: string[] = [];
  let depth = 0;
  for (const line of lines) {
    const t = line.trimStart().replace(/^[:*#]+\s*/, ''); // tables may be indented: `:{|`
    if (t.startsWith('{|')) { depth++; continue; }
    if (depth > 0) {
      if (t.startsWith('|}')) depth--;
      continue;
    }
    kept.push(line);
  }
  return kept.join('\n');
}

/**
 * `[[target|label]]` → label, `[[target]]` → target, `[[target|]]` (pipe trick) → target without
 * its "(…)" or "Namespace:"; files, categories and templates (any namespace in HIDDEN_NAMESPACES) and
 * interlanguage links vanish. Links nest inside file captions, so this is a bracket scan too.
 */
export function replaceLinks(s: string): string {
  let out = '';
  let i = 0;
  while (i < s.length) {
    const open = s.indexOf('[[', i);
    if (open < 0) { out += s.slice(i); break; }
    out += s.slice(i, open);
    if (s[open + 2] === '[') { out += '['; i = open + 1; continue; } // `[[[x]]` is '[' + link x
    const close = matchLink(s, open);
    if (close < 0) { out += '[['; i = open + 2; continue; }
    out += renderLink(s.slice(open + 2, close - 2));
    i = close;
  }
  return out;
}

function matchLink(s: string, start: number): number {
  let depth = 0;
  let single = 0; // open `[url text` external links inside a caption: their `]` is not ours
  let i = start;
  while (i < s.length) {
    if (s.startsWith('[[', i)) { depth++; i += 2; continue; }
    if (s[i] === '[' && /^\[(https?:|ftp:|mailto:|\/\/)/i.test(s.slice(i, i + 10))) { single++; i++; continue; }
    if (s[i] === ']' && single > 0) { single--; i++; continue; }
    if (s.startsWith(']]', i)) { depth--; i += 2; if (depth === 0) return i; continue; }
    if (s[i] === '\n' && s[i + 1] === '\n' && depth === 1) return -1; // a link never spans a paragraph
    i++;
  }
  return -1;
}

function renderLink(inner: string): string {
  const pipe = inner.indexOf('|');
  const target = (pipe < 0 ? inner : inner.slice(0, pipe)).trim();
  const leadingColon = target.startsWith(':'); // [[:Thể loại:X]] is a visible link to the category page
  const t = leadingColon ? target.slice(1).trim() : target;
  const colon = t.indexOf(':');
  if (!leadingColon && colon > 0) {
    const prefix = t.slice(0, colon).trim().toLowerCase().normalize('NFC');
    if (HIDDEN_NAMESPACES.has(prefix)) return '';
    // `[[en:Hanoi]]` is interlanguage; `[[AI: Trí tuệ nhân tạo]]` (space after the colon) is a title
    if (isLanguagePrefix(prefix) && t[colon + 1] !== ' ') return '';
  }
  if (pipe >= 0) {
    const label = inner.slice(pipe + 1);
    if (label.trim() !== '') return replaceLinks(label); // labels may hold links (rare) — render them
    // pipe trick: [[Hà Nội (định hướng)|]] → Hà Nội; [[Wikipedia:Giới thiệu|]] → Giới thiệu
    return t.replace(/^[^:]*:/, '').replace(/\s*\([^)]*\)\s*$/, '').trim();
  }
  return t.replace(/#.*$/, (m) => (m.length === t.length ? m.slice(1) : '')); // [[A#B]] → A, [[#B]] → B
}

/** `[http://x.vn Báo X]` → `Báo X`; a bare bracketed URL `[http://x.vn]` shows nothing useful → ''. */
function replaceExternalLinks(s: string): string {
  return s.replace(/\[(?:https?:|ftp:|mailto:|\/\/)[^\s\]]*(?:\s+([^\]\n]*))?\]/gi, (_m, label: string | undefined) => (label ?? '').trim());
}

/** `'''''x'''''`, `'''x'''`, `''x''` → x; four quotes are an apostrophe then bold (MediaWiki's rule). */
function removeQuotes(s: string): string {
  return s.replace(/'{2,}/g, (m) => {
    if (m.length === 4) return "'";
    if (m.length > 5) return "'".repeat(m.length - 5);
    return '';
  });
}

const NAMED_ENTITIES: Record<string, string> = {
  nbsp: ' ', amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", ndash: '–', mdash: '—', minus: '−',
  times: '×', hellip: '…', laquo: '«', raquo: '»', deg: '°', thinsp: ' ', ensp: ' ', emsp: ' ',
  zwj: '', zwnj: '', shy: '', lrm: '', rlm: '', middot: '·', bull: '•', copy: '©', reg: '®',
};

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, name: string) => {
    if (name[0] === '#') {
      const code = name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : m;
    }
    const v = NAMED_ENTITIES[name.toLowerCase()];
    return v ?? m;
  });
}

/**
 * Per line: headings normalised to `== Title ==` (level kept), list/indent markers (`*`, `#`, `:`,
 * `;`) dropped, rules (`----`) and table/template debris removed, empty brackets left behind by
 * removed templates cleaned, runs of spaces collapsed; at most one empty line between paragraphs.
 */
function tidyLines(s: string): string {
  const out: string[] = [];
  for (const raw of s.split('\n')) {
    // after this, runs of blanks are single spaces, so the patterns below can use ' ' instead of \s*
    let line = raw.replace(/[ \t\u00a0]+/g, ' ').trim();
    const h = line.charCodeAt(0) === 61 /* = */ ? /^(={1,6}) ?(.*?) ?\1$/.exec(line) : null;
    if (h) {
      if (h[2] === '') continue;
      line = `${h[1]} ${h[2]} ${h[1]}`;
    } else {
      line = line.replace(/^([*#:;]\s*)+/, ''); // also "; : …" left when a term was a template
      if (/^-{4,}$/.test(line)) continue;
      if (/^[|!}{]/.test(line)) continue; // table/template debris from unbalanced markup
      // leftovers of removed templates: "x , y" → "x, y"; "(a; )" → "(a)"; "( ; b)" → "(b)"; "( )" → ""
      line = line.replace(/ ([,.;:])/g, '$1');
      if (line.includes('(')) {
        line = line
          .replace(/[,;] ?\)/g, ')')
          .replace(/\( ?[,;] ?/g, '(')
          .replace(/ ?\( ?:? ?\)/g, '')
          .trim();
      }
    }
    if (line === '') {
      if (out.length > 0 && out[out.length - 1] !== '') out.push('');
      continue;
    }
    out.push(line);
  }
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  return out.join('\n');
}
