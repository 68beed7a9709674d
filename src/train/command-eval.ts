import { defineCommand } from '../cli/define.js';
import { UserError } from '../util/errors.js';

// Placeholder until the eval implementation lands (replaced by its owner).
export const evalCommand = defineCommand({
  command: 'eval',
  describe: '(eval: not built yet)',
  handler: () => { throw new UserError('eval is not built yet'); },
});
