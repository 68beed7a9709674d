/**
 * `vilm predict [--checkpoint RUN|DIR] --prompt "Việt Nam là" [--max-tokens 64] [--temperature 0.8]
 * [--top-k 40] [--top-p 0.95] [--seed 1]`: prints the prompt, then streams the continuation as it
 * is generated (KV-cached decoder, seeded sampling; see src/train/generate.ts).
 *
 * - `--temperature 0` is greedy decoding: always the most likely token, so the text is the same
 *   for every `--seed` (and `--top-k`/`--top-p` do not matter).
 * - Output is whole characters only: a token that ends inside a multi-byte UTF-8 character is held
 *   back until the next token completes it; a character still cut when generation stops is not
 *   printed (src/train/utf8-stream.ts).
 * - A prompt longer than the model's context (max_len, counting `<bos>` and one new token) is cut
 *   from the left, with one `warn:` line on stderr; the whole prompt is still echoed.
 * - `--max-tokens` may exceed the context: the window slides (the model sees the last
 *   max_len/2…max_len tokens; see generate.ts).
 * - `--top-next N` prints, instead of generating, the N most likely next tokens with their
 *   probabilities (softmax at temperature 1; the sampling flags do not apply), one per line as
 *   `0.1234  " là"` — the piece JSON-quoted, bytes that are not whole UTF-8 characters as
 *   `<0xE1>` — or with `--json` one object `{prompt, next: [{token, id, prob, bytes, complete}]}`.
 */
import { defineCommand } from '../define.js';
import { cleanText } from '../../data/clean/index.js';
import { showToken } from '../../train/utf8-stream.js';
import { log } from '../../util/log.js';
import { UserError } from '../../util/errors.js';
import { backendOption } from '../run-options.js';

export const predictCommand = defineCommand({
  command: 'predict',
  describe: 'generate text from a prompt with a checkpoint (streams to stdout)',
  builder: (y) => y
    .option('checkpoint', { type: 'string', describe: 'run directory, .vilm checkpoint or exported directory (default: the shipped model, models/viwiki-tiny)' })
    .option('prompt', { type: 'string', demandOption: true, describe: 'text to continue' })
    .option('max-tokens', { type: 'number', default: 64, describe: 'most tokens to generate (past the model\'s context the window slides)' })
    .option('temperature', { type: 'number', default: 0.8, describe: 'sampling temperature; 0 = greedy: always the most likely token, the same text for every seed' })
    .option('top-k', { type: 'number', default: 40, describe: 'sample among the k most likely tokens (0 = all)' })
    .option('top-p', { type: 'number', default: 0.95, describe: 'nucleus sampling mass (1 = all)' })
    .option('seed', { type: 'number', default: 1, describe: 'sampling seed (same seed, same text)' })
    .option('backend', backendOption)
    .option('top-next', { type: 'number', describe: 'instead of generating, list the N most likely next tokens with their probabilities (temperature 1, no top-k/top-p)' })
    .option('json', { type: 'boolean', default: false, describe: 'with --top-next: print one JSON object {prompt, next: [{token, id, prob, bytes, complete}]}' })
    .option('tokenizer', { type: 'string', describe: 'tokenizer.json to use instead of the one in the checkpoint' })
    .example('$0 predict --prompt "Hà Nội là"', 'the shipped model (trained on Vietnamese Wikipedia)')
    .example('$0 predict --checkpoint runs/tiny --prompt "Việt Nam là"', 'your own run')
    .example('$0 predict --checkpoint runs/tiny --prompt "Hà Nội" --temperature 0', 'greedy')
    .example('$0 predict --checkpoint runs/tiny --prompt "Hà Nội là" --top-next 10', 'the 10 most likely next tokens'),
  handler: async (a) => {
    const { openTrained } = await import('../../export/model-source.js');
    const { checkSampleOptions, fitPrompt, generate, nextTokens, promptCutNote } = await import('../../train/generate.js');
    const { openModel } = await import('../../train/open-model.js');
    const opts = { maxTokens: a['max-tokens'], temperature: a.temperature, topK: a['top-k'], topP: a['top-p'], seed: a.seed };
    checkSampleOptions(opts);
    if (!Number.isInteger(opts.seed)) throw new UserError(`--seed must be an integer, got ${opts.seed}`);
    const topNext = a['top-next'];
    if (topNext !== undefined && !(Number.isInteger(topNext) && topNext >= 1)) throw new UserError(`--top-next must be an integer ≥ 1, got ${topNext}`);
    if (a.json && topNext === undefined) throw new UserError('--json goes with --top-next (generated text is printed as it streams)');
    // the prompt goes through the same cleaner as the training text (NFC, whitespace, …)
    const prompt = cleanText(a.prompt).text;
    if (prompt.length === 0) throw new UserError('--prompt: empty after cleaning');
    const ck = openTrained(a.checkpoint);
    const { model, tokenizer } = await openModel(ck, ck.where, a.backend, a.tokenizer);
    const t0 = performance.now();
    let pieces = 0;
    try {
      // a prompt longer than the context keeps its end (the part the continuation follows)
      const fit = fitPrompt(tokenizer.encode(prompt), tokenizer.bosId, model.config.max_len);
      const note = promptCutNote(fit);
      if (note !== undefined) log.warn(note);
      if (topNext !== undefined) {
        const next = nextTokens(model, ck.weights, tokenizer, fit.ids, topNext).map((t) => ({ ...t, shown: showToken(tokenizer, t.id) }));
        if (a.json) {
          const out = { prompt, next: next.map((t) => ({ token: t.shown.text, id: t.id, prob: t.prob, bytes: t.shown.bytes, complete: t.shown.complete })) };
          process.stdout.write(JSON.stringify(out) + '\n');
        } else {
          process.stdout.write(next.map((t) => `${t.prob.toFixed(4)}  ${t.shown.display}\n`).join(''));
        }
        return;
      }
      process.stdout.write(prompt);
      for await (const piece of generate(model, ck.weights, tokenizer, fit.ids, opts)) {
        process.stdout.write(piece);
        pieces++;
      }
      process.stdout.write('\n');
    } finally {
      model.dispose();
    }
    log.info('predict', { step: ck.step, pieces, seconds: (performance.now() - t0) / 1000 });
  },
});
