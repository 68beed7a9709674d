import type { Argv } from 'yargs';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { allCommands } from './commands/index.js';
import { ioFailure, isUserError } from '../util/errors.js';
import { getLogFormat, log, setLogFormat, type LogFormat } from '../util/log.js';

/**
 * yargs through its CommonJS entry: the ES-module build ships a minimal text wrapper (cliui's
 * index.mjs) that cuts words and examples at the column edge (`coord|inator`); the CommonJS build
 * wraps at spaces with wrap-ansi and measures widths with string-width.
 */
const yargs = createRequire(import.meta.url)('yargs/yargs') as typeof import('yargs/yargs');

/** vilm's version, from the package's own package.json (found from this file, not the cwd). */
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * The `vilm` command line. Each concern registers its commands in `src/cli/commands/<concern>.ts`.
 * Errors caused by input print as one line (`vilm: …`) with a non-zero exit.
 */
export function buildParser(argv: string[]): Argv {
  let parser = (yargs(argv) as Argv)
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
    // the terminal's width on a terminal (at most 120); piped or redirected, lines are not wrapped
    .wrap(process.stdout.isTTY ? Math.min(120, process.stdout.columns || 80) : null)
    .fail((msg, err, y) => {
      if (err) throw err;
      void y;
      fail(`vilm: ${msg}`, 2, '(run with --help for usage)');
    });
  for (const c of allCommands) parser = parser.command(c);
  return parser;
}

/**
 * Print the one error line and exit: plain text (`detail` on the next line), or under
 * `--log-format json` one JSON record with the exit code (and `detail`).
 */
function fail(line: string, exitCode: number, detail?: string): never {
  if (getLogFormat() === 'json') log.error(line, { exitCode, detail });
  else process.stderr.write(`${line}\n${detail ? detail + '\n' : ''}`);
  process.exit(exitCode);
}

export async function main(argv: string[]): Promise<void> {
  // --log-format json applies to errors found while parsing too (before yargs' middleware runs)
  const lf = argv.findIndex((x) => x === '--log-format' || x.startsWith('--log-format='));
  if (lf >= 0 && (argv[lf].endsWith('=json') || argv[lf + 1] === 'json')) setLogFormat('json');
  try {
    await buildParser(argv).parseAsync();
  } catch (e) {
    const err = isUserError(e) ? e : ioFailure(e);
    if (err) fail(`vilm: ${err.message}`, err.exitCode);
    fail(`vilm: internal error: ${(e as Error)?.message ?? String(e)}`, 70, (e as Error)?.stack);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main(process.argv.slice(2));
}
