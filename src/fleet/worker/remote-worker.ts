/**
 * `vilm worker --connect ws://HOST:7070`: a remote worker process. Connects, authenticates
 * (HMAC challenge–response, ../auth.ts; frames in ../contract.ts), receives the config and the current weights,
 * then computes the tasks it is sent, one at a time, until the coordinator says bye. A lost
 * connection is retried (the coordinator requeues whatever was in flight).
 *
 * The model replica runs in a worker thread (the same piscina thread worker as the coordinator's
 * local workers, weights in a SharedArrayBuffer): the main thread stays free to answer
 * heartbeats while a task computes, however long it takes.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { WebSocket } from 'ws';
import { UserError } from '../../util/errors.js';
import { log } from '../../util/log.js';
import { authMac } from '../auth.js';
import { ProtocolError, decodeFrame, encodeFrame, messageBytes } from '../codec.js';
import { CLOSE, MAX_NAME_LENGTH, WORKER_MAX_PAYLOAD } from '../constants.js';
import { PROTOCOL_VERSION, type Frame, type TaskMsg } from '../contract.js';
import { blockShardCount } from '../shard-tree.js';
import { SharedWeights, ThreadPool } from '../thread-pool.js';

export interface RemoteWorkerOptions {
  url: string;
  token?: string;
  name?: string;
  /** extra CA certificate (PEM file) to trust for wss:// (e.g. a self-signed coordinator cert) */
  caFile?: string;
  /** keep retrying a lost/refused connection for this long (ms) before giving up */
  retryMs: number;
  /** largest frame accepted (the weights are the biggest) */
  maxPayload?: number;
  /** protocol version to announce (tests use a wrong one on purpose) */
  protocolVersion?: number;
  /** the worker's own events (e.g. its /metrics) */
  events?: RemoteWorkerEvents;
  /**
   * The replica module of this process (src/fleet/worker/replica.ts; default: the real model).
   * Tests run the toy model with it. A local choice only: the coordinator cannot set it.
   */
  replicaModule?: string;
}

export interface RemoteWorkerEvents {
  /** one task computed and its result sent */
  onTask?(t: { microShards: number; computeSeconds: number; bytesSent: number; bytesReceived: number }): void;
  /** joined (authenticated) or lost the coordinator */
  onConnected?(up: boolean): void;
  /** a new connection attempt after a refused or lost one */
  onReconnect?(): void;
}

/** How one connection ended. */
type Ending = { kind: 'bye'; reason: string } | { kind: 'fatal'; message: string } | { kind: 'lost'; message: string; joined: boolean };

/** Why the coordinator refused us, by close code (a refusal is final: no retry). */
const REFUSED: Partial<Record<number, string>> = {
  [CLOSE.VERSION]: 'protocol version mismatch',
  [CLOSE.AUTH]: 'authentication failed (wrong token?)',
};

export async function runRemoteWorker(o: RemoteWorkerOptions): Promise<void> {
  if (!/^wss?:\/\//.test(o.url)) throw new UserError(`--connect: expected ws://HOST:PORT or wss://HOST:PORT, got '${o.url}'`);
  const name = (o.name ?? `${hostname()}-${process.pid}`).slice(0, MAX_NAME_LENGTH);
  const ca = o.caFile ? (() => { try { return readFileSync(o.caFile!); } catch (e) { throw new UserError(`${o.caFile}: cannot read --tls-ca (${(e as NodeJS.ErrnoException).code ?? String(e)})`); } })() : undefined;
  let replica: { spec: string; pool: ThreadPool; shared: SharedWeights } | undefined;
  try {
    await connectLoop();
  } finally {
    await replica?.pool.close();
  }

  async function connectLoop(): Promise<void> {
  let deadline = Date.now() + o.retryMs;
  let delay = 250;
  for (;;) {
    const end = await connectOnce();
    if (end.kind === 'bye') { log.info(`coordinator said bye: ${end.reason}`); return; }
    if (end.kind === 'fatal') throw new UserError(end.message);
    if (end.joined) { deadline = Date.now() + o.retryMs; delay = 250; }
    if (Date.now() >= deadline) throw new UserError(`${o.url}: ${end.message} (gave up after ${Math.round(o.retryMs / 1000)} s)`);
    log.warn(`${o.url}: ${end.message}; retrying`);
    o.events?.onReconnect?.();
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 5000);
  }
  }

  function connectOnce(): Promise<Ending> {
    return new Promise<Ending>((resolve) => {
      const ws = new WebSocket(o.url, {
        maxPayload: o.maxPayload ?? WORKER_MAX_PAYLOAD, ca, perMessageDeflate: false,
        // An all-zero frame mask lets ws skip XOR-ing every byte of a multi-MB result on both ends
        // (its byte loop costs ~10 ms a frame without the optional native addon). Masking only
        // guards browsers' proxies against cache poisoning; it hides nothing (use wss:// for that).
        generateMask: (mask: Buffer) => { mask.fill(0); },
      });
      let ending: Ending | undefined;
      let joined = false;
      let version = -1;
      let heartbeatMs = 2000;
      let heartbeat: NodeJS.Timeout | undefined;
      let chain: Promise<void> = Promise.resolve();
      const v = o.protocolVersion ?? PROTOCOL_VERSION;
      let received = 0;
      const send = (f: Frame): number => {
        if (ws.readyState !== ws.OPEN) return 0;
        const bytes = encodeFrame(f);
        ws.send(bytes);
        return bytes.byteLength;
      };
      const finish = (e: Ending) => { ending ??= e; };

      ws.on('open', () => { send({ t: 'hello', v, name }); });
      ws.on('message', (data) => {
        let f: Frame;
        try {
          const bytes = messageBytes(data);
          received += bytes.byteLength;
          f = decodeFrame(bytes);
        } catch (e) {
          const msg = (e as Error).message;
          finish({ kind: 'fatal', message: `${o.url}: ${e instanceof ProtocolError && e.kind === 'version' ? 'coordinator ' + msg : msg}` });
          ws.close(CLOSE.VERSION, 'bad frame');
          return;
        }
        switch (f.t) {
          case 'challenge': {
            if (f.tokenRequired && !o.token) {
              finish({ kind: 'fatal', message: `${o.url}: the coordinator requires a token (--token-file)` });
              ws.close(CLOSE.NORMAL);
              return;
            }
            send({ t: 'auth', v, mac: f.tokenRequired && o.token ? authMac(o.token, f.nonce, name) : '' });
            return;
          }
          case 'welcome': {
            joined = true;
            o.events?.onConnected?.(true);
            heartbeatMs = f.heartbeatMs;
            const key = JSON.stringify(f.spec);
            if (!replica || replica.spec !== key || replica.shared.weights.length !== f.total) {
              if (replica) void replica.pool.close();
              const shared = new SharedWeights(f.total);
              replica = { spec: key, shared, pool: new ThreadPool(1, f.spec, shared, { replicaModule: o.replicaModule }) };
            }
            log.info('joined coordinator', { url: o.url, id: f.id, params: f.total });
            heartbeat = setInterval(() => { send({ t: 'heartbeat', v, time: Date.now() }); }, heartbeatMs);
            return;
          }
          case 'weights':
            // in order with the tasks: a task queued before these weights has already run
            chain = chain.then(() => {
              replica!.shared.weights.set(f.weights);
              replica!.shared.publish(f.version);
              version = f.version;
            });
            return;
          case 'task': {
            const task: TaskMsg = f;
            chain = chain.then(async () => {
              if (!replica || version !== task.version) {
                log.warn(`task ${task.taskId} needs weights version ${task.version}, have ${version}; skipped`);
                return;
              }
              if (ws.readyState !== ws.OPEN) return;
              // the tokens are a view into the received frame: copy them so the thread gets its own buffer
              const reply = await replica.pool.run({ ...task, tokens: task.tokens.slice() });
              if (reply.stale) throw new Error(`thread saw weights version ${reply.version}, task needs ${task.version}`);
              const r = reply.result;
              const sent = send({ t: 'result', v, ...r });
              o.events?.onTask?.({ microShards: blockShardCount(task, task.shards), computeSeconds: r.computeSeconds, bytesSent: sent, bytesReceived: received });
              received = 0;
            }).catch((e: unknown) => {
              finish({ kind: 'fatal', message: `worker failed: ${(e as Error).message}` });
              ws.close(CLOSE.WORKER_ERROR, 'worker error');
            });
            return;
          }
          case 'bye':
            // a refusal (version, authentication) is recognised by the close code that follows
            finish({ kind: 'bye', reason: f.reason });
            return;
          default:
            log.warn(`unexpected frame '${f.t}' from the coordinator, ignored`);
        }
      });
      ws.on('error', (e) => finish({ kind: 'lost', message: e.message, joined }));
      ws.on('close', (code, reason) => {
        if (heartbeat) clearInterval(heartbeat);
        if (joined) o.events?.onConnected?.(false);
        const refusal = REFUSED[code];
        if (refusal !== undefined && (ending === undefined || ending.kind === 'bye')) ending = { kind: 'fatal', message: `${o.url}: refused: ${reason.toString() || refusal}` };
        finish({ kind: 'lost', message: `connection closed (${code})`, joined });
        if (ending?.kind === 'lost') ending = { ...ending, joined };
        resolve(ending!);
      });
    });
  }
}
