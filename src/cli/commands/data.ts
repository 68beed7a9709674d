import type { AnyCommand } from '../define.js';
import { crawlCommand } from '../../data/crawl/command.js';
import { cleanCommand } from '../../data/clean/command.js';
import { prepareCommand } from '../../data/prepare/command.js';

export const dataCommands: AnyCommand[] = [
  {
    command: 'data <command>',
    describe: 'crawl, clean and prepare training data',
    builder: (y) => y.command(crawlCommand).command(cleanCommand).command(prepareCommand).demandCommand(1),
    handler: () => undefined,
  },
];
