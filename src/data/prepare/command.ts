import { defineCommand } from '../../cli/define.js';
import { UserError } from '../../util/errors.js';

// Placeholder until the prepare implementation lands (replaced by its owner).
export const prepareCommand = defineCommand({
  command: 'prepare',
  describe: '(prepare: not built yet)',
  handler: () => { throw new UserError('data prepare is not built yet'); },
});
