import type { AnyCommand } from '../define.js';
import { reportCommand } from '../../report/command.js';
import { startCommand } from '../../start/command.js';

/** Operating a run: `start` (the first-run job behind `npm start`) and `report`. */
export const opsCommands: AnyCommand[] = [startCommand, reportCommand];
