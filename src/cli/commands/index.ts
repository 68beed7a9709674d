import type { AnyCommand } from '../define.js';
export { defineCommand, type AnyCommand } from '../define.js';
import { dataCommands } from './data.js';
import { tokenizerCommands } from './tokenizer.js';
import { modelCommands } from './model.js';
import { trainCommands } from './train.js';
import { distCommands } from './dist.js';
import { opsCommands } from './ops.js';


/** Every top-level command, grouped by concern (one file each). */
export const allCommands: AnyCommand[] = [
  ...dataCommands,       // data crawl|clean|prepare
  ...tokenizerCommands,  // tokenizer train|encode|decode
  ...modelCommands,      // model summary, export safetensors
  ...trainCommands,      // train, eval, predict
  ...distCommands,       // coordinator, worker
  ...opsCommands,        // start, report
];
