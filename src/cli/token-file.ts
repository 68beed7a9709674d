/** `--token-file`: the shared secret of the coordinator and its remote workers. */
import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';

export function readTokenFile(file: string | undefined): string | undefined {
  if (!file) return undefined;
  let t: string;
  try { t = readFileSync(file, 'utf8').trim(); } catch (e) {
    throw new UserError(`${file}: cannot read --token-file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (t.length < 16) throw new UserError(`${file}: the token must be at least 16 characters`);
  // the example value once shipped in cluster/k8s/secret.yaml (a placeholder) must never become a real secret
  if (t.startsWith('replace-me')) throw new UserError(`${file}: still the example token; make one with: openssl rand -hex 32`);
  return t;
}
