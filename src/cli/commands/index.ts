import type { CommandModule } from 'yargs';
import { dataCommands } from './data.js';
import { tokenizerCommands } from './tokenizer.js';
import { modelCommands } from './model.js';
import { trainCommands } from './train.js';
import { distCommands } from './dist.js';
import { opsCommands } from './ops.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- yargs' CommandModule generics differ per command
export type AnyCommand = CommandModule<any, any>;

/** Typed command definition: the handler's argument type is inferred from the builder. */
export function defineCommand<U>(c: CommandModule<object, U>): AnyCommand {
  return c as AnyCommand;
}

/** Every top-level command, grouped by concern (one file each). */
export const allCommands: AnyCommand[] = [
  ...dataCommands,       // data crawl|clean|prepare
  ...tokenizerCommands,  // tokenizer train|encode|decode
  ...modelCommands,      // model summary, export safetensors
  ...trainCommands,      // train, eval, predict
  ...distCommands,       // coordinator, worker
  ...opsCommands,        // start, report
];
