/**
 * A failure caused by the user's input (a file, a flag, a peer). The CLI prints its message as one
 * line, `vilm: <message>`, and exits non-zero; no stack trace. Messages name the file/field/peer.
 */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'UserError';
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}
