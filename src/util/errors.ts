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

/** Exit code of a command that could not read or write a file (sysexits' EX_IOERR). */
export const EXIT_IO = 74;

/**
 * Exit code of a training run that diverged (sysexits' EX_DATAERR: the numbers the run computed —
 * its loss, gradient or weights — are not usable). Distinct from 1 (bad input found before
 * training) and 70 (a bug); like 1 and unlike 75, running the same command again gives the same
 * divergence: lower the learning rate (or fix the data) and start over.
 */
export const EXIT_DIVERGED = 65;

/**
 * The run diverged: a non-finite (or implausibly large) loss or gradient that a recomputation
 * confirmed (so no worker is to blame), or non-finite weights. `what` says which, in words; the
 * message is the CLI's one line (the training loop adds the step and the checkpoint kept).
 */
export class DivergedError extends UserError {
  constructor(readonly what: string, message = `diverged: ${what}`) {
    super(message, EXIT_DIVERGED);
    this.name = 'DivergedError';
  }
}

/** What the OS said, in words, for the errors a full or protected disk gives. */
const IO_FAILURES: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  EIO: 'input/output error',
};

/**
 * A Node fs error from a full disk, a missing permission or a read-only file system, as a
 * UserError (exit 74) whose one line names the file: `runs/x/checkpoint.vilm: cannot write: no
 * space left on device (ENOSPC)`. Writers leave no temp files behind and earlier outputs are kept
 * (see ./atomic.ts), so the message says so. Returns null for any other error.
 */
export function ioFailure(e: unknown): UserError | null {
  if (!(e instanceof Error)) return null;
  const err = e as NodeJS.ErrnoException;
  const what = err.code !== undefined ? IO_FAILURES[err.code] : undefined;
  if (what === undefined || err.syscall === undefined) return null;
  const verb = READ_CALLS.has(err.syscall) ? 'cannot read' : err.syscall === 'open' ? 'cannot open' : 'cannot write';
  const file = err.path ?? '(unknown file)';
  const destPath = (err as { dest?: string }).dest; // rename/link/copyfile errors carry the destination
  const dest = destPath !== undefined ? ` → ${destPath}` : '';
  const kept = verb === 'cannot read' ? '' : '; files written before are intact';
  return new UserError(`${file}${dest}: ${verb}: ${what} (${err.code})${kept}`, EXIT_IO);
}

const READ_CALLS = new Set(['read', 'scandir', 'stat', 'lstat', 'access', 'opendir']);
