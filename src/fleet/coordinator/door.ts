/**
 * The worker port's front door: it decides, before node:http allocates anything for a connection,
 * whether the connection may even present its upgrade request.
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
 * The door runs in its own process (./door-process.ts) at the lowest priority (nice 19): accepting
 * and turning away a connection costs ~50–120 µs of CPU, and a flood of them would otherwise take
 * the coordinator's main thread — the thread that runs the optimizer, answers /healthz and reads
 * heartbeats. In its own process the flood gets only the CPU that training leaves idle, and what it
 * cannot take waits in (and overflows) the kernel's accept queue. Admitted sockets, paused and unread,
 * are handed to this process over the IPC channel (Node's documented `subprocess.send(msg, socket)`)
 * and to node:http (or https) with `emit('connection')`, the documented way to hand it a socket it
 * did not accept. The auth deadline and the decisions stay here; the door process keeps the counts
 * and the penalties:
 *
 *   door process → coordinator   { t: 'admit', from } + the socket; { t: 'penalised' } (each penalise, in order);
 *                                { t: 'listening', port }; { t: 'error', code }
 *   coordinator → door process   { t: 'listen', host, port, limits }; { t: 'release', from }; { t: 'penalise', from }
 */
import { fork, type ChildProcess } from 'node:child_process';
import type net from 'node:net';
import { fileURLToPath } from 'node:url';
import { log } from '../../util/log.js';
import type { ConnectionLimits } from '../constants.js';

/** Longest penalty of one address. */
export const MAX_PENALTY_MS = 60_000;
/** Addresses remembered (penalised or with connections pending); the oldest are forgotten first. */
const MAX_ADDRESSES = 10_000;

/** A TCP connection's key: the peer's address and port (the same on its TLS socket). */
export function peerKey(s: { remoteAddress?: string; remotePort?: number }): string {
  return `${s.remoteAddress ?? '?'}:${s.remotePort ?? '?'}`;
}

export type DoorLimits = Pick<ConnectionLimits, 'maxPending' | 'maxPendingPerAddress' | 'penaltyMs'>;

export type DoorCommand =
  | { t: 'listen'; host: string; port: number; limits: DoorLimits }
  | { t: 'release'; from: string }
  | { t: 'penalise'; from: string };
export type DoorReport = { t: 'admit'; from: string } | { t: 'penalised' } | { t: 'listening'; port: number } | { t: 'error'; code: string };

/** The door's bookkeeping: pending connections per address, and penalties. */
export class DoorPolicy {
  private pending = 0;
  private readonly pendingFrom = new Map<string, number>();
  /** address → penalised until (ms) */
  private readonly penalties = new Map<string, number>();

  constructor(private readonly limits: DoorLimits) {}

  /** A new connection from `from`: true when it may present its upgrade (it then counts as pending until released). */
  admit(from: string, now = Date.now()): boolean {
    if (this.penalisedFor(from, now) > 0) return false;
    const mine = this.pendingFrom.get(from) ?? 0;
    if (this.pending >= this.limits.maxPending || mine >= this.limits.maxPendingPerAddress) {
      if (mine >= this.limits.maxPendingPerAddress) this.penalise(from, now);
      return false;
    }
    this.pending++;
    this.pendingFrom.set(from, mine + 1);
    return true;
  }

  /** An admitted connection from `from` presented its upgrade or is gone. */
  release(from: string): void {
    const left = this.pendingFrom.get(from);
    if (left === undefined) return;
    this.pending--;
    if (left > 1) this.pendingFrom.set(from, left - 1); else this.pendingFrom.delete(from);
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

/** The door process's entry: compiled (lib/) it is plain JavaScript; from the sources it needs the tsx loader. */
function doorEntry(): { file: string; execArgv: string[] } {
  const compiled = import.meta.url.endsWith('.js');
  const file = fileURLToPath(new URL(compiled ? './door-process.js' : './door-process.ts', import.meta.url));
  return { file, execArgv: compiled ? [] : ['--import', import.meta.resolve('tsx')] };
}

/** The coordinator's side of the door: starts the door process and keeps each admitted connection's deadline. */
export class FrontDoor {
  /** admitted connections not yet decided, by peerKey; `done` releases one once (on its decision or close) */
  private readonly undecided = new Map<string, { socket: net.Socket; done: () => void }>();
  private closing = false;
  /** penalties sent and not yet acknowledged, in order (the IPC channel keeps order) */
  private readonly acks: (() => void)[] = [];

  private constructor(private readonly child: ChildProcess, readonly port: number) {}

  /**
   * Listen on host:port through a door process; `admit` gets each admitted socket. Rejects with the
   * listen error's code (EADDRINUSE, EACCES, …) as the message.
   */
  static async open(host: string, port: number, limits: ConnectionLimits, admit: (socket: net.Socket) => void): Promise<FrontDoor> {
    const entry = doorEntry();
    const child = fork(entry.file, [], { execArgv: entry.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
    const door = await new Promise<FrontDoor>((resolve, reject) => {
      const failed = (why: string) => { child.kill(); reject(new Error(why)); };
      child.once('error', (e) => failed(e.message));
      child.once('exit', (code, signal) => failed(`the door process exited (${signal ?? code}) before listening`));
      child.once('message', (m: DoorReport) => {
        child.removeAllListeners('exit');
        child.removeAllListeners('error');
        if (m.t === 'listening') resolve(new FrontDoor(child, m.port));
        else failed(m.t === 'error' ? m.code : 'the door process said something else first');
      });
      const listen: DoorCommand = { t: 'listen', host, port, limits: { maxPending: limits.maxPending, maxPendingPerAddress: limits.maxPendingPerAddress, penaltyMs: limits.penaltyMs } };
      child.send(listen);
    });
    child.on('message', (m: DoorReport, socket?: net.Socket) => {
      if (m.t === 'penalised') door.acks.shift()?.();
      else if (m.t === 'admit' && socket) door.admitted(socket, m.from, limits.authDeadlineMs, admit);
    });
    child.on('error', () => undefined); // a failed send: its callback has it; the child's exit is logged below
    child.on('exit', (code, signal) => {
      for (const ack of door.acks.splice(0)) ack();
      if (!door.closing) log.error(`the worker port's door process exited (${signal ?? code}): remote workers can no longer join this run; the ones joined stay`);
    });
    // the door never keeps the coordinator alive; it exits when the coordinator does (its IPC channel closes)
    child.unref();
    child.channel?.unref();
    return door;
  }

  private admitted(socket: net.Socket, from: string, deadlineMs: number, admit: (socket: net.Socket) => void): void {
    socket.on('error', () => undefined);
    const key = peerKey(socket);
    const deadline = setTimeout(() => { void this.penalise(from).then(() => socket.destroy()); }, deadlineMs);
    let counted = true;
    const done = () => {
      if (!counted) return;
      counted = false;
      clearTimeout(deadline);
      this.undecided.delete(key);
      this.tell({ t: 'release', from });
    };
    this.undecided.set(key, { socket, done });
    socket.once('close', done);
    admit(socket);
  }

  /** The connection `key` presented its upgrade: it no longer counts as pending. */
  decided(key: string): void {
    this.undecided.get(key)?.done();
  }

  /**
   * One more offence of `address` before authenticating. Resolves once the door process holds the
   * penalty: answer or close the offending connection only then, or the peer's next attempt can
   * arrive at the door before the penalty does (the channel and the port are read in no set order).
   */
  penalise(address: string): Promise<void> {
    if (!this.child.connected) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.acks.push(resolve);
      this.tell({ t: 'penalise', from: address });
    });
  }

  private tell(c: DoorCommand): void {
    if (this.child.connected) this.child.send(c, (e: Error | null) => undefined);
  }

  /** Stop listening: the door process exits. */
  async close(): Promise<void> {
    this.closing = true;
    // connections that have not presented their upgrade are not workers: closed with the door
    for (const { socket } of [...this.undecided.values()]) socket.destroy();
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { this.child.kill('SIGKILL'); resolve(); }, 2000);
      this.child.once('exit', () => { clearTimeout(timer); resolve(); });
      if (this.child.connected) this.child.disconnect(); else this.child.kill();
    });
  }
}
