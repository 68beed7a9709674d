/**
 * One compute slot as the scheduler sees it, whatever the transport: a thread of the pool
 * (./thread-link.ts), the in-process replica (./in-process-link.ts) or a WebSocket connection
 * (./ws-connection.ts).
 */
import type { ReassignReason, RejectReason, Transport } from '../../events/index.js';
import type { ResultMsg, TaskMsg } from '../contract.js';

/** A failure of one task on one worker; `reason` decides how it is counted. */
export class LinkError extends Error {
  constructor(readonly reason: ReassignReason | 'stale', message: string, readonly rejectReason?: RejectReason) {
    super(message);
  }
}

export interface WorkerLink {
  /** unique among the links connected at one time */
  readonly id: string;
  /**
   * Who the worker is across connections: strikes and bans count against it (./strikes.ts).
   * A thread's and the in-process worker's id; a remote worker's authenticated name.
   */
  readonly identity: string;
  readonly transport: Transport;
  /** Run one task. Rejects with a LinkError when the worker dies, disconnects or answers stale. */
  run(task: TaskMsg): Promise<ResultMsg>;
  /**
   * How many tasks the worker may hold at once (default 1). A worker that computes its tasks one
   * after another (a remote worker) can be given its next task while the current one computes, so
   * the hand-over — its result on the wire, checked and added, the next task sent back — is no
   * longer between its two computations (./step-run.ts pump).
   */
  readonly depth?: number;
  /** Bytes sent to / received from this worker so far (0 for in-process and threads). */
  bytes(): { sent: number; received: number };
  /** Drop the worker (repeat offender). */
  kick(reason: string): void;
}
