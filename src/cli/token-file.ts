/** `--token-file`: the shared secret of the coordinator and its remote workers. */
import { readFileSync, statSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { log } from '../util/log.js';

/** Least entropy a token must carry (what `openssl rand -hex 32` gives). */
export const MIN_TOKEN_BITS = 256;

/**
 * An upper estimate of a token's entropy in bits: its length times log2 of the smallest usual
 * alphabet that holds all its characters (hex, base64/base64url, printable ASCII, anything), and
 * nothing at all for a run of one repeated character. A random token of that alphabet has this much;
 * a made-up phrase has far less, so the check refuses short and simple tokens, not every weak one.
 */
export function tokenBits(t: string): number {
  if (t.length === 0 || new Set(t).size === 1) return 0;
  const alphabet = /^[0-9a-f]+$/i.test(t) ? 16 : /^[A-Za-z0-9+/=_-]+$/.test(t) ? 64 : /^[\x20-\x7e]+$/.test(t) ? 95 : 256;
  return t.length * Math.log2(alphabet);
}

export function readTokenFile(file: string | undefined): string | undefined {
  if (!file) return undefined;
  let t: string;
  try { t = readFileSync(file, 'utf8').trim(); } catch (e) {
    throw new UserError(`${file}: cannot read --token-file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  // the example value once shipped in cluster/k8s/secret.yaml (a placeholder) must never become a real secret
  if (t.startsWith('replace-me')) throw new UserError(`${file}: still the example token; make one with: openssl rand -hex 32`);
  const bits = tokenBits(t);
  if (bits < MIN_TOKEN_BITS) {
    throw new UserError(`${file}: the token carries at most ${Math.floor(bits)} bits, at least ${MIN_TOKEN_BITS} are needed; make one with: openssl rand -hex 32 > ${file}`);
  }
  // as ssh does with private keys: a secret others can read is not a secret (a warning: a mounted
  // Kubernetes secret may be group-readable by design)
  const mode = statSync(file).mode;
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    log.warn(`${file}: the token file is readable by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 ${file}`);
  }
  return t;
}
