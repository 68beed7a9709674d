/**
 * The coordinator's WebSocket endpoint for remote workers (protocol: src/dist/protocol.ts). Each
 * authenticated connection becomes one WorkerLink of the scheduler; a connection that closes,
 * goes silent or keeps sending bad frames is dropped and its task requeued.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import type { TrainerObserver, RejectReason } from '../train/events.js';
import { UserError } from '../util/errors.js';
import { log } from '../util/log.js';
import type { FleetView, RemoteOptions, RemoteServer } from './coordinator.js';
import {
  PROTOCOL_VERSION, ProtocolError, coordinatorMaxPayload, decodeFrame, encodeFrame, verifyMac, type Frame,
} from './protocol.js';
import { LinkError, type WorkerLink } from './scheduler.js';
import type { ResultMsg, TaskMsg } from './task.js';

export interface WsServerTuning {
  heartbeatMs: number;
  /** silence after which a worker is dropped */
  heartbeatTimeoutMs: number;
  /** protocol errors (bad frames) before disconnecting */
  maxProtocolErrors: number;
}

const DEFAULT_TUNING: WsServerTuning = { heartbeatMs: 2000, heartbeatTimeoutMs: 120_000, maxProtocolErrors: 3 };

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

class WsLink implements WorkerLink {
  readonly transport = 'ws' as const;
  sent = 0;
  received = 0;
  /** weights version this worker has */
  version = -1;
  private pending = new Map<number, { resolve: (r: ResultMsg) => void; reject: (e: Error) => void }>();
  constructor(readonly id: string, private readonly ws: WebSocket, private readonly fleet: FleetView) {}

  send(bytes: Uint8Array): void {
    this.sent += bytes.byteLength;
    this.ws.send(bytes);
  }

  sendWeights(version: number, frame?: Uint8Array): void {
    if (this.version === version) return;
    this.send(frame ?? encodeFrame({ t: 'weights', v: PROTOCOL_VERSION, version, weights: this.fleet.weights }));
    this.version = version;
  }

  run(task: TaskMsg): Promise<ResultMsg> {
    return new Promise<ResultMsg>((resolve, reject) => {
      if (this.ws.readyState !== this.ws.OPEN) { reject(new LinkError('disconnected', 'socket closed')); return; }
      this.pending.set(task.taskId, { resolve, reject });
      this.sendWeights(task.version);
      this.send(encodeFrame({ t: 'task', v: PROTOCOL_VERSION, ...task }));
    });
  }

  /** A result frame arrived (already type-checked); matching and value checks are the scheduler's. */
  onResult(r: ResultMsg): boolean {
    const p = this.pending.get(r.taskId);
    if (!p) return false;
    this.pending.delete(r.taskId);
    p.resolve(r);
    return true;
  }

  failAll(reason: 'disconnected' | 'died', why: string): void {
    for (const p of this.pending.values()) p.reject(new LinkError(reason, why));
    this.pending.clear();
  }

  bytes() { return { sent: this.sent, received: this.received }; }

  kick(reason: string): void {
    try { this.send(encodeFrame({ t: 'bye', v: PROTOCOL_VERSION, reason })); } catch { /* closing anyway */ }
    this.ws.close(4002, reason.slice(0, 120));
    this.failAll('disconnected', reason);
  }
}

export async function startWsServer(fleet: FleetView, opts: RemoteOptions, observers: TrainerObserver[], tuning: Partial<WsServerTuning> = {}): Promise<RemoteServer> {
  const tune = { ...DEFAULT_TUNING, ...tuning };
  const total = fleet.weights.length;
  const maxPayload = coordinatorMaxPayload(total, fleet.config.model.vocab_size);
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
  const emit = (f: (o: TrainerObserver) => void) => { for (const o of observers) { try { f(o); } catch { /* observers never break the server */ } } };
  const reject = (workerId: string, reason: RejectReason) => emit((o) => o.onRejected?.({ workerId, reason }));

  const wss = https
    ? new WebSocketServer({ server: https, maxPayload })
    : new WebSocketServer({ host, port: opts.port, maxPayload });
  const links = new Set<WsLink>();
  let seq = 0;

  wss.on('connection', (ws, req) => {
    const peer = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const nonce = randomBytes(32).toString('hex');
    let name = '';
    let link: WsLink | undefined;
    let errors = 0;
    let lastSeen = Date.now();
    let received = 0;

    const close = (code: number, reason: string) => {
      try { ws.send(encodeFrame({ t: 'bye', v: PROTOCOL_VERSION, reason })); } catch { /* already closed */ }
      ws.close(code, reason.slice(0, 120));
    };
    const protocolError = (msg: string) => {
      errors++;
      reject(link?.id ?? peer, 'protocol');
      log.warn(`worker ${link?.id ?? peer}: ${msg}`);
      if (errors >= tune.maxProtocolErrors) close(4003, `too many protocol errors (${errors})`);
    };

    const every = Math.min(tune.heartbeatMs, tune.heartbeatTimeoutMs);
    let lastTick = Date.now();
    const watchdog = setInterval(() => {
      const now = Date.now();
      // our own event loop was blocked (evaluation, a long reduce): frames may be waiting unread,
      // so silence cannot be judged this round
      if (now - lastTick > 2 * every) lastSeen = Math.max(lastSeen, now - every);
      lastTick = now;
      if (now - lastSeen > tune.heartbeatTimeoutMs) {
        log.warn(`worker ${link?.id ?? peer}: no heartbeat for ${tune.heartbeatTimeoutMs} ms, dropping it`);
        ws.terminate();
      }
    }, every);

    ws.on('message', (data, isBinary) => {
      lastSeen = Date.now();
      const bytes = toBytes(data);
      received += bytes.byteLength;
      if (link) link.received += bytes.byteLength;
      if (!isBinary) { protocolError('text frame (frames are binary msgpack)'); return; }
      let f: Frame;
      try {
        f = decodeFrame(bytes);
      } catch (e) {
        if (e instanceof ProtocolError && e.kind === 'version') {
          log.warn(`worker ${peer} refused: ${e.message}`);
          reject(peer, 'protocol');
          close(4000, `protocol version mismatch: coordinator speaks version ${PROTOCOL_VERSION}`);
          return;
        }
        protocolError((e as Error).message);
        return;
      }
      switch (f.t) {
        case 'hello':
          if (name) { protocolError('second hello'); return; }
          name = f.name || peer;
          ws.send(encodeFrame({ t: 'challenge', v: PROTOCOL_VERSION, nonce, tokenRequired: Boolean(opts.token) }));
          return;
        case 'auth': {
          if (!name || link) { protocolError('auth out of order'); return; }
          if (opts.token && !verifyMac(opts.token, nonce, name, f.mac)) {
            log.warn(`worker ${peer} (${name}): authentication failed`);
            reject(peer, 'auth');
            close(4001, 'authentication failed');
            return;
          }
          link = new WsLink(`ws-${++seq}-${name}`.slice(0, 64), ws, fleet);
          link.received = received;
          links.add(link);
          link.send(encodeFrame({ t: 'welcome', v: PROTOCOL_VERSION, id: link.id, spec: fleet.spec, total, heartbeatMs: tune.heartbeatMs }));
          link.sendWeights(fleet.version);
          log.info('worker joined', { id: link.id, peer });
          fleet.scheduler.addLink(link);
          return;
        }
        case 'heartbeat':
          return;
        case 'result':
          if (!link) { protocolError('result before authentication'); return; }
          if (!link.onResult(f)) { reject(link.id, 'stale'); log.warn(`worker ${link.id}: result for unknown task ${f.taskId} (stale), ignored`); }
          return;
        case 'bye':
          log.info(`worker ${link?.id ?? peer} left: ${f.reason}`);
          ws.close(1000, 'bye');
          return;
        default:
          protocolError(`unexpected frame '${f.t}' from a worker`);
      }
    });
    ws.on('close', (code, reason) => {
      clearInterval(watchdog);
      if (link) {
        links.delete(link);
        link.failAll('disconnected', `socket closed (${code}${reason.length ? ' ' + reason.toString() : ''})`);
        fleet.scheduler.removeLink(link.id);
        log.info('worker left', { id: link.id, code });
      }
    });
    ws.on('error', (e: Error & { code?: string }) => {
      if (e.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
        reject(link?.id ?? peer, 'protocol');
        log.warn(`worker ${link?.id ?? peer}: frame larger than ${maxPayload} bytes, disconnected`);
      } else {
        log.warn(`worker ${link?.id ?? peer}: ${e.message}`);
      }
    });
  });

  await new Promise<void>((resolve, rejectP) => {
    const onErr = (e: NodeJS.ErrnoException) => rejectP(new UserError(`--port ${opts.port}: cannot listen on ${host} (${e.code ?? e.message})`));
    if (https) { https.once('error', onErr); https.listen(opts.port, host, () => resolve()); }
    else { wss.once('error', onErr); wss.once('listening', () => resolve()); }
  });
  const addr = (https ? https.address() : wss.address());
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  log.info(`listening for workers on ${https ? 'wss' : 'ws'}://${host}:${port}`, { auth: opts.token ? 'hmac' : 'none' });
  // machine-readable line for scripts/tests that start with --port 0
  process.stderr.write(`vilm-coordinator-port ${port}\n`);

  return {
    port,
    publish(version: number) {
      if (links.size === 0) return;
      const frame = encodeFrame({ t: 'weights', v: PROTOCOL_VERSION, version, weights: fleet.weights });
      for (const l of links) l.sendWeights(version, frame);
    },
    async close(reason: string) {
      for (const l of links) l.kick(reason);
      await new Promise<void>((r) => wss.close(() => r()));
      for (const c of wss.clients) c.terminate();
      if (https) await new Promise<void>((r) => https!.close(() => r()));
    },
  };
}
