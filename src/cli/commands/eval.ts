/**
 * `vilm eval [--checkpoint RUN|DIR] --in FILE.jsonl [--workers N] [--json]` and `vilm eval --checkpoint RUN --ids '[…]'`.
 * The scoring rules (windows, specials, bits per byte) are documented in src/train/eval.ts.
 *
 * `--workers N`: the windows of `--in` are scored on N worker threads (src/train/parallel-eval.ts),
 * each window one forward pass; the printed numbers are the same for any N. Default
 * min(available CPUs, MAX_DEFAULT_WORKERS): more threads than cores only add wasm heaps, and
 * each thread costs its start-up (tsx, tfjs, the replica) — `--workers 1` scores in the main thread
 * (no thread start-up; the quickest for a small file).
 */
import { createReadStream } from 'node:fs';
import { availableParallelism } from 'node:os';
import { defineCommand } from '../define.js';
import { cleanText } from '../../data/clean/index.js';
import { readCorpus } from '../../data/jsonl.js';
import { UserError } from '../../util/errors.js';
import { log } from '../../util/log.js';
import { progress } from '../../util/progress.js';
import { backendOption } from '../run-options.js';
import type { WindowScorer } from '../../train/eval.js';

/** Cap of the default `--workers`. */
export const MAX_DEFAULT_WORKERS = 8;

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
    .option('checkpoint', { type: 'string', describe: 'run directory, .vilm checkpoint or exported directory (default: the shipped model, models/viwiki-tiny)' })
    .option('in', { type: 'string', describe: 'JSONL documents ({text,…} a line); cleaned like `vilm data clean`' })
    .option('ids', { type: 'string', describe: "score exactly this JSON id sequence, e.g. '[12,7,301]' (no cleaning, no specials)" })
    .option('json', { type: 'boolean', default: false, describe: 'print the result as one JSON object' })
    .option('backend', backendOption)
    .option('tokenizer', { type: 'string', describe: 'tokenizer.json to use instead of the one in the checkpoint' })
    .option('workers', {
      type: 'number', default: Math.max(1, Math.min(availableParallelism(), MAX_DEFAULT_WORKERS)), defaultDescription: `CPUs, at most ${MAX_DEFAULT_WORKERS}`,
      describe: 'threads scoring the --in windows (1: in the main thread); the result is the same for any number',
    })
    .conflicts('in', 'ids')
    .example('$0 eval --in runs/wiki/data/test.jsonl', 'the shipped model on the test split of a prepared data set')
    .example('$0 eval --checkpoint runs/tiny --in test.jsonl --json', 'your own run')
    .example('$0 eval --checkpoint runs/tiny --in test.jsonl --workers 4', 'score on 4 threads (same numbers as --workers 1)')
    .example("$0 eval --checkpoint runs/tiny --ids '[1,523,77,9]'", 'mean next-token loss of that sequence'),
  handler: async (a) => {
    const { openTrained } = await import('../../export/model-source.js');
    const { evaluateIds, parseIds, scoreDocuments } = await import('../../train/eval.js');
    const { checkpointTokenizer, openModel } = await import('../../train/open-model.js');
    const { SequenceScorer } = await import('../../train/parallel-eval.js');
    if (a.in === undefined && a.ids === undefined) throw new UserError('eval: give --in FILE.jsonl or --ids JSON');
    const ck = openTrained(a.checkpoint);
    // check the inputs before starting the backend
    const ids = a.ids !== undefined ? parseIds(a.ids, ck.config.model.vocab_size, ck.config.model.max_len) : undefined;
    if (ids !== undefined) {
      const { model } = await openModel(ck, ck.where, a.backend, a.tokenizer);
      try {
        const r = evaluateIds(model, ck.weights, ids);
        print({ loss: r.loss, ppl: r.ppl, bitsPerByte: null, tokens: r.tokens, bytes: null }, a.json);
      } finally {
        model.dispose();
      }
      return;
    }
    const workers = a.workers;
    if (!Number.isInteger(workers) || workers < 1) throw new UserError(`--workers: must be a positive integer, got ${workers}`);
    const file = a.in!;
    // documents in the file (non-empty lines), for the progress bar; also checks the file opens
    const lines = await countLines(file);
    const tokenizer = checkpointTokenizer(ck, ck.where, a.tokenizer);
    const scorer = await SequenceScorer.open({ model: ck.config.model, backend: a.backend, weights: ck.weights, threads: workers });
    try {
      // the bar counts documents SCORED: scoreDocuments reads a group of windows (whole documents)
      // ahead and scores it in chunks; the documents of a group advance with its chunks
      const bar = progress('eval', lines, 'documents');
      let docs = 0, scoredDocs = 0;
      const counted: WindowScorer = {
        score: async (group) => {
          const from = scoredDocs, to = docs;
          const res = await scorer.score(group, (done, total) => bar.update(Math.floor(from + ((to - from) * done) / total)));
          scoredDocs = to;
          return res;
        },
      };
      let r;
      try {
        r = await scoreDocuments(counted, ck.config.model.max_len, tokenizer, cleanedTexts(file, () => { docs++; }), {
          onProgress: (tokens) => bar.update(scoredDocs, { tokens }),
        });
      } catch (e) {
        bar.abort();
        throw e;
      }
      bar.done(`${r.tokens.toLocaleString('en-US')} tokens`);
      log.info('eval', { model: ck.where, step: ck.step, docs, tokens: r.tokens, bytes: r.bytes, workers });
      print(r, a.json);
    } finally {
      await scorer.close();
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
