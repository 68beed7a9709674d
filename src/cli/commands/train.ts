import { defineCommand } from '../define.js';
import { commonRunOptions } from '../run-options.js';

/**
 * `vilm train`: single-process training — the coordinator's loop with one in-process worker, so
 * it produces the same weights (bit for bit) as `vilm coordinator` with any number of workers.
 */
export const trainCommand = defineCommand({
  command: 'train',
  describe: 'train in one process (same loop and bytes as the coordinator)',
  builder: (y) => commonRunOptions(y)
    .example('$0 train', 'the sample config on the built-in sample (prepared once), into runs/train-<time>')
    .example('$0 train --config configs/tiny.yaml --data runs/data --out runs/tiny', 'train the seed model')
    .example('$0 train --config configs/test.yaml --data runs/data --out runs/t --steps 10 --stop-at 5', 'stop after 5 of 10 steps')
    .example('$0 train --config configs/test.yaml --data runs/data --out runs/t --steps 10 --resume', '…and finish them exactly'),
  handler: async (a) => {
    const { runLoopCommand } = await import('../run-loop.js');
    await runLoopCommand(a, { inProcess: true, threads: 0 }, 'train');
  },
});
