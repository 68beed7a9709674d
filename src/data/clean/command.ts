import { defineCommand } from '../../cli/define.js';
import { UserError } from '../../util/errors.js';

// Placeholder until the clean implementation lands (replaced by its owner).
export const cleanCommand = defineCommand({
  command: 'clean',
  describe: '(clean: not built yet)',
  handler: () => { throw new UserError('data clean is not built yet'); },
});
