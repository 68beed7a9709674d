#!/usr/bin/env node
// `coordinator …` = `vilm coordinator …` (see ./launch.js).
import { launch } from './launch.js';
await launch(['coordinator', ...process.argv.slice(2)]);
