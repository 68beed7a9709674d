import type { AnyCommand } from './index.js';

export const opsCommands: AnyCommand[] = [];
