/** Backends vilm can run on. `auto`: tfjs-node when installed, else wasm, else cpu. */
export type BackendName = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
// Implemented in src/backend/index.ts: `initBackend(name?: BackendName): Promise<'tensorflow'|'wasm'|'cpu'>`
// — chooses, logs the choice, and installs the wasm kernel fixes once.
