import yargs from 'yargs';
import type { Argv } from 'yargs';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { allCommands } from './commands/index.js';
import { ioFailure, isUserError } from '../util/errors.js';
import { setLogFormat, type LogFormat } from '../util/log.js';

/** vilm's version, from the package's own package.json (found from this file, not the cwd). */
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * The `vilm` command line. Each concern registers its commands in `src/cli/commands/<concern>.ts`.
 * Errors caused by input print as one line (`vilm: …`) with a non-zero exit.
 */
export function buildParser(argv: string[]): Argv {
  let parser = yargs(argv)
    .scriptName('vilm')
    .usage('$0 <command> [options]')
    .option('log-format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'log lines as text or one JSON object per line', global: true })
    .middleware((a) => { setLogFormat(a['log-format'] as LogFormat); })
    .strict()
    .demandCommand(1, 'name a command (see --help)')
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version('version', 'show the vilm version', VERSION)
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((msg, err, y) => {
      if (err) throw err;
      process.stderr.write(`vilm: ${msg}\n(run with --help for usage)\n`);
      void y;
      process.exit(2);
    });
  for (const c of allCommands) parser = parser.command(c);
  return parser;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildParser(argv).parseAsync();
  } catch (e) {
    const err = isUserError(e) ? e : ioFailure(e);
    if (err) {
      process.stderr.write(`vilm: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    process.stderr.write(`vilm: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(70);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main(process.argv.slice(2));
}
