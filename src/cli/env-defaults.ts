import { UserError } from '../util/errors.js';

/**
 * Flags an operator sets once per machine may come from the environment, the way torchrun reads
 * MASTER_ADDR: `VILM_<FLAG>` (upper case, '-' → '_'), e.g. VILM_CONNECT, VILM_TOKEN_FILE. The
 * command line wins over the environment; `--help` names the variable next to each such flag.
 */
export function envName(flag: string): string {
  return 'VILM_' + flag.toUpperCase().replace(/-/g, '_');
}

interface EnvOption { type: 'string' | 'number'; describe: string; default?: unknown }

/** The yargs option `o` of `flag`, with its default taken from VILM_<FLAG> when that is set. */
export function fromEnv<const O extends EnvOption>(flag: string, o: O): O {
  const name = envName(flag);
  const raw = process.env[name];
  const describe = `${o.describe} [env ${name}]`;
  if (raw === undefined || raw === '') return { ...o, describe };
  let value: string | number = raw;
  if (o.type === 'number') {
    value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value)) throw new UserError(`${name}: expected a number for --${flag}, got '${raw.slice(0, 40)}'`);
  }
  return { ...o, describe, default: value, defaultDescription: `${JSON.stringify(value)}, from ${name}` };
}
