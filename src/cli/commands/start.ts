import { defineCommand } from '../define.js';
import { backendOption } from '../run-options.js';

export const startCommand = defineCommand({
  command: 'start',
  describe: 'the first run: prepare a corpus (default: the built-in sample), train with a coordinator and 2 worker threads, evaluate, generate, report',
  builder: (y) => y
    .option('corpus', { type: 'string', array: true, describe: 'corpus JSONL files or folders (default: data/sample)' })
    .option('out', { type: 'string', describe: 'run folder (default: runs/start-<time>)' })
    .option('config', { type: 'string', describe: 'run config (default: configs/sample.yaml for the sample, configs/tiny.yaml otherwise)' })
    .option('vocab-size', { type: 'number', describe: 'tokenizer vocabulary (default: the config\'s model.vocab_size)' })
    .option('workers', { type: 'number', default: 2, describe: 'local worker threads' })
    .option('steps', { type: 'number', describe: 'optimizer steps (default: the config\'s train.steps, about two minutes on the sample)' })
    .option('prompt', { type: 'string', default: 'Việt Nam là', describe: 'prompt for the generated sample' })
    .option('max-tokens', { type: 'number', default: 40, describe: 'tokens to generate' })
    .option('test-sequences', { type: 'number', default: 32, describe: 'test-split sequences scored at the end, a fixed random sample (0 = the whole split)' })
    .option('backend', backendOption)
    .option('set', { type: 'string', array: true, default: [] as string[], describe: 'config override section.field=value (repeatable)' })
    .example('npm start', 'the default job on the built-in sample (about two minutes)')
    .example('npm start -- --corpus ../shared/corpus/viwiki', 'the seed model (10k vocabulary) on a real corpus')
    .example('$0 start --steps 20 --out runs/quick', 'a shorter run into a chosen folder'),
  handler: async (a) => {
    // imported on use: every `vilm` command loads this file, only `start` needs the trainer
    const { runStart } = await import('../../start/index.js');
    await runStart({
      corpus: a.corpus, out: a.out, config: a.config, vocabSize: a['vocab-size'], workers: a.workers, steps: a.steps,
      prompt: a.prompt, maxTokens: a['max-tokens'], backend: a.backend, set: a.set, testSequences: a['test-sequences'],
    });
  },
});
