import type { AnyCommand } from '../define.js';
import { reportCommand } from '../../report/command.js';

/** Operating a run: `report` (and `start`, the first-run job, added by its owner). */
export const opsCommands: AnyCommand[] = [reportCommand];
