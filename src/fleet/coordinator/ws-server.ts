/**
 * The coordinator's WebSocket endpoint for remote workers (protocol: ../contract.ts). It listens
 * (ws:// or wss://), authenticates each worker in the HTTP upgrade — before any WebSocket or frame
 * exists (../auth.ts) — turns each accepted socket into a WsConnection (./ws-connection.ts) that
 * joins the scheduler, publishes new weights to the joined workers, and says bye to all of them on
 * close.
 *
 * What an unauthenticated peer can cost: one HTTP request of at most 8 KiB of headers, sent within
 * 10 s, among at most 256 such connections at a time and 8 from one address; then a refusal
 * (status, a short reason), the socket is gone, and its address is turned away at accept for a
 * while — by the door process, which listens at the lowest priority and hands this process only
 * the connections it admits (./door.ts). A refused attempt is logged once per address a minute.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { broadcast, type TrainerObserver } from '../../events/index.js';
import { UserError } from '../../util/errors.js';
import { getLogFormat, log } from '../../util/log.js';
import { FrameSeal, HEADER, NO_AUTH, UpgradeVerifier, newNonce, sessionKeys, type Refusal } from '../auth.js';
import { encodeFrame } from '../codec.js';
import { DEFAULT_LIMITS, MAX_WORKER_ID_LENGTH, coordinatorMaxPayload, type ConnectionLimits } from '../constants.js';
import { PROTOCOL_VERSION, type ReplicaSpec } from '../contract.js';
import { FrontDoor, peerKey } from './door.js';
import type { Scheduler } from './scheduler.js';
import { WsConnection, type ConnectionHost } from './ws-connection.js';

export interface RemoteOptions {
  host: string;
  port: number;
  /** shared secret workers authenticate with (../auth.ts); without it only loopback is allowed */
  token?: string;
  /** listen on a non-loopback --host without a token (anyone who reaches the port can join) */
  insecure?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  /** heartbeat period/timeout and protocol-error limit (tests shorten them) */
  tuning?: Partial<ConnectionLimits>;
}

/** What the server needs from the coordinator. */
export interface FleetView {
  readonly spec: ReplicaSpec;
  readonly weights: Float32Array;
  readonly version: number;
  readonly scheduler: Scheduler;
}

export interface RemoteServer {
  /** the bound port (useful with port 0) */
  readonly port: number;
  /** tell connected workers the new weights */
  publish(version: number): void;
  /** bytes queued for joined workers and not yet handed to the OS (backpressure) */
  queuedBytes(): number;
  /** say bye to every worker and stop listening */
  close(reason: string): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export async function startWsServer(fleet: FleetView, opts: RemoteOptions, observers: readonly TrainerObserver[]): Promise<RemoteServer> {
  const limits: ConnectionLimits = { ...DEFAULT_LIMITS, ...opts.tuning };
  const maxPayload = coordinatorMaxPayload(fleet.weights.length, fleet.spec.model.vocab_size);
  const host = opts.host;
  if (!opts.token && !LOOPBACK.has(host)) {
    if (!opts.insecure) throw new UserError(`--host ${host} without --token-file: any machine that reaches the port could join and send gradients; give --token-file (openssl rand -hex 32 > token.txt), or --insecure on a network you trust`);
    log.warn(`--insecure: listening on ${host} without authentication; anyone who reaches the port can join`);
  } else if (!opts.token) {
    log.info('no --token-file: listening on loopback only, workers connect without authentication');
  }
  if (Boolean(opts.tlsCert) !== Boolean(opts.tlsKey)) throw new UserError('--tls-cert and --tls-key must be given together');
  const read = (f: string, what: string) => { try { return readFileSync(f); } catch (e) { throw new UserError(`${f}: cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? String(e)})`); } };
  // node:http answers plain requests (426) and hands upgrades to us; ws only frames accepted sockets
  const tls = opts.tlsCert && opts.tlsKey;
  const server: Server = tls
    ? createHttpsServer({ cert: read(opts.tlsCert!, '--tls-cert'), key: read(opts.tlsKey!, '--tls-key'), maxHeaderSize: 8192 })
    : createHttpServer({ maxHeaderSize: 8192 });
  const wss = new WebSocketServer({ noServer: true, maxPayload, perMessageDeflate: false });
  const verifier = new UpgradeVerifier(opts.token, PROTOCOL_VERSION);
  const joined = new Set<WsConnection>();
  let seq = 0;
  const connectionHost: ConnectionHost = {
    spec: fleet.spec,
    codec: fleet.scheduler.codec,
    segments: fleet.scheduler.segments,
    get weights() { return fleet.weights; },
    get version() { return fleet.version; },
    limits,
    maxPayload,
    joined: (c) => { joined.add(c); fleet.scheduler.addLink(c); },
    left: (c) => { if (joined.delete(c)) fleet.scheduler.removeLink(c.id); },
    rejected: (workerId, reason) => broadcast(observers, 'onRejected', { workerId, reason }),
    unknownResult: (c) => fleet.scheduler.strikeLink(c, 'unassigned'),
  };

  // the front door, in its own low-priority process: caps, deadline and penalties before node:http
  // sees a connection (./door.ts)
  let door: FrontDoor;
  try {
    door = await FrontDoor.open(host, opts.port, limits, (socket) => server.emit('connection', socket));
  } catch (e) {
    throw new UserError(`--port ${opts.port}: cannot listen on ${host} (${(e as Error).message})`);
  }
  server.on('clientError', (_e, socket) => {
    // a malformed or oversized request (node:http would answer 400/431): an offence, no answer
    void door.penalise((socket as Duplex & { remoteAddress?: string }).remoteAddress ?? '?').then(() => socket.destroy());
  });
  server.on('request', (req, res) => {
    door.decided(peerKey(req.socket));
    void door.penalise(req.socket.remoteAddress ?? '?').then(() => {
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' }).end('this port speaks the vilm worker protocol (WebSocket)\n');
    });
  });

  const warned = new Map<string, number>();
  const refuse = (socket: Duplex, peer: string, r: Refusal) => {
    const now = Date.now();
    const addr = peer.slice(0, peer.lastIndexOf(':'));
    if ((warned.get(addr) ?? 0) < now) {
      if (warned.size > 10_000) warned.clear();
      warned.set(addr, now + 60_000);
      log.warn(`refused a worker from ${addr}: ${r.reason}`);
    }
    if (r.status === 401) broadcast(observers, 'onRejected', { workerId: addr, reason: 'auth' });
    else broadcast(observers, 'onRejected', { workerId: addr, reason: 'protocol' });
    // answered once the door holds the penalty (./door.ts)
    void door.penalise(addr).then(() => {
      socket.end(`HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? ''}\r\n${HEADER.refused}: ${r.reason}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  };

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const peer = peerKey(req.socket);
    door.decided(peer);
    socket.on('error', () => undefined);
    const checked = verifier.check(req.headers);
    if ('status' in checked) { refuse(socket, peer, checked); return; }
    const banned = fleet.scheduler.bannedFor(checked.name);
    if (banned > 0) { refuse(socket, peer, { status: 403, reason: `worker name banned for another ${Math.ceil(banned / 1000)} s after rejected results` }); return; }
    const cNonce = newNonce();
    const keys = opts.token ? sessionKeys(opts.token, 'coordinator', checked.nonce, cNonce) : undefined;
    answers.set(req, cNonce);
    wss.handleUpgrade(req, socket, head, (ws) => {
      const id = `ws-${++seq}-${checked.name}`.slice(0, MAX_WORKER_ID_LENGTH);
      new WsConnection(ws, { id, name: checked.name, peer, out: new FrameSeal(keys?.send ?? null), in: new FrameSeal(keys?.recv ?? null) }, connectionHost);
    });
  });
  // the 101 answer carries the coordinator's nonce and whether it authenticates
  const answers = new WeakMap<IncomingMessage, string>();
  wss.on('headers', (headers, req) => {
    headers.push(`${HEADER.nonce}: ${answers.get(req) ?? ''}`, `${HEADER.auth}: ${opts.token ? 'hmac' : NO_AUTH}`);
  });

  const port = door.port;
  log.info(`listening for workers on ${tls ? 'wss' : 'ws'}://${host}:${port}`, { auth: opts.token ? 'hmac' : 'none' });
  // machine-readable line for scripts/tests that start with --port 0 (a JSON record under --log-format json)
  if (getLogFormat() === 'json') log.info('vilm-coordinator-port', { port });
  else process.stderr.write(`vilm-coordinator-port ${port}\n`);

  return {
    port,
    publish(version: number) {
      if (joined.size === 0) return;
      const frame = encodeFrame({ t: 'weights', v: PROTOCOL_VERSION, version, weights: fleet.weights });
      for (const c of joined) c.sendWeights(version, frame);
    },
    queuedBytes() {
      let n = 0;
      for (const c of joined) n += c.queued;
      return n;
    },
    async close(reason: string) {
      for (const c of joined) c.kick(reason);
      // let the byes and close frames go out (workers close at once), then cut whoever is left
      const closed = [...wss.clients].map((c) => new Promise<void>((r) => { if (c.readyState === c.CLOSED) r(); else c.once('close', () => r()); }));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(closed), new Promise<void>((r) => { timer = setTimeout(r, 2000); })]);
      clearTimeout(timer);
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      await door.close();
      server.closeAllConnections();
    },
  };
}
