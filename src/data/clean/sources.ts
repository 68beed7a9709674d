import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { UserError } from '../../util/errors.js';

/** The newspaper names of configs/news-sources.yaml, compiled into the regexes the cleaner uses. */
export interface NewsSources {
  /** names written in parentheses: "(Dân trí) -", "Hà Nội (TTXVN) -" */
  names: string[];
  /** tags written bare at a line start: "TTO -", "VOV.VN -" */
  bareTags: string[];
  /** a leading "(NAME) -" tag, optionally after a place/date, at the start of a line (removed) */
  leadingBracketed: RegExp;
  /** a leading "TAG -" at the start of a line (removed) */
  leadingBare: RegExp;
  /** a whole line that only attributes the article to a source ("Theo VnExpress") */
  attribution: RegExp;
}

/** The file shipped with vilm; `cleanText` uses it when no sources are given. */
export const DEFAULT_SOURCES_FILE = fileURLToPath(new URL('../../../configs/news-sources.yaml', import.meta.url));

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

/** Longest first, so "VOV.VN" wins over "VOV" inside an alternation. */
function alternation(list: string[]): string {
  return [...new Set(list.map((s) => s.normalize('NFC')))]
    .sort((a, b) => b.length - a.length || (a < b ? -1 : 1))
    .map(escapeRe)
    .join('|');
}

const DASH = '[-–—]';

export function compileSources(names: string[], bareTags: string[]): NewsSources {
  if (names.length === 0 && bareTags.length === 0) {
    // nothing to match: regexes that never match
    return { names, bareTags, leadingBracketed: /(?!)/u, leadingBare: /(?!)/u, attribution: /(?!)/u };
  }
  const named = alternation(names.length ? names : bareTags);
  const bare = alternation(bareTags.length ? bareTags : names);
  const all = alternation([...names, ...bareTags]);
  // An optional place and date before the bracketed name: "Hà Nội", "TP.HCM, 12/3", "Thừa Thiên Huế" —
  // at most 3 words so that prose like "Đài Tiếng nói Việt Nam (VOV) – đài phát thanh…" is left alone.
  const place = String.raw`(?:[\p{Lu}\d][\p{L}\d.]*(?: [\p{L}\d.]+){0,2}(?:\s*,\s*[\d/.]+)?\s*)?`;
  const bracketed = String.raw`${place}\(\s*(?:${named})\s*\)\s*${DASH}+\s*`;
  // Bracketed names match case-insensitively ("(Dân Trí) -"); bare tags exactly ("TTO -", not "Tto -").
  const leadingBracketed = new RegExp(String.raw`^${bracketed}`, 'iu');
  const leadingBare = new RegExp(String.raw`^(?:${bare})\s*${DASH}+\s*`, 'u');
  // Attribution line: "Theo VnExpress", "(Theo Dân trí)", "Nguồn: Tuổi Trẻ", "Theo VnExpress, Reuters",
  // "Theo báo Thanh Niên". What follows a comma must start with a capital or a digit (a source or
  // a date). Only used on the last lines of a document (see rules.ts).
  const attribution = new RegExp(
    String.raw`^[([]?\s*(?:[Tt]heo|THEO|[Nn]guồn|NGUỒN)\s*:?\s*(?:[Bb]áo\s+|[Tt]rang\s+|[Tt]ạp chí\s+)?(?:${all})(?:\s*[,/;–—-]\s*[\p{Lu}\d][\p{L}\d .,/+&]{0,40})?\s*[)\]]?\s*\.?$`,
    'u', // case-sensitive: \p{Lu} would match lower case under the i flag
  );
  return { names, bareTags, leadingBracketed, leadingBare, attribution };
}

function stringList(file: string, doc: Record<string, unknown>, field: string): string[] {
  const v = doc[field];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x.trim() === '')) {
    throw new UserError(`${file}: field '${field}' must be a list of non-empty strings`);
  }
  return (v as string[]).map((s) => s.trim());
}

/** Load a news-sources YAML file (`names:` and `bare_tags:` lists). */
export function loadNewsSources(file: string): NewsSources {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`${file}: cannot read news sources (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(raw);
  } catch (e) {
    throw new UserError(`${file}: invalid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new UserError(`${file}: expected a mapping with 'names' and 'bare_tags' lists`);
  }
  const d = doc as Record<string, unknown>;
  for (const k of Object.keys(d)) {
    if (k !== 'names' && k !== 'bare_tags') throw new UserError(`${file}: unknown field '${k}' (expected names, bare_tags)`);
  }
  return compileSources(stringList(file, d, 'names'), stringList(file, d, 'bare_tags'));
}

let defaultSources: NewsSources | undefined;
export function defaultNewsSources(): NewsSources {
  defaultSources ??= loadNewsSources(DEFAULT_SOURCES_FILE);
  return defaultSources;
}
