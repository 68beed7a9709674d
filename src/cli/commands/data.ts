/** `vilm data crawl|clean|prepare` (each subcommand in its own data-*.ts file). */
import type { AnyCommand } from '../define.js';
import { crawlCommand } from './data-crawl.js';
import { cleanCommand } from './data-clean.js';
import { prepareCommand } from './data-prepare.js';

export const dataCommand: AnyCommand = {
  command: 'data <command>',
  describe: 'crawl, clean and prepare training data',
  builder: (y) => y.command(crawlCommand).command(cleanCommand).command(prepareCommand).demandCommand(1),
  handler: () => undefined,
};
