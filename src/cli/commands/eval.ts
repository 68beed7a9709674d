/**
 * `vilm eval --checkpoint RUN --in FILE.jsonl [--json]` and `vilm eval --checkpoint RUN --ids '[…]'`.
 * The scoring rules (windows, specials, bits per byte) are documented in src/train/eval.ts.
 */
import { createReadStream } from 'node:fs';
import { defineCommand } from '../define.js';
import { cleanText } from '../../data/clean/index.js';
import { readCorpus } from '../../data/jsonl.js';
import { loadCheckpoint } from '../../train/checkpoint.js';
import { evaluateDocuments, evaluateIds, parseIds } from '../../train/eval.js';
import { openModel } from '../../train/open-model.js';
import { UserError } from '../../util/errors.js';
import { log } from '../../util/log.js';
import { progress } from '../../util/progress.js';
import { backendOption } from '../run-options.js';

async function* cleanedTexts(file: string, onDoc: () => void): AsyncGenerator<string> {
  for await (const doc of readCorpus(file)) {
    onDoc();
    yield cleanText(doc.text).text;
  }
}

/** Non-blank lines of a file (streamed), i.e. the JSONL documents; a one-line error if unreadable. */
async function countLines(file: string): Promise<number> {
  let n = 0, blank = true;
  try {
    for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
      for (let i = 0; i < chunk.length; i++) {
        const c = chunk[i];
        if (c === 10) { if (!blank) n++; blank = true; } else if (c !== 32 && c !== 13 && c !== 9) blank = false;
      }
    }
  } catch (e) {
    throw new UserError(`${file}: cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return blank ? n : n + 1;
}

export const evalCommand = defineCommand({
  command: 'eval',
  describe: 'score text with a checkpoint: {loss, ppl, bitsPerByte, tokens, bytes}',
  builder: (y) => y
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'run directory or .vilm checkpoint file' })
    .option('in', { type: 'string', describe: 'JSONL documents ({text,…} a line); cleaned like `vilm data clean`' })
    .option('ids', { type: 'string', describe: "score exactly this JSON id sequence, e.g. '[12,7,301]' (no cleaning, no specials)" })
    .option('json', { type: 'boolean', default: false, describe: 'print the result as one JSON object' })
    .option('backend', backendOption)
    .option('tokenizer', { type: 'string', describe: 'tokenizer.json to use instead of the one in the checkpoint' })
    .conflicts('in', 'ids')
    .example('$0 eval --checkpoint runs/tiny --in test.jsonl --json', '')
    .example("$0 eval --checkpoint runs/tiny --ids '[1,523,77,9]'", 'mean next-token loss of that sequence'),
  handler: async (a) => {
    if (a.in === undefined && a.ids === undefined) throw new UserError('eval: give --in FILE.jsonl or --ids JSON');
    const ck = loadCheckpoint(a.checkpoint);
    // check the inputs before starting the backend
    const ids = a.ids !== undefined ? parseIds(a.ids, ck.config.model.vocab_size, ck.config.model.max_len) : undefined;
    // documents in the file (non-empty lines), for the progress bar
    const lines = a.in !== undefined ? await countLines(a.in) : 0;
    const { model, tokenizer } = await openModel(ck, a.checkpoint, a.backend, a.tokenizer);
    try {
      if (ids !== undefined) {
        const r = evaluateIds(model, ck.weights, ids);
        const out = { loss: r.loss, ppl: r.ppl, bitsPerByte: null, tokens: r.tokens, bytes: null };
        print(out, a.json);
        return;
      }
      const file = a.in!;
      const bar = progress('eval', lines, 'documents');
      let docs = 0;
      const r = await evaluateDocuments(model, ck.weights, tokenizer, cleanedTexts(file, () => { bar.update(++docs); }), {
        maxBatchTokens: ck.config.train.max_micro_batch_tokens,
      });
      bar.stop(`${docs} documents, ${r.tokens} tokens`);
      log.info('eval', { checkpoint: a.checkpoint, step: ck.step, docs, tokens: r.tokens, bytes: r.bytes });
      print(r, a.json);
    } finally {
      model.dispose();
    }
  },
});

function print(r: { loss: number; ppl: number; bitsPerByte: number | null; tokens: number; bytes: number | null }, json: boolean): void {
  if (json) { process.stdout.write(JSON.stringify(r) + '\n'); return; }
  process.stdout.write([
    `loss ${r.loss.toFixed(4)}`,
    `ppl ${r.ppl.toFixed(2)}`,
    `bits/byte ${r.bitsPerByte === null ? '-' : r.bitsPerByte.toFixed(4)}`,
    `tokens ${r.tokens}`,
    `bytes ${r.bytes ?? '-'}`,
  ].join('\n') + '\n');
}
