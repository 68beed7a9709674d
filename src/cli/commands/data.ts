import type { AnyCommand } from './index.js';

export const dataCommands: AnyCommand[] = [];
