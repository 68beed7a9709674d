// Worker-thread entry for ./probe-thread.ts when vilm runs from its sources: registers the tsx
// loader (a worker thread does not inherit loaders registered with `register()`; as
// src/fleet/worker/thread-entry.mjs does for the training threads), then loads the real module.
import { register } from 'tsx/esm/api';
register();
await import('./probe-thread.ts');
