/**
 * The worker port's front door: a plain TCP server that decides, before node:http allocates
 * anything for a connection, whether it may even present its upgrade request.
 *
 *  - Unauthenticated connections (accepted, upgrade not yet decided) are capped in all and per
 *    address, and each has `authDeadlineMs` to send its request, exactly (node:http checks its own
 *    headersTimeout only every 30 s).
 *  - An address that misbehaves before authenticating — a refused upgrade, a malformed or oversized
 *    request, a missed deadline, too many connections at once — is penalised: for `penaltyMs`, growing
 *    with each offence up to MAX_PENALTY_MS, its new connections are closed at accept, costing the
 *    coordinator a file descriptor for a moment and nothing else (OpenSSH 9.8's PerSourcePenalties
 *    does the same). An honest worker on another address is not affected; one behind the same
 *    address waits out the penalty in its retry loop.
 *
 * Admitted sockets go to node:http (or https) with `emit('connection')`, the documented way to hand
 * it a socket it did not accept.
 */
import net from 'node:net';
import type { ConnectionLimits } from '../constants.js';

/** Longest penalty of one address. */
export const MAX_PENALTY_MS = 60_000;
/** Addresses remembered (penalised or with connections pending); the oldest are forgotten first. */
const MAX_ADDRESSES = 10_000;

/** A TCP connection's key: the peer's address and port (the same on its TLS socket). */
export function peerKey(s: { remoteAddress?: string; remotePort?: number }): string {
  return `${s.remoteAddress ?? '?'}:${s.remotePort ?? '?'}`;
}

export class Door {
  readonly server: net.Server;
  private pending = 0;
  private readonly pendingFrom = new Map<string, number>();
  /** per pending connection (by peerKey): what to do once its upgrade is decided */
  private readonly undecided = new Map<string, () => void>();
  /** address → penalised until (ms) */
  private readonly penalties = new Map<string, number>();
  /** connections closed at accept (penalised or over a cap) */
  turnedAway = 0;

  constructor(private readonly limits: ConnectionLimits, admit: (socket: net.Socket) => void) {
    this.server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      const from = socket.remoteAddress ?? '?';
      if (this.penalisedFor(from) > 0) { this.turnedAway++; socket.destroy(); return; }
      const mine = this.pendingFrom.get(from) ?? 0;
      if (this.pending >= limits.maxPending || mine >= limits.maxPendingPerAddress) {
        if (mine >= limits.maxPendingPerAddress) this.penalise(from);
        this.turnedAway++;
        socket.destroy();
        return;
      }
      this.pending++;
      this.pendingFrom.set(from, mine + 1);
      const key = peerKey(socket);
      const deadline = setTimeout(() => { this.penalise(from); socket.destroy(); }, limits.authDeadlineMs);
      let counted = true;
      const done = () => {
        if (!counted) return;
        counted = false;
        this.pending--;
        clearTimeout(deadline);
        this.undecided.delete(key);
        const left = (this.pendingFrom.get(from) ?? 1) - 1;
        if (left > 0) this.pendingFrom.set(from, left); else this.pendingFrom.delete(from);
      };
      this.undecided.set(key, done);
      socket.once('close', done);
      admit(socket);
    });
  }

  /** The connection `key` presented its upgrade: it no longer counts as pending. */
  decided(key: string): void {
    this.undecided.get(key)?.();
  }

  /** ms left of `address`'s penalty (0: none). */
  penalisedFor(address: string, now = Date.now()): number {
    const until = this.penalties.get(address);
    if (until === undefined) return 0;
    if (until <= now) { this.penalties.delete(address); return 0; }
    return until - now;
  }

  /** One more offence of `address` before authenticating. */
  penalise(address: string, now = Date.now()): void {
    if (this.limits.penaltyMs <= 0) return;
    const until = Math.min(now + MAX_PENALTY_MS, Math.max(now, this.penalties.get(address) ?? 0) + this.limits.penaltyMs);
    this.penalties.delete(address); // re-insert: the map's order is last-offence order
    this.penalties.set(address, until);
    if (this.penalties.size > MAX_ADDRESSES) this.penalties.delete(this.penalties.keys().next().value!);
  }
}
