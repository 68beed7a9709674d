import { defineCommand } from '../cli/define.js';
import { UserError } from '../util/errors.js';

// Placeholder until the predict implementation lands (replaced by its owner).
export const predictCommand = defineCommand({
  command: 'predict',
  describe: '(predict: not built yet)',
  handler: () => { throw new UserError('predict is not built yet'); },
});
