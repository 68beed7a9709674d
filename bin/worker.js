#!/usr/bin/env node
// `worker …` = `vilm worker …` (see ./launch.js).
import { launch } from './launch.js';
await launch(['worker', ...process.argv.slice(2)]);
