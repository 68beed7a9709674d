import type { AnyCommand } from '../define.js';

export const tokenizerCommands: AnyCommand[] = [];
