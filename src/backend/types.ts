/**
 * Backends vilm can run on. `auto`: tfjs-node when installed, else wasm, else cpu.
 * Derived from the one list in ./registry.ts (re-exported here so existing importers compile).
 */
export type { ActiveBackend, BackendName } from './registry.js';
// Implemented in src/backend/index.ts: `initBackend(name?: BackendName): Promise<ActiveBackend>`
// — chooses, logs the choice, and installs the wasm kernel fixes once.
