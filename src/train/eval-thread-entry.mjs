// Worker-thread entry for the evaluation threads of ./parallel-eval.ts (piscina): registers the tsx
// loader (a worker thread does not inherit loaders registered with `register()`; as
// src/fleet/worker/thread-entry.mjs does for the training threads), then loads the real module.
import { register } from 'tsx/esm/api';
register();
const mod = await import('./eval-thread.ts');
export default mod.default;
