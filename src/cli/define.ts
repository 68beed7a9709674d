import type { CommandModule } from 'yargs';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- yargs' CommandModule generics differ per command
export type AnyCommand = CommandModule<any, any>;

/** Typed command definition: the handler's argument type is inferred from the builder. */
export function defineCommand<U>(c: CommandModule<object, U>): AnyCommand {
  return c as AnyCommand;
}
