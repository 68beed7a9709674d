import type { AnyCommand } from '../define.js';
import { trainCommand } from '../../train/command-train.js';
import { evalCommand } from '../../train/command-eval.js';
import { predictCommand } from '../../train/command-predict.js';

export const trainCommands: AnyCommand[] = [trainCommand, evalCommand, predictCommand];
