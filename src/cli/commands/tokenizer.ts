import type { AnyCommand } from './index.js';

export const tokenizerCommands: AnyCommand[] = [];
