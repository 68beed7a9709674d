import type { AnyCommand } from './index.js';

export const distCommands: AnyCommand[] = [];
