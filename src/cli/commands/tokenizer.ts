import { statSync } from 'node:fs';
import { defineCommand, type AnyCommand } from '../define.js';
import { readCorpus } from '../../data/jsonl.js';
import { UserError } from '../../util/errors.js';
import { log } from '../../util/log.js';
import { progress } from '../../util/progress.js';
import { DEFAULT_VOCAB_SIZE, loadTokenizer, saveTokenizer, trainTokenizer } from '../../tokenizer/index.js';

/** `vilm tokenizer train|encode|decode`: the byte-level BPE tokenizer (src/tokenizer). */

const train = defineCommand({
  command: 'train',
  describe: 'train the byte-level BPE tokenizer on JSONL documents and write a Hugging Face tokenizer.json',
  builder: (y) => y
    .option('in', { type: 'string', array: true, demandOption: true, describe: 'cleaned JSONL files ({id,title,text,source} a line)' })
    .option('vocab-size', { type: 'number', default: DEFAULT_VOCAB_SIZE, describe: 'exact vocabulary size, <pad>/<bos>/<eos> included' })
    .option('out', { type: 'string', demandOption: true, describe: 'tokenizer.json to write (atomically)' })
    .option('field', { type: 'string', default: 'text', describe: 'JSON field holding the text' })
    .option('json', { type: 'boolean', default: false, describe: 'print the summary as JSON' })
    .example('$0 tokenizer train --in runs/clean/viwiki.jsonl --vocab-size 10000 --out runs/tokenizer.json', 'the 10k tokenizer')
    .example('$0 tokenizer train --in data/sample/*.jsonl --vocab-size 2000 --out runs/sample-tokenizer.json', 'a small one on the sample corpus'),
  handler: async (a) => {
    const files = a.in;
    const totalBytes = files.reduce((n, f) => { try { return n + statSync(f).size; } catch { throw new UserError(`${f}: cannot open (no such file)`); } }, 0);
    const bar = progress('tokenizer train (reading)', totalBytes, 'bytes');
    let seen = 0, docs = 0;
    async function* texts(): AsyncGenerator<string> {
      for (const f of files) {
        for await (const d of readCorpus(f, a.field)) {
          seen += Buffer.byteLength(d.text, 'utf8');
          bar.update(Math.min(seen, totalBytes), { documents: ++docs });
          yield d.text;
        }
      }
      // read: merges follow (logged as lines of their own)
      bar.update(totalBytes);
      bar.done(`${docs.toLocaleString('en-US')} documents`);
    }
    let t;
    try {
      t = await trainTokenizer(texts(), {
        vocabSize: a['vocab-size'],
        onProgress: (phase, done) => { if (phase === 'merge' && done % 2000 === 0) log.info('tokenizer train: merging', { merges: done, of: a['vocab-size'] - 259 }); },
      });
    } finally {
      bar.abort(); // no line unless reading finished (done above)
    }
    await saveTokenizer(t, a.out);
    const s = t.stats;
    const summary = {
      out: a.out, sha256: t.sha256, vocabSize: t.vocabSize, merges: s.merges, documents: s.texts, characters: s.characters,
      bytes: s.bytes, words: s.words, uniqueWords: s.uniqueWords, tokens: s.tokens,
      bytesPerToken: s.tokens > 0 ? s.bytes / s.tokens : 0, countSeconds: s.countSeconds, mergeSeconds: s.mergeSeconds,
    };
    if (a.json) { process.stdout.write(JSON.stringify(summary, null, 2) + '\n'); return; }
    const n = (x: number) => x.toLocaleString('en-US');
    process.stdout.write([
      `tokenizer: ${a.out} (sha256 ${t.sha256.slice(0, 16)}…)`,
      `vocabulary: ${n(t.vocabSize)} = 3 specials (<pad>=0 <bos>=1 <eos>=2) + 256 bytes + ${n(s.merges)} merges`,
      `corpus: ${n(s.texts)} documents, ${n(s.characters)} characters, ${n(s.bytes)} bytes, ${n(s.words)} words (${n(s.uniqueWords)} distinct)`,
      `tokens: ${n(s.tokens)} (${summary.bytesPerToken.toFixed(2)} bytes/token)`,
      `time: ${s.countSeconds.toFixed(1)} s counting words, ${s.mergeSeconds.toFixed(1)} s merging`,
    ].join('\n') + '\n');
  },
});

const encode = defineCommand({
  command: 'encode',
  describe: 'print the token ids of a text as a JSON array',
  builder: (y) => y
    .option('tokenizer', { type: 'string', demandOption: true, describe: 'tokenizer.json (vilm tokenizer train)' })
    .option('text', { type: 'string', demandOption: true, describe: 'the text to encode' })
    .option('bos-eos', { type: 'boolean', default: false, describe: 'wrap the ids in <bos> … <eos>' })
    .example('$0 tokenizer encode --tokenizer runs/tokenizer.json --text "Xin chào Việt Nam"', 'prints e.g. [1234,567,890]'),
  handler: (a) => {
    const tok = loadTokenizer(a.tokenizer);
    const ids = tok.encode(a.text);
    process.stdout.write(JSON.stringify(a['bos-eos'] ? [tok.bosId, ...ids, tok.eosId] : ids) + '\n');
  },
});

/** The --ids argument: a JSON array of integers (UserError otherwise). */
export function parseIds(arg: string): number[] {
  let ids: unknown;
  try { ids = JSON.parse(arg); } catch { ids = undefined; }
  if (!Array.isArray(ids) || !ids.every((x) => Number.isInteger(x))) throw new UserError(`--ids: expected a JSON array of integer token ids, got ${arg.slice(0, 60)}`);
  return ids as number[];
}

const decode = defineCommand({
  command: 'decode',
  describe: 'print the text of a JSON array of token ids (special tokens dropped)',
  builder: (y) => y
    .option('tokenizer', { type: 'string', demandOption: true, describe: 'tokenizer.json (vilm tokenizer train)' })
    .option('ids', { type: 'string', demandOption: true, describe: 'token ids as a JSON array' })
    .option('json', { type: 'boolean', default: false, describe: 'print the text as a JSON string (shows spaces and newlines)' })
    .example(`$0 tokenizer decode --tokenizer runs/tokenizer.json --ids '[1,1234,567,890,2]'`, 'prints the text'),
  handler: (a) => {
    const ids = parseIds(a.ids);
    const text = loadTokenizer(a.tokenizer).decode(ids);
    process.stdout.write((a.json ? JSON.stringify(text) : text) + '\n');
  },
});

export const tokenizerCommands: AnyCommand[] = [
  {
    command: 'tokenizer <command>',
    describe: 'train the byte-level BPE tokenizer, encode and decode text',
    builder: (y) => y.command(train).command(encode).command(decode).demandCommand(1),
    handler: () => undefined,
  },
];
