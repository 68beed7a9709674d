export { cleanText, removeNonLatin, countChars, CLEAN_RULES, DEFAULT_DROP_SECTIONS, type CleanRule, type CleanTextOptions, type CleanTextResult, type RemovedCounts } from './rules.js';
export { cleanCorpus, formatCleanReport, DEFAULT_MIN_CHARS, type CleanCorpusOptions, type CleanReport } from './corpus.js';
export { loadNewsSources, defaultNewsSources, compileSources, DEFAULT_SOURCES_FILE, type NewsSources } from './sources.js';
