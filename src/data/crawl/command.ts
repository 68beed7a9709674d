import { defineCommand } from '../../cli/define.js';
import { UserError } from '../../util/errors.js';

// Placeholder until the crawl implementation lands (replaced by its owner).
export const crawlCommand = defineCommand({
  command: 'crawl',
  describe: '(crawl: not built yet)',
  handler: () => { throw new UserError('data crawl is not built yet'); },
});
