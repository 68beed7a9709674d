import type { AnyCommand } from '../define.js';

export const distCommands: AnyCommand[] = [];
