/**
 * One remote worker's WebSocket connection on the coordinator, with explicit states:
 *
 *   AWAITING_HELLO ──hello──▶ AWAITING_AUTH ──auth ok──▶ JOINED ──close──▶ CLOSED
 *          │                        │ auth fails: bye, CLOSE.AUTH          │
 *          └── bad version: bye, CLOSE.VERSION; too many bad frames: CLOSE.PROTOCOL_ERRORS ──┘
 *
 * Once JOINED, the connection is a WorkerLink of the scheduler (tasks out, results in); on close
 * its tasks in flight fail so the step requeues them. A watchdog drops a worker that is silent
 * for the heartbeat timeout.
 */
import type { RawData, WebSocket } from 'ws';
import type { RejectReason } from '../../events/index.js';
import { log } from '../../util/log.js';
import { verifyMac, newNonce } from '../auth.js';
import { ProtocolError, decodeFrame, encodeFrame, messageBytes } from '../codec.js';
import { CLOSE, MAX_CLOSE_REASON, MAX_WORKER_ID_LENGTH, type ConnectionLimits } from '../constants.js';
import { PROTOCOL_VERSION, type Frame, type ReplicaSpec, type ResultMsg, type TaskMsg } from '../contract.js';
import { LinkError, type WorkerLink } from './worker-link.js';

export type ConnectionState = 'AWAITING_HELLO' | 'AWAITING_AUTH' | 'JOINED' | 'CLOSED';

/** What a connection needs from the server that accepted it. */
export interface ConnectionHost {
  readonly spec: ReplicaSpec;
  readonly weights: Float32Array;
  /** weights version currently published */
  readonly version: number;
  readonly token: string | undefined;
  readonly limits: ConnectionLimits;
  /** largest frame accepted (bytes) */
  readonly maxPayload: number;
  /** a unique id for a joining worker */
  newId(name: string): string;
  joined(c: WsConnection): void;
  left(c: WsConnection): void;
  rejected(workerId: string, reason: RejectReason): void;
}

export class WsConnection implements WorkerLink {
  readonly transport = 'ws' as const;
  state: ConnectionState = 'AWAITING_HELLO';
  /** the worker id once joined ('' before) */
  id = '';
  private name = '';
  private readonly nonce = newNonce();
  private sent = 0;
  private received = 0;
  private errors = 0;
  private lastSeen = Date.now();
  /** weights version this worker has */
  private version = -1;
  private readonly pending = new Map<number, { resolve: (r: ResultMsg) => void; reject: (e: Error) => void }>();
  private readonly watchdog: NodeJS.Timeout;

  constructor(private readonly ws: WebSocket, readonly peer: string, private readonly host: ConnectionHost) {
    const limits = host.limits;
    const every = Math.min(limits.heartbeatMs, limits.heartbeatTimeoutMs);
    let lastTick = Date.now();
    this.watchdog = setInterval(() => {
      const now = Date.now();
      // our own event loop was blocked (evaluation, a long reduce): frames may be waiting unread,
      // so silence cannot be judged this round
      if (now - lastTick > 2 * every) this.lastSeen = Math.max(this.lastSeen, now - every);
      lastTick = now;
      if (now - this.lastSeen > limits.heartbeatTimeoutMs) {
        log.warn(`worker ${this.who}: no heartbeat for ${limits.heartbeatTimeoutMs} ms, dropping it`);
        ws.terminate();
      }
    }, every);
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('close', (code, reason) => this.onClose(code, reason));
    ws.on('error', (e: Error & { code?: string }) => this.onError(e));
  }

  /** The worker's id once joined, else its address. */
  get who(): string { return this.id || this.peer; }

  // --- WorkerLink (JOINED)

  run(task: TaskMsg): Promise<ResultMsg> {
    return new Promise<ResultMsg>((resolve, reject) => {
      if (this.ws.readyState !== this.ws.OPEN) { reject(new LinkError('disconnected', 'socket closed')); return; }
      this.pending.set(task.taskId, { resolve, reject });
      this.sendWeights(task.version);
      this.send(encodeFrame({ t: 'task', v: PROTOCOL_VERSION, ...task }));
    });
  }

  bytes() { return { sent: this.sent, received: this.received }; }

  kick(reason: string): void {
    try { this.send(encodeFrame({ t: 'bye', v: PROTOCOL_VERSION, reason })); } catch { /* closing anyway */ }
    this.ws.close(CLOSE.KICKED, reason.slice(0, MAX_CLOSE_REASON));
    this.failAll('disconnected', reason);
  }

  /** Send weights `version` unless the worker has them (`frame`: already encoded, shared by all). */
  sendWeights(version: number, frame?: Uint8Array): void {
    if (this.version === version) return;
    this.send(frame ?? encodeFrame({ t: 'weights', v: PROTOCOL_VERSION, version, weights: this.host.weights }));
    this.version = version;
  }

  // --- internals

  private send(bytes: Uint8Array): void {
    this.sent += bytes.byteLength;
    this.ws.send(bytes);
  }

  /** Say bye and close (refusals and protocol errors; counted bytes do not matter before joining). */
  private refuse(code: number, reason: string): void {
    try { this.ws.send(encodeFrame({ t: 'bye', v: PROTOCOL_VERSION, reason })); } catch { /* already closed */ }
    this.ws.close(code, reason.slice(0, MAX_CLOSE_REASON));
  }

  private protocolError(msg: string): void {
    this.errors++;
    this.host.rejected(this.who, 'protocol');
    log.warn(`worker ${this.who}: ${msg}`);
    if (this.errors >= this.host.limits.maxProtocolErrors) this.refuse(CLOSE.PROTOCOL_ERRORS, `too many protocol errors (${this.errors})`);
  }

  private failAll(reason: 'disconnected' | 'died', why: string): void {
    for (const p of this.pending.values()) p.reject(new LinkError(reason, why));
    this.pending.clear();
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    this.lastSeen = Date.now();
    const bytes = messageBytes(data);
    this.received += bytes.byteLength;
    if (!isBinary) { this.protocolError('text frame (frames are binary msgpack)'); return; }
    let f: Frame;
    try {
      f = decodeFrame(bytes);
    } catch (e) {
      if (e instanceof ProtocolError && e.kind === 'version') {
        log.warn(`worker ${this.peer} refused: ${e.message}`);
        this.host.rejected(this.peer, 'protocol');
        this.refuse(CLOSE.VERSION, `protocol version mismatch: coordinator speaks version ${PROTOCOL_VERSION}`);
        return;
      }
      this.protocolError((e as Error).message);
      return;
    }
    switch (f.t) {
      case 'hello':
        if (this.state !== 'AWAITING_HELLO') { this.protocolError('second hello'); return; }
        this.name = f.name || this.peer;
        this.state = 'AWAITING_AUTH';
        this.ws.send(encodeFrame({ t: 'challenge', v: PROTOCOL_VERSION, nonce: this.nonce, tokenRequired: Boolean(this.host.token) }));
        return;
      case 'auth':
        if (this.state !== 'AWAITING_AUTH') { this.protocolError('auth out of order'); return; }
        this.authenticate(f.mac);
        return;
      case 'heartbeat':
        return;
      case 'result':
        if (this.state !== 'JOINED') { this.protocolError('result before authentication'); return; }
        this.onResult(f);
        return;
      case 'bye':
        log.info(`worker ${this.who} left: ${f.reason}`);
        this.ws.close(CLOSE.NORMAL, 'bye');
        return;
      default:
        this.protocolError(`unexpected frame '${f.t}' from a worker`);
    }
  }

  private authenticate(mac: string): void {
    const token = this.host.token;
    if (token && !verifyMac(token, this.nonce, this.name, mac)) {
      log.warn(`worker ${this.peer} (${this.name}): authentication failed`);
      this.host.rejected(this.peer, 'auth');
      this.refuse(CLOSE.AUTH, 'authentication failed');
      return;
    }
    this.id = this.host.newId(this.name).slice(0, MAX_WORKER_ID_LENGTH);
    this.state = 'JOINED';
    this.send(encodeFrame({ t: 'welcome', v: PROTOCOL_VERSION, id: this.id, spec: this.host.spec, total: this.host.weights.length, heartbeatMs: this.host.limits.heartbeatMs }));
    this.sendWeights(this.host.version);
    log.info('worker joined', { id: this.id, peer: this.peer });
    this.host.joined(this);
  }

  /** A result frame arrived (already type-checked); matching and value checks are the step's. */
  private onResult(r: ResultMsg): void {
    const p = this.pending.get(r.taskId);
    if (!p) {
      this.host.rejected(this.id, 'stale');
      log.warn(`worker ${this.id}: result for unknown task ${r.taskId} (stale), ignored`);
      return;
    }
    this.pending.delete(r.taskId);
    p.resolve(r);
  }

  private onClose(code: number, reason: Buffer): void {
    clearInterval(this.watchdog);
    const wasJoined = this.state === 'JOINED';
    this.state = 'CLOSED';
    if (wasJoined) {
      this.failAll('disconnected', `socket closed (${code}${reason.length ? ' ' + reason.toString() : ''})`);
      this.host.left(this);
      log.info('worker left', { id: this.id, code });
    }
  }

  private onError(e: Error & { code?: string }): void {
    if (e.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
      this.host.rejected(this.who, 'protocol');
      log.warn(`worker ${this.who}: frame larger than ${this.host.maxPayload} bytes, disconnected`);
    } else {
      log.warn(`worker ${this.who}: ${e.message}`);
    }
  }
}
