import { defineCommand } from '../cli/define.js';
import { UserError } from '../util/errors.js';

// Placeholder until the train implementation lands (replaced by its owner).
export const trainCommand = defineCommand({
  command: 'train',
  describe: '(train: not built yet)',
  handler: () => { throw new UserError('train is not built yet'); },
});
