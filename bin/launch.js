// The launcher behind the vilm, coordinator and worker commands. It runs the compiled JavaScript
// in lib/ (`npm run build`; npm install builds it through `prepare`, npm pack ships it) when lib/
// was compiled from exactly the sources in src/ — starting in a fraction of a second — else the
// TypeScript sources through the tsx loader (a checkout being edited, or an install without the
// build), which transpiles at each launch. "Exactly": lib/.built holds a hash of every source
// file's path and bytes (modification times are no guide: npm's tarballs reset them).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';

const root = new URL('../', import.meta.url);

/** sha256 over the sorted relative paths and contents of the files under src/ (~1 MB, a few ms). */
export function sourcesHash(srcDir = new URL('src/', root)) {
  const h = createHash('sha256');
  const walk = (dir, rel) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.isDirectory()) walk(new URL(e.name + '/', dir), rel + e.name + '/');
      else h.update(rel + e.name + '\0').update(readFileSync(new URL(e.name, dir))).update('\0');
    }
  };
  walk(srcDir, '');
  return h.digest('hex');
}

/** lib/ is built and its stamp names the hash of the sources as they are now. */
export function compiledIsCurrent() {
  const stamp = new URL('lib/.built', root);
  if (!existsSync(stamp)) return false;
  const built = (JSON.parse(readFileSync(stamp, 'utf8')) ?? {}).sources;
  return !existsSync(new URL('src/', root)) || built === sourcesHash();
}

export async function launch(args) {
  if (process.env.VILM_FROM_SOURCE !== '1' && compiledIsCurrent()) {
    const { main } = await import('../lib/cli/main.js');
    return main(args);
  }
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('../src/cli/main.ts');
  return main(args);
}
