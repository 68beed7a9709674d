#!/usr/bin/env node
// Thin launcher: registers the tsx loader so the TypeScript sources run without a build step.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../src/cli/main.ts');
await main(['coordinator', ...process.argv.slice(2)]);
