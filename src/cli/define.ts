import type { Argv, CommandModule } from 'yargs';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- yargs' CommandModule generics differ per command
export type AnyCommand = CommandModule<any, any>;

/**
 * Typed command definition: the handler's argument type is inferred from the builder. Examples
 * print as two lines, `# what it does` above the command, each on its own full-width row: yargs
 * otherwise squeezes the command into half the width and wraps it, and a wrapped command cannot be
 * copied into a shell.
 */
export function defineCommand<U>(c: CommandModule<object, U>): AnyCommand {
  const builder = c.builder;
  if (typeof builder !== 'function') return c as AnyCommand;
  return { ...c, builder: (y: Argv<object>) => builder(commentedExamples(y)) } as AnyCommand;
}

/** `y.example(cmd, what)` → a `# what` row and a `cmd` row (yargs prints a row alone when its description is ''). */
function commentedExamples<T>(y: Argv<T>): Argv<T> {
  const example = y.example.bind(y) as (cmd: string, what: string) => Argv<T>;
  return Object.assign(y, {
    example: (cmd: string, what?: string): Argv<T> => {
      if (what) example(`# ${what}`, '');
      return example(cmd, '');
    },
  });
}
