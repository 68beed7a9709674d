/**
 * Strikes and bans per worker IDENTITY (a WorkerLink's `identity`: a thread's id, the in-process
 * worker's, a remote worker's authenticated name), not per connection, so reconnecting does not
 * wipe the slate. At `maxStrikes` the identity is banned for `banMs` (its connections are dropped
 * and new ones refused) and its count starts over.
 *
 * Bounded memory whatever the workers do: an identity's record is forgotten `memoryMs` after its
 * last strike (≥ banMs, so a ban always outlives its record), and at most `capacity` records are
 * kept — the least recently struck go first. Records are kept in a Map in order of last activity
 * (re-inserted on every update), so expiring is popping from the front.
 *
 * A holder of the token chooses its worker name, so a ban binds a name, not a person: it stops a
 * broken or misconfigured worker from taking tasks again and again, and costs a deliberate
 * attacker a reconnect under a new name (verification, ./step-run.ts, is what catches a liar).
 */

export interface StrikeBookOptions {
  maxStrikes: number;
  banMs: number;
  /** how long a record is kept after its last strike (default and minimum: banMs, at least 1 h) */
  memoryMs?: number;
  /** most identities remembered (default 4096) */
  capacity?: number;
  /** clock in ms (tests) */
  now?: () => number;
}

interface StrikeRecord {
  strikes: number;
  lastAt: number;
  bannedUntil: number;
}

export const DEFAULT_BAN_MS = 10 * 60_000;
const DEFAULT_CAPACITY = 4096;

export class StrikeBook {
  private readonly records = new Map<string, StrikeRecord>();
  private readonly memoryMs: number;
  private readonly capacity: number;
  private readonly now: () => number;

  constructor(private readonly opts: StrikeBookOptions) {
    this.memoryMs = Math.max(opts.banMs, opts.memoryMs ?? 3_600_000);
    this.capacity = Math.max(1, opts.capacity ?? DEFAULT_CAPACITY);
    this.now = opts.now ?? Date.now;
  }

  /** Identities remembered (tests: the table stays bounded). */
  get size(): number { this.expire(); return this.records.size; }

  get banMs(): number { return this.opts.banMs; }

  /** ms until `identity` may connect again; 0 when it is not banned. */
  bannedFor(identity: string): number {
    this.expire();
    const r = this.records.get(identity);
    return r ? Math.max(0, r.bannedUntil - this.now()) : 0;
  }

  /** Strikes held by `identity` now (0 once banned: the ban is the penalty). */
  strikesOf(identity: string): number {
    this.expire();
    return this.records.get(identity)?.strikes ?? 0;
  }

  /**
   * Count a strike against `identity` (`expel`: straight to the limit). Returns the strikes it
   * reached and whether that banned it.
   */
  strike(identity: string, expel = false): { strikes: number; banned: boolean } {
    this.expire();
    const now = this.now();
    const r = this.records.get(identity) ?? { strikes: 0, lastAt: now, bannedUntil: 0 };
    r.strikes = expel ? Math.max(r.strikes + 1, this.opts.maxStrikes) : r.strikes + 1;
    r.lastAt = now;
    const reached = r.strikes;
    const banned = r.strikes >= this.opts.maxStrikes;
    if (banned) {
      r.bannedUntil = now + this.opts.banMs;
      r.strikes = 0;
    }
    // most recent last: the Map's order is the order of last activity
    this.records.delete(identity);
    this.records.set(identity, r);
    while (this.records.size > this.capacity) this.records.delete(this.records.keys().next().value as string);
    return { strikes: reached, banned };
  }

  /** Forget records idle for memoryMs (their bans, ≤ memoryMs long, are over). */
  private expire(): void {
    const limit = this.now() - this.memoryMs;
    for (const [k, r] of this.records) {
      if (r.lastAt > limit) break;
      this.records.delete(k);
    }
  }
}
