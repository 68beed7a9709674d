import type { AnyCommand } from '../define.js';

export const opsCommands: AnyCommand[] = [];
