/**
 * `vilm worker --connect ws://HOST:7070`: a remote worker process. Connects and authenticates in
 * the HTTP upgrade (../auth.ts; frames in ../contract.ts), checks the coordinator's proof of the
 * token (its sealed first frame), receives the config and the current weights, then computes the
 * tasks it is sent, one at a time (the coordinator sends the next one ahead: it waits here), until
 * the coordinator says bye. A lost connection is retried
 * (the coordinator requeues whatever was in flight); a refusal (version, authentication, ban) is
 * final.
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
import { FrameAuthError, FrameSeal, HEADER, NAME_PATTERN, NO_AUTH, newNonce, sessionKeys, upgradeHeaders } from '../auth.js';
import { ProtocolError, decodeFrame, encodeFrame, messageBytes } from '../codec.js';
import { CLOSE, WORKER_MAX_PAYLOAD } from '../constants.js';
import { PROTOCOL_VERSION, type Frame, type TaskMsg } from '../contract.js';
import { blockShardCount } from '../shard-tree.js';
import { encodeNode, restSegments } from '../grad-codec.js';
import { buildLayout } from '../../model/layout.js';
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
  [CLOSE.AUTH]: 'frame authentication failed',
};

/** HTTP answers to the upgrade that are final (the rest — 503, a proxy's 502 … — are retried). */
const FINAL_STATUS: ReadonlySet<number> = new Set([400, 401, 403, 426]);

/** A worker name safe for a header, a log line and a label: `host-pid` with anything else as '-'. */
export function workerName(given: string | undefined): string {
  if (given !== undefined) {
    if (!NAME_PATTERN.test(given)) throw new UserError(`--name: 1-48 characters of A-Z a-z 0-9 . _ - (starting with a letter or digit), got '${given.slice(0, 60)}'`);
    return given;
  }
  return `${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 48) || `worker-${process.pid}`;
}

/** A peer's short text (a refusal reason) made safe to print: printable ASCII, bounded. */
function printable(s: string | string[] | undefined): string {
  return (typeof s === 'string' ? s : '').replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
}

export async function runRemoteWorker(o: RemoteWorkerOptions): Promise<void> {
  if (!/^wss?:\/\//.test(o.url)) throw new UserError(`--connect: expected ws://HOST:PORT or wss://HOST:PORT, got '${o.url}'`);
  const name = workerName(o.name);
  const ca = o.caFile ? (() => { try { return readFileSync(o.caFile!); } catch (e) { throw new UserError(`${o.caFile}: cannot read --tls-ca (${(e as NodeJS.ErrnoException).code ?? String(e)})`); } })() : undefined;
  let replica: { spec: string; pool: ThreadPool; shared: SharedWeights; segments: Int32Array } | undefined;
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
      const nonce = newNonce();
      const ws = new WebSocket(o.url, {
        maxPayload: o.maxPayload ?? WORKER_MAX_PAYLOAD, ca, perMessageDeflate: false,
        headers: upgradeHeaders(o.token, name, nonce, o.protocolVersion ?? PROTOCOL_VERSION),
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
      const v = PROTOCOL_VERSION;
      let received = 0;
      // frame seals, set from the coordinator's answer to the upgrade
      let seals: { out: FrameSeal; in: FrameSeal } | undefined;
      const send = (f: Frame): number => {
        if (ws.readyState !== ws.OPEN || !seals) return 0;
        const payload = encodeFrame(f), mac = seals.out.trailer(payload);
        if (mac.byteLength === 0) ws.send(payload);
        else { ws.send(payload, { binary: true, fin: false }); ws.send(mac, { binary: true, fin: true }); }
        return payload.byteLength + mac.byteLength;
      };
      const finish = (e: Ending) => { ending ??= e; };
      const fatal = (message: string, code: number = CLOSE.NORMAL) => {
        finish({ kind: 'fatal', message: `${o.url}: ${message}` });
        ws.close(code);
      };
      /** computing or sending a task failed: this worker is broken, it leaves */
      const failed = (e: unknown) => {
        finish({ kind: 'fatal', message: `worker failed: ${(e as Error).message}` });
        ws.close(CLOSE.WORKER_ERROR, 'worker error');
      };

      ws.on('upgrade', (res) => {
        const cNonce = res.headers[HEADER.nonce], auth = res.headers[HEADER.auth];
        if (auth === NO_AUTH) {
          // a coordinator that authenticates nobody cannot prove it knows our token either
          if (o.token) { fatal('the coordinator does not authenticate workers (it has no token); refusing it, since it could be anyone'); return; }
          seals = { out: new FrameSeal(null), in: new FrameSeal(null) };
          return;
        }
        if (!o.token) { fatal('the coordinator requires a token (--token-file)'); return; }
        if (typeof cNonce !== 'string' || !/^[0-9a-f]{64}$/.test(cNonce)) { fatal('the coordinator sent no valid nonce'); return; }
        const keys = sessionKeys(o.token, 'worker', nonce, cNonce);
        seals = { out: new FrameSeal(keys.send), in: new FrameSeal(keys.recv) };
      });
      ws.on('unexpected-response', (_req, res) => {
        const status = res.statusCode ?? 0;
        const reason = printable(res.headers[HEADER.refused]) || `HTTP ${status}`;
        res.resume();
        if (FINAL_STATUS.has(status)) finish({ kind: 'fatal', message: `${o.url}: refused: ${reason}` });
        else finish({ kind: 'lost', message: `refused for now: ${reason}`, joined: false });
        ws.terminate();
      });
      ws.on('message', (data) => {
        let f: Frame;
        try {
          if (!seals) return; // refusing (see 'upgrade')
          const bytes = messageBytes(data);
          received += bytes.byteLength;
          f = decodeFrame(seals.in.open(bytes));
        } catch (e) {
          if (e instanceof FrameAuthError) {
            fatal(joined ? `a frame from the coordinator failed authentication (${e.message}): someone on the path?` : 'the coordinator could not prove it knows the token (its first frame failed authentication)', CLOSE.AUTH);
            return;
          }
          const msg = e instanceof ProtocolError ? e.message : 'undecodable frame';
          fatal(e instanceof ProtocolError && e.kind === 'version' ? 'coordinator ' + msg : msg, CLOSE.VERSION);
          return;
        }
        switch (f.t) {
          case 'welcome': {
            joined = true;
            o.events?.onConnected?.(true);
            heartbeatMs = f.heartbeatMs;
            const key = JSON.stringify(f.spec);
            if (!replica || replica.spec !== key || replica.shared.weights.length !== f.total) {
              if (replica) void replica.pool.close();
              const shared = new SharedWeights(f.total);
              replica = { spec: key, shared, pool: new ThreadPool(1, f.spec, shared, { replicaModule: o.replicaModule }), segments: restSegments(buildLayout(f.spec.model)) };
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
              const { segments } = replica;
              // sent on the next turn of the event loop: a next task already here (the coordinator
              // sends one ahead) goes to the compute thread first, then this result is encoded
              setImmediate(() => {
                try {
                  if (ws.readyState !== ws.OPEN) return;
                  const { exps, ...r } = reply.result;
                  let sent: number;
                  if (task.codec === 'fp16') {
                    // the block sum is already rounded (every tree node is): its half codes are exact
                    const n = encodeNode(r.embValues, r.rest, exps, segments);
                    sent = send({ t: 'result16', v, ...r, rest: n.restCodes, embValues: n.embCodes, exps });
                  } else {
                    sent = send({ t: 'result', v, ...r });
                  }
                  o.events?.onTask?.({ microShards: blockShardCount(task, task.shards), computeSeconds: r.computeSeconds, bytesSent: sent, bytesReceived: received });
                  received = 0;
                } catch (e) { failed(e); }
              });
            }).catch(failed);
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
        if (refusal !== undefined && (ending === undefined || ending.kind === 'bye')) ending = { kind: 'fatal', message: `${o.url}: refused: ${printable(reason.toString()) || refusal}` };
        finish({ kind: 'lost', message: `connection closed (${code})`, joined });
        if (ending?.kind === 'lost') ending = { ...ending, joined };
        resolve(ending!);
      });
    });
  }
}
