/**
 * The coordinator's WebSocket endpoint for remote workers (protocol: ../contract.ts). It listens
 * (ws:// or wss://), turns each accepted socket into a WsConnection (./ws-connection.ts) that joins
 * the scheduler once authenticated, publishes new weights to every joined worker, and says bye
 * to all of them on close.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { WebSocketServer } from 'ws';
import { broadcast, type TrainerObserver } from '../../events/index.js';
import { UserError } from '../../util/errors.js';
import { getLogFormat, log } from '../../util/log.js';
import { encodeFrame } from '../codec.js';
import { DEFAULT_LIMITS, coordinatorMaxPayload, type ConnectionLimits } from '../constants.js';
import { PROTOCOL_VERSION, type ReplicaSpec } from '../contract.js';
import type { Scheduler } from './scheduler.js';
import { WsConnection, type ConnectionHost } from './ws-connection.js';

export interface RemoteOptions {
  host: string;
  port: number;
  /** shared secret for the HMAC challenge–response; without it only 127.0.0.1 is allowed */
  token?: string;
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
  /** say bye to every worker and stop listening */
  close(reason: string): Promise<void>;
}

export async function startWsServer(fleet: FleetView, opts: RemoteOptions, observers: readonly TrainerObserver[]): Promise<RemoteServer> {
  const limits: ConnectionLimits = { ...DEFAULT_LIMITS, ...opts.tuning };
  const maxPayload = coordinatorMaxPayload(fleet.weights.length, fleet.spec.model.vocab_size);
  let host = opts.host;
  if (!opts.token && host !== '127.0.0.1' && host !== 'localhost' && host !== '::1') {
    log.warn(`no --token-file: remote workers cannot authenticate, so the coordinator listens on 127.0.0.1 only (not ${host})`);
    host = '127.0.0.1';
  } else if (!opts.token) {
    log.info('no --token-file: listening on 127.0.0.1 only, workers connect without authentication');
  }
  if (Boolean(opts.tlsCert) !== Boolean(opts.tlsKey)) throw new UserError('--tls-cert and --tls-key must be given together');
  let https: HttpsServer | undefined;
  if (opts.tlsCert && opts.tlsKey) {
    const read = (f: string, what: string) => { try { return readFileSync(f); } catch (e) { throw new UserError(`${f}: cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? String(e)})`); } };
    https = createHttpsServer({ cert: read(opts.tlsCert, '--tls-cert'), key: read(opts.tlsKey, '--tls-key') });
  }

  const wss = https
    ? new WebSocketServer({ server: https, maxPayload })
    : new WebSocketServer({ host, port: opts.port, maxPayload });
  const joined = new Set<WsConnection>();
  let seq = 0;
  const connectionHost: ConnectionHost = {
    spec: fleet.spec,
    get weights() { return fleet.weights; },
    get version() { return fleet.version; },
    token: opts.token,
    limits,
    maxPayload,
    newId: (name) => `ws-${++seq}-${name}`,
    joined: (c) => { joined.add(c); fleet.scheduler.addLink(c); },
    left: (c) => { joined.delete(c); fleet.scheduler.removeLink(c.id); },
    rejected: (workerId, reason) => broadcast(observers, 'onRejected', { workerId, reason }),
  };

  wss.on('connection', (ws, req) => {
    const peer = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    new WsConnection(ws, peer, connectionHost);
  });

  await new Promise<void>((resolve, rejectP) => {
    const onErr = (e: NodeJS.ErrnoException) => rejectP(new UserError(`--port ${opts.port}: cannot listen on ${host} (${e.code ?? e.message})`));
    if (https) { https.once('error', onErr); https.listen(opts.port, host, () => resolve()); }
    else { wss.once('error', onErr); wss.once('listening', () => resolve()); }
  });
  const addr = (https ? https.address() : wss.address());
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  log.info(`listening for workers on ${https ? 'wss' : 'ws'}://${host}:${port}`, { auth: opts.token ? 'hmac' : 'none' });
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
    async close(reason: string) {
      for (const c of joined) c.kick(reason);
      await new Promise<void>((r) => wss.close(() => r()));
      for (const c of wss.clients) c.terminate();
      if (https) await new Promise<void>((r) => https!.close(() => r()));
    },
  };
}
