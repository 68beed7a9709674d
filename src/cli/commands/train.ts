import type { AnyCommand } from './index.js';

export const trainCommands: AnyCommand[] = [];
