/**
 * `vilm predict --checkpoint RUN --prompt "Việt Nam là" [--max-tokens 64] [--temperature 0.8]
 * [--top-k 40] [--top-p 0.95] [--seed 1]`: prints the prompt, then streams the continuation as it
 * is generated (KV-cached decoder, seeded sampling; see src/train/generate.ts).
 */
import { defineCommand } from '../define.js';
import { cleanText } from '../../data/clean/index.js';
import { loadCheckpoint } from '../../train/checkpoint.js';
import { checkSampleOptions, generate } from '../../train/generate.js';
import { openModel } from '../../train/open-model.js';
import { log } from '../../util/log.js';
import { UserError } from '../../util/errors.js';
import { backendOption } from '../run-options.js';

export const predictCommand = defineCommand({
  command: 'predict',
  describe: 'generate text from a prompt with a checkpoint (streams to stdout)',
  builder: (y) => y
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'run directory or .vilm checkpoint file' })
    .option('prompt', { type: 'string', demandOption: true, describe: 'text to continue' })
    .option('max-tokens', { type: 'number', default: 64, describe: 'most tokens to generate' })
    .option('temperature', { type: 'number', default: 0.8, describe: '0 = greedy' })
    .option('top-k', { type: 'number', default: 40, describe: 'sample among the k most likely tokens (0 = all)' })
    .option('top-p', { type: 'number', default: 0.95, describe: 'nucleus sampling mass (1 = all)' })
    .option('seed', { type: 'number', default: 1, describe: 'sampling seed (same seed, same text)' })
    .option('backend', backendOption)
    .option('tokenizer', { type: 'string', describe: 'tokenizer.json to use instead of the one in the checkpoint' })
    .example('$0 predict --checkpoint runs/tiny --prompt "Việt Nam là"', '')
    .example('$0 predict --checkpoint runs/tiny --prompt "Hà Nội" --temperature 0', 'greedy'),
  handler: async (a) => {
    const opts = { maxTokens: a['max-tokens'], temperature: a.temperature, topK: a['top-k'], topP: a['top-p'], seed: a.seed };
    checkSampleOptions(opts);
    if (!Number.isInteger(opts.seed)) throw new UserError(`--seed must be an integer, got ${opts.seed}`);
    // the prompt goes through the same cleaner as the training text (NFC, whitespace, …)
    const prompt = cleanText(a.prompt).text;
    if (prompt.length === 0) throw new UserError('--prompt: empty after cleaning');
    const ck = loadCheckpoint(a.checkpoint);
    const { model, tokenizer } = await openModel(ck, a.checkpoint, a.backend, a.tokenizer);
    const promptTokens = 1 + tokenizer.encode(prompt).length; // <bos> + prompt
    if (promptTokens >= ck.config.model.max_len) {
      model.dispose();
      throw new UserError(`--prompt: ${promptTokens} tokens with <bos>; the model's context (max_len) is ${ck.config.model.max_len}`);
    }
    const t0 = performance.now();
    let pieces = 0;
    try {
      process.stdout.write(prompt);
      for await (const piece of generate(model, ck.weights, tokenizer, prompt, opts)) {
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
