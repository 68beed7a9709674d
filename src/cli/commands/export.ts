import { readFileSync } from 'node:fs';
import { defineCommand, type AnyCommand } from '../define.js';
import { UserError } from '../../util/errors.js';
import { log } from '../../util/log.js';

const safetensors = defineCommand({
  command: 'safetensors',
  describe: 'write DIR/model.safetensors, DIR/config.json, DIR/tokenizer.json (loads in Python/NumPy)',
  builder: (y) => y
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'run directory or .vilm checkpoint file' })
    .option('out', { type: 'string', demandOption: true, describe: 'output directory' })
    .option('tokenizer', { type: 'string', describe: 'tokenizer.json to export instead of the one in the checkpoint' })
    .option('dtype', { choices: ['f32', 'f16'] as const, default: 'f32' as const, describe: 'storage of the weights (f16: half the size; loads back as float32)' })
    .example('$0 export safetensors --checkpoint runs/tiny --out runs/tiny/hf', 'float32 weights')
    .example('$0 export safetensors --checkpoint runs/tiny --out models/mine --dtype f16', 'half-size weights; usable by eval, predict and train --init'),
  handler: async (a) => {
    const { loadTokenizer } = await import('../../tokenizer/index.js');
    const { loadCheckpoint } = await import('../../train/checkpoint.js');
    const { exportSafetensors } = await import('../../export/index.js');
    const ck = loadCheckpoint(a.checkpoint);
    if (a.tokenizer !== undefined) {
      loadTokenizer(a.tokenizer); // validates the file (one-line error naming it)
      ck.tokenizerJson = readFileSync(a.tokenizer, 'utf8');
    } else if (ck.tokenizerJson.trim() === '') {
      throw new UserError(`${a.checkpoint}: the checkpoint holds no tokenizer (trained without DATA/tokenizer.json); pass --tokenizer FILE`);
    }
    const r = await exportSafetensors(ck, a.out, a.dtype === 'f16' ? 'F16' : 'F32');
    log.info('exported', { step: ck.step, tensors: r.tensors, bytes: r.bytes, out: a.out });
    process.stdout.write(r.files.join('\n') + '\n');
  },
});

/** `export <format>`: registered top level (`vilm export safetensors`) and under `vilm model`. */
export const exportCommand: AnyCommand = {
  command: 'export <command>',
  describe: 'export a checkpoint for use outside vilm',
  builder: (y) => y.command(safetensors).demandCommand(1),
  handler: () => undefined,
};
