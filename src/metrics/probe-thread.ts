/**
 * The metrics port's HTTP server, in a worker thread of its own (started by ./server.ts).
 *
 * Why a thread: `/healthz` answered on the main thread waits for whatever that thread is doing — a
 * garbage collection, a step's reduction, the socket writes of a step's weights — and on a busy
 * machine for the scheduler to give it a core again: 3–32 answers a run over 100 ms (worst 200–477
 * ms) in the 5-minute churn soak (scripts/soak-churn.ts). This thread does nothing else, so its
 * answer takes the time of a few system calls; it reads the main thread's liveness from shared
 * memory instead of being stuck behind it:
 *
 *   /healthz  200 while the main thread's event loop turned within the stall limit (it stores the
 *             time every MAIN_BEAT_MS), 503 "main event loop blocked for N s" after that — a loop
 *             that really stopped still fails a liveness probe; a pause of a few hundred ms does not.
 *             The time is the monotonic clock (process.hrtime), the same in every thread: a wall
 *             clock stepped forward (NTP, a virtual machine restored from a snapshot — seen in the
 *             soak, 15 s) would otherwise look like a stalled loop.
 *   /readyz   200 while the main thread has said it is ready (stored when it changes) and is live.
 *   /metrics  asked of the main thread (prom-client's registry lives there) over the thread's
 *             message port; answered when it replies.
 *
 * Messages: main → thread { t: 'metrics-reply', id, status, contentType, body } | { t: 'close' };
 *           thread → main { t: 'listening', port } | { t: 'listen-error', code, message }
 *                       | { t: 'metrics', id, get } (get: a GET, which counts as a scrape)
 *                       | { t: 'scraped', id, complete } (that GET is over: answered in full, or not).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';

export interface ProbeThreadData {
  port: number;
  host: string;
  /** BigInt64Array [0]: the main loop's last turn (process.hrtime.bigint(), ns); [1]: 1 when ready */
  state: SharedArrayBuffer;
  stallLimitMs: number;
}

export type ProbeToMain =
  | { t: 'listening'; port: number }
  | { t: 'listen-error'; code: string | undefined; message: string }
  | { t: 'metrics'; id: number; get: boolean }
  | { t: 'scraped'; id: number; complete: boolean };

export type MainToProbe =
  | { t: 'metrics-reply'; id: number; status: number; contentType: string; body: string }
  | { t: 'close' };

const data = workerData as ProbeThreadData;
const port = parentPort!;
const state = new BigInt64Array(data.state);
const pending = new Map<number, { res: http.ServerResponse; head: boolean }>();
let nextId = 0;

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
    return;
  }
  const head = req.method === 'HEAD';
  const text = (status: number, body: string) => { res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(head ? undefined : body); };
  const blockedMs = Number(process.hrtime.bigint() - Atomics.load(state, 0)) / 1e6;
  const live = blockedMs <= data.stallLimitMs;
  switch (url.pathname) {
    case '/metrics': {
      const id = ++nextId;
      pending.set(id, { res, head });
      // closed: answered in full, or the client went away first (nothing more to send it)
      res.once('close', () => {
        pending.delete(id);
        if (!head) port.postMessage({ t: 'scraped', id, complete: res.writableFinished } satisfies ProbeToMain);
      });
      port.postMessage({ t: 'metrics', id, get: !head } satisfies ProbeToMain);
      return;
    }
    case '/healthz':
      if (live) text(200, 'ok\n'); else text(503, `main event loop blocked for ${(blockedMs / 1000).toFixed(1)} s\n`);
      return;
    case '/readyz':
      if (live && Atomics.load(state, 1) === 1n) text(200, 'ready\n'); else text(503, 'not ready\n');
      return;
    default:
      text(404, 'not found: try /metrics, /healthz, /readyz\n');
  }
});

port.on('message', (m: MainToProbe) => {
  if (m.t === 'metrics-reply') {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    p.res.writeHead(m.status, { 'content-type': m.contentType }).end(p.head ? undefined : m.body);
  } else if (m.t === 'close') {
    server.close(() => port.close());
    server.closeAllConnections();
  }
});

server.once('error', (e: NodeJS.ErrnoException) => {
  port.postMessage({ t: 'listen-error', code: e.code, message: e.code ?? e.message } satisfies ProbeToMain);
  port.close();
});
server.listen(data.port, data.host, () => {
  server.removeAllListeners('error');
  port.postMessage({ t: 'listening', port: (server.address() as AddressInfo).port } satisfies ProbeToMain);
});
