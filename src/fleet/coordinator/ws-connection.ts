/**
 * One remote worker's WebSocket connection on the coordinator. It exists only after the HTTP
 * upgrade authenticated the worker (./ws-server.ts, ../auth.ts), so it starts JOINED:
 *
 *   JOINED ──close / bye / kick / bad MAC / too many bad frames / silence / not reading──▶ CLOSED
 *
 * It sends `welcome` (sealed: the coordinator's proof of the token) and the weights, then is a
 * WorkerLink of the scheduler (tasks out, results in); on close its tasks in flight fail so the
 * step requeues them. Every frame in is opened (MAC and sequence number) before it is decoded.
 *
 * Memory stays bounded whatever the worker does: new weights are pushed only to a worker that has
 * read everything it was sent (others get them with their next task), a free worker with more
 * than a frame unread is dropped, and so is one that has not read for the heartbeat timeout.
 */
import type { RawData, WebSocket } from 'ws';
import type { RejectReason } from '../../events/index.js';
import { log } from '../../util/log.js';
import { FrameAuthError, FrameSeal } from '../auth.js';
import { ProtocolError, WORKER_FRAME_DEPTH, decodeFrame, encodeFrame, messageBytes } from '../codec.js';
import { CLOSE, MAX_CLOSE_REASON, WS_TASK_DEPTH, type ConnectionLimits } from '../constants.js';
import { PROTOCOL_VERSION, type Frame, type ReplicaSpec, type ResultMsg, type TaskMsg } from '../contract.js';
import { LinkError, type WorkerLink } from './worker-link.js';
import { decodeNode, type GradCodecName } from '../grad-codec.js';

export type ConnectionState = 'JOINED' | 'CLOSED';

/** What a connection needs from the server that accepted it. */
export interface ConnectionHost {
  readonly spec: ReplicaSpec;
  /** the run's gradient codec: which result frame is accepted (`result` for fp32, `result16` for fp16) */
  readonly codec: GradCodecName;
  /** the rest's tensor boundaries, to decode `result16` */
  readonly segments: Int32Array;
  readonly weights: Float32Array;
  /** weights version currently published */
  readonly version: number;
  readonly limits: ConnectionLimits;
  /** largest frame accepted (bytes) */
  readonly maxPayload: number;
  joined(c: WsConnection): void;
  left(c: WsConnection): void;
  rejected(workerId: string, reason: RejectReason): void;
  /** a result for a task this worker was never given (or no longer has): a strike */
  unknownResult(c: WsConnection): void;
}

/** The authenticated peer: its id, its name (the identity strikes follow) and the frame seals. */
export interface Session {
  id: string;
  name: string;
  peer: string;
  /** seals frames to the worker / opens frames from it (no keys without a token) */
  out: FrameSeal;
  in: FrameSeal;
}

export class WsConnection implements WorkerLink {
  readonly transport = 'ws' as const;
  /** the worker computes its tasks in order: its next one waits there, not here (WorkerLink.depth) */
  readonly depth = WS_TASK_DEPTH;
  readonly id: string;
  readonly identity: string;
  readonly peer: string;
  state: ConnectionState = 'JOINED';
  private sent = 0;
  private received = 0;
  private errors = 0;
  private lastSeen = Date.now();
  /** last time everything sent had been handed to the OS (the worker was reading) */
  private lastDrained = Date.now();
  /** weights version this worker has (or has queued) */
  private version = -1;
  private readonly pending = new Map<number, { resolve: (r: ResultMsg) => void; reject: (e: Error) => void; frameBytes: number }>();
  private readonly watchdog: NodeJS.Timeout;

  constructor(private readonly ws: WebSocket, private readonly session: Session, private readonly host: ConnectionHost) {
    this.id = session.id;
    this.identity = session.name;
    this.peer = session.peer;
    const limits = host.limits;
    const every = Math.min(limits.heartbeatMs, limits.heartbeatTimeoutMs);
    let lastTick = Date.now();
    this.watchdog = setInterval(() => {
      const now = Date.now();
      // our own event loop was blocked (a long reduce): frames may be waiting unread, so silence
      // cannot be judged this round
      if (now - lastTick > 2 * every) { this.lastSeen = Math.max(this.lastSeen, now - every); this.lastDrained = Math.max(this.lastDrained, now - every); }
      lastTick = now;
      if (ws.bufferedAmount === 0) this.lastDrained = now;
      if (now - this.lastSeen > limits.heartbeatTimeoutMs) {
        log.warn(`worker ${this.id}: no heartbeat for ${limits.heartbeatTimeoutMs} ms, dropping it`);
        ws.terminate();
      } else if (now - this.lastDrained > limits.heartbeatTimeoutMs) {
        log.warn(`worker ${this.id}: has not read what it was sent for ${limits.heartbeatTimeoutMs} ms (${ws.bufferedAmount} bytes waiting), dropping it`);
        ws.terminate();
      }
    }, every);
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('close', (code) => this.onClose(code));
    ws.on('error', (e: Error & { code?: string }) => this.onError(e));
    this.send(encodeFrame({ t: 'welcome', v: PROTOCOL_VERSION, id: this.id, spec: host.spec, total: host.weights.length, heartbeatMs: limits.heartbeatMs }));
    this.sendWeights(host.version);
    log.info('worker joined', { id: this.id, peer: this.peer });
    host.joined(this);
  }

  // --- WorkerLink

  run(task: TaskMsg): Promise<ResultMsg> {
    return new Promise<ResultMsg>((resolve, reject) => {
      if (this.ws.readyState !== this.ws.OPEN) { reject(new LinkError('disconnected', 'socket closed')); return; }
      // a worker has read all but its tasks in flight and one weights frame; more still unread
      // means it stopped reading: drop it rather than queue more
      let unread = this.host.weights.byteLength + 4096;
      for (const p of this.pending.values()) unread += p.frameBytes;
      if (this.ws.bufferedAmount > unread) {
        const why = `not reading (${this.ws.bufferedAmount} bytes unsent)`;
        log.warn(`worker ${this.id}: ${why}, dropping it`);
        this.kick(why);
        reject(new LinkError('disconnected', why));
        return;
      }
      this.sendWeights(task.version, undefined, true);
      const frame = encodeFrame({ t: 'task', v: PROTOCOL_VERSION, ...task });
      this.pending.set(task.taskId, { resolve, reject, frameBytes: frame.byteLength + 4096 });
      this.send(frame);
    });
  }

  bytes() { return { sent: this.sent, received: this.received }; }

  /** Bytes handed to ws but not yet to the OS (backpressure). */
  get queued(): number { return this.ws.bufferedAmount; }

  kick(reason: string): void {
    this.close(CLOSE.KICKED, reason);
    this.drop(reason);
  }

  /**
   * Send weights `version` unless the worker has them (`frame`: already encoded, shared by all).
   * A push after a step (`force` false) waits for a worker still reading: it gets them with its
   * next task instead.
   */
  sendWeights(version: number, frame?: Uint8Array, force = false): void {
    if (this.version === version) return;
    if (!force && this.ws.bufferedAmount > 0) return;
    this.send(frame ?? encodeFrame({ t: 'weights', v: PROTOCOL_VERSION, version, weights: this.host.weights }));
    this.version = version;
  }

  // --- internals

  private send(payload: Uint8Array): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    const mac = this.session.out.trailer(payload);
    this.sent += payload.byteLength + mac.byteLength;
    if (mac.byteLength === 0) { this.ws.send(payload); return; }
    // one message in two fragments: the (shared, multi-MB) payload is not copied to append the MAC
    this.ws.send(payload, { binary: true, fin: false });
    this.ws.send(mac, { binary: true, fin: true });
  }

  /** Say bye (sealed) and close. */
  private close(code: number, reason: string): void {
    try { this.send(encodeFrame({ t: 'bye', v: PROTOCOL_VERSION, reason })); } catch { /* closing anyway */ }
    this.ws.close(code, reason.slice(0, MAX_CLOSE_REASON));
  }

  private protocolError(msg: string): void {
    this.errors++;
    this.host.rejected(this.id, 'protocol');
    log.warn(`worker ${this.id}: ${msg}`);
    if (this.errors >= this.host.limits.maxProtocolErrors) {
      this.close(CLOSE.PROTOCOL_ERRORS, `too many protocol errors (${this.errors})`);
      this.drop('too many protocol errors');
    }
  }

  /** A result frame of the other gradient codec: every result of this peer would be; it leaves at once and its tasks go elsewhere. */
  private wrongCodec(frame: 'result' | 'result16'): void {
    this.host.rejected(this.id, 'protocol');
    log.warn(`worker ${this.id}: a '${frame}' frame in a run with the ${this.host.codec} gradient codec; disconnected`);
    this.close(CLOSE.VERSION, `this run's results are ${this.host.codec === 'fp16' ? 'result16' : 'result'} frames`);
    this.drop('wrong gradient codec');
  }

  private failAll(reason: 'disconnected' | 'died', why: string): void {
    for (const p of this.pending.values()) p.reject(new LinkError(reason, why));
    this.pending.clear();
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.state === 'CLOSED') return;
    this.lastSeen = Date.now();
    const bytes = messageBytes(data);
    this.received += bytes.byteLength;
    if (!isBinary) { this.protocolError('text frame (frames are binary msgpack)'); return; }
    let f: Frame;
    try {
      f = decodeFrame(this.session.in.open(bytes), WORKER_FRAME_DEPTH);
    } catch (e) {
      if (e instanceof FrameAuthError) {
        // not the worker's mistake to forgive: someone on the path, or a broken peer
        log.warn(`worker ${this.id}: ${e.message}; closing the connection`);
        this.host.rejected(this.id, 'auth');
        this.ws.close(CLOSE.AUTH, 'frame authentication failed');
        this.drop(e.message);
        return;
      }
      this.protocolError(e instanceof ProtocolError ? e.message : 'undecodable frame');
      return;
    }
    switch (f.t) {
      case 'heartbeat':
        return;
      case 'result': {
        if (this.host.codec !== 'fp32') { this.wrongCodec('result'); return; }
        const { t: _t, v: _v, ...r } = f;
        this.onResult({ ...r, exps: new Int32Array(0) });
        return;
      }
      case 'result16': {
        if (this.host.codec !== 'fp16') { this.wrongCodec('result16'); return; }
        const { t: _t, v: _v, rest, embValues, ...r } = f;
        const node = decodeNode({ embCodes: embValues, restCodes: rest, exps: r.exps }, this.host.segments);
        if (typeof node === 'string') { this.protocolError(`result16: ${node}`); return; }
        this.onResult({ ...r, rest: node.rest, embValues: node.embValues });
        return;
      }
      case 'bye':
        log.info(`worker ${this.id} left`, { reason: f.reason });
        this.ws.close(CLOSE.NORMAL, 'bye');
        return;
      default:
        this.protocolError(`unexpected frame '${f.t}' from a worker`);
    }
  }

  /** A result frame arrived (already type-checked); matching and value checks are the step's. */
  private onResult(r: ResultMsg): void {
    const p = this.pending.get(r.taskId);
    if (!p) {
      log.warn(`worker ${this.id}: result for a task it does not have, a strike`);
      this.host.unknownResult(this);
      return;
    }
    this.pending.delete(r.taskId);
    p.resolve(r);
  }

  /** Leave the scheduler at once (once): tasks in flight fail and are requeued. */
  private drop(why: string): void {
    if (this.state === 'CLOSED') return;
    this.state = 'CLOSED';
    clearInterval(this.watchdog);
    this.failAll('disconnected', why);
    this.host.left(this);
  }

  private onClose(code: number): void {
    this.drop(`socket closed (${code})`);
    log.info('worker left', { id: this.id, code });
  }

  private onError(e: Error & { code?: string }): void {
    if (e.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
      this.host.rejected(this.id, 'protocol');
      log.warn(`worker ${this.id}: frame larger than ${this.host.maxPayload} bytes, disconnected`);
    } else {
      log.warn(`worker ${this.id}: connection error`, { code: e.code });
    }
  }
}
