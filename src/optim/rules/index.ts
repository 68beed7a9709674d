/**
 * THE list of update rules, one line each. A new optimizer is one file in this folder (a
 * `defineRule({...})` object) plus one line here; its name, config validation, the CLI's
 * `--optimizer` choices, checkpoint buffer names and createOptimizer follow (../registry.ts).
 */
export { sgd } from './sgd.js';
export { momentum } from './momentum.js';
export { rmsprop } from './rmsprop.js';
export { adam } from './adam.js';
