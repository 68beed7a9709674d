// `npm run build` (also `prepare`, so npm install and npm pack build it): compiles src/ to lib/
// with tsc (tsconfig.build.json) and stamps lib/.built with the sources' hash; bin/launch.js then
// runs lib/ instead of transpiling the TypeScript at every launch. Plain JavaScript so that it runs
// before anything is built. Without TypeScript (a production install: npm ci --omit=dev) or
// without src/ (the Docker layer that installs dependencies first) there is nothing to build: it
// says so and vilm runs from src/ through tsx.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { sourcesHash } from '../bin/launch.js';

const root = fileURLToPath(new URL('../', import.meta.url));
let tsc;
try { tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc'); } catch {
  console.log('vilm build: typescript is not installed (production install): vilm will run from src/ through tsx');
  process.exit(0);
}
if (!existsSync(new URL('../src/cli/main.ts', import.meta.url))) {
  console.log('vilm build: no src/ here yet: nothing to build');
  process.exit(0);
}
rmSync(new URL('../lib', import.meta.url), { recursive: true, force: true });
const sources = sourcesHash(); // before compiling: a file edited meanwhile makes the stamp stale, not wrong
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  console.error('vilm build: tsc failed (see above); vilm keeps running from src/ through tsx');
  process.exit(r.status ?? 1);
}
writeFileSync(new URL('../lib/.built', import.meta.url), JSON.stringify({ sources, built: new Date().toISOString() }) + '\n');
console.log('vilm build: src/ compiled to lib/');
