// Worker-thread entry for piscina: registers the tsx loader (vilm runs its TypeScript sources
// without a build step; a worker thread does not inherit loaders registered with `register()`),
// then loads the real worker module.
import { register } from 'tsx/esm/api';
register();
const mod = await import('./thread-worker.ts');
export default mod.default;
