/**
 * Every `vilm` command, one home: this folder. Each file defines one command (or one command
 * group); the feature folders under src/ are libraries that never import yargs.
 */
import type { AnyCommand } from '../define.js';
import { dataCommand } from './data.js';
import { tokenizerCommands } from './tokenizer.js';
import { modelCommands } from './model.js';
import { trainCommand } from './train.js';
import { evalCommand } from './eval.js';
import { predictCommand } from './predict.js';
import { coordinatorCommand } from './coordinator.js';
import { workerCommand } from './worker.js';
import { startCommand } from './start.js';
import { reportCommand } from './report.js';

export const allCommands: AnyCommand[] = [
  dataCommand,           // data crawl|clean|prepare   (data-*.ts)
  ...tokenizerCommands,  // tokenizer train|encode|decode
  ...modelCommands,      // model summary, export safetensors
  trainCommand,          // train (single process)
  evalCommand,           // eval
  predictCommand,        // predict
  coordinatorCommand,    // coordinator (threads + remote workers)
  workerCommand,         // worker (remote)
  startCommand,          // start (npm start)
  reportCommand,         // report
];
