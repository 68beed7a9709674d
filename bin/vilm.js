#!/usr/bin/env node
// `vilm …`: see ./launch.js (compiled lib/ when current, else the TypeScript sources via tsx).
import { launch } from './launch.js';
await launch(process.argv.slice(2));
