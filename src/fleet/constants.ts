/**
 * Close codes and limits of the fleet, named once and shared by both sides (the worker recognises
 * a refusal by its code, never by the text of a message).
 */

/** WebSocket close codes (4000–4999 are the application's own, RFC 6455 §7.4.2). */
export const CLOSE = {
  /** normal end (bye) */
  NORMAL: 1000,
  /** a frame larger than the receiver's limit (ws sends it itself) */
  TOO_BIG: 1009,
  /** the worker failed internally */
  WORKER_ERROR: 1011,
  /** the peer speaks another protocol version, or sent an undecodable frame */
  VERSION: 4000,
  /** authentication failed */
  AUTH: 4001,
  /** the coordinator dropped the worker (repeat offender, operator, shutdown) */
  KICKED: 4002,
  /** too many protocol errors */
  PROTOCOL_ERRORS: 4003,
} as const;

/** Longest worker id (`ws-<n>-<name>`). */
export const MAX_WORKER_ID_LENGTH = 64;
/** Longest string field accepted in a frame. */
export const MAX_STRING_FIELD = 4096;
/** Longest close reason sent (the WebSocket limit is 123 bytes). */
export const MAX_CLOSE_REASON = 120;

/** Limits of the worker port and its connections (tests shorten them). */
export interface ConnectionLimits {
  heartbeatMs: number;
  /** silence (or not reading) after which a worker is dropped */
  heartbeatTimeoutMs: number;
  /** protocol errors (bad frames) before disconnecting */
  maxProtocolErrors: number;
  /** time an unauthenticated connection has to send its upgrade request */
  authDeadlineMs: number;
  /** unauthenticated connections (accepted, upgrade not decided) allowed at once */
  maxPending: number;
  /** …of them from one address (so one host cannot take every slot) */
  maxPendingPerAddress: number;
  /** an address that misbehaves before authenticating is turned away at accept this long per offence (./coordinator/door.ts) */
  penaltyMs: number;
}

export const DEFAULT_LIMITS: ConnectionLimits = { heartbeatMs: 2000, heartbeatTimeoutMs: 120_000, maxProtocolErrors: 3, authDeadlineMs: 10_000, maxPending: 256, maxPendingPerAddress: 8, penaltyMs: 2000 };

/** Largest frame a coordinator accepts: a result is at most a full gradient plus row ids. */
export function coordinatorMaxPayload(total: number, vocab: number): number {
  return total * 4 + vocab * 4 + (1 << 20);
}

/** Largest frame a worker accepts by default (the weights are the biggest). */
export const WORKER_MAX_PAYLOAD = 1 << 30;

/**
 * Tasks a remote worker holds at once (WorkerLink.depth): the next one is sent while the current
 * one computes, so the worker starts it as soon as it has sent the result of the one before.
 */
export const WS_TASK_DEPTH = 2;
