import { Worker } from 'node:worker_threads';
import type { Registry } from 'prom-client';
import { UserError } from '../util/errors.js';
import type { MainToProbe, ProbeThreadData, ProbeToMain } from './probe-thread.js';

export interface MetricsServerOptions {
  /** TCP port; 0 picks a free one (see the returned `port`). (The CLI's `--metrics-port 0` means off instead.) */
  port: number;
  /** Interface to bind. Default '0.0.0.0' (Prometheus scrapes from another host/pod). */
  host?: string;
  registry: Registry;
  /** /readyz answers 503 until setReady(true) when this is false. Default true (ready at once). */
  ready?: boolean;
  /** /healthz answers 503 once the main thread's event loop has not turned for this long. Default STALL_LIMIT_MS. */
  stallLimitMs?: number;
}

/** How often the main thread tells the probe thread that its event loop turns. */
export const MAIN_BEAT_MS = 100;
/**
 * /healthz fails once the main event loop has been blocked this long. Far above anything a working
 * run blocks it for (a step's work on it, garbage collection: under a second even with 32 workers
 * on 2 cores) and below a liveness probe's usual budget (Kubernetes: 3 failures × 10 s).
 */
export const STALL_LIMIT_MS = 10_000;

export interface MetricsServer {
  port: number;
  /** GET /metrics requests answered so far (a scraper is there when this is > 0) */
  readonly scrapes: number;
  /** /readyz answers 200 from now on (true) or 503 (false). */
  setReady(ready: boolean): void;
  /**
   * Resolves true once a GET /metrics that arrived AFTER this call has been answered in full, or
   * false when `signal` aborts first (or the server closes).
   */
  nextScrape(signal?: AbortSignal): Promise<boolean>;
  close(): Promise<void>;
}

/** The metrics port could not be bound; `code` is the OS's reason (EADDRINUSE: the port is taken). */
export class MetricsListenError extends UserError {
  constructor(message: string, readonly code: string | undefined) {
    super(message);
  }
}

/**
 * Serve `/metrics` (Prometheus text format), `/healthz` (the process's main event loop turns) and
 * `/readyz` (the coordinator is ready, e.g. data loaded and listening for workers). The HTTP server
 * runs in a thread of its own (./probe-thread.ts): `/healthz` and `/readyz` are answered there
 * from shared memory (the main thread stores the time every MAIN_BEAT_MS, and readiness when it
 * is set), so they answer at once even while the main thread is busy; `/metrics` is collected on the main thread, where the registry is.
 */
export function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const host = opts.host ?? '0.0.0.0';
  // [0] the main loop's last turn (monotonic clock, ns), [1] ready (1) or not (0)
  const stateSab = new SharedArrayBuffer(16);
  const state = new BigInt64Array(stateSab);
  const beat = () => { Atomics.store(state, 0, process.hrtime.bigint()); };
  const setReady = (ready: boolean) => { Atomics.store(state, 1, ready ? 1n : 0n); };
  beat();
  setReady(opts.ready ?? true);
  const data: ProbeThreadData = { port: opts.port, host, state: stateSab, stallLimitMs: opts.stallLimitMs ?? STALL_LIMIT_MS };
  // compiled (lib/): the module itself; from the sources: the entry that registers tsx first
  const thread = new Worker(new URL(import.meta.url.endsWith('.js') ? './probe-thread.js' : './probe-thread-entry.mjs', import.meta.url), { workerData: data });
  const send = (m: MainToProbe) => thread.postMessage(m);
  const timer = setInterval(beat, MAIN_BEAT_MS);
  timer.unref();
  const exited = new Promise<void>((res) => thread.once('exit', () => res()));
  // scrapes: numbered by the main thread as their requests reach it (the body is collected then); a
  // waiter wants one numbered above `after`, answered in full
  let arrived = 0;
  let answered = 0;
  const scrapeNo = new Map<number, number>();
  const waiters = new Set<{ after: number; done: (ok: boolean) => void }>();
  let open = false;
  const onMessage = (m: ProbeToMain) => {
    if (m.t === 'metrics') {
      if (m.get) scrapeNo.set(m.id, ++arrived);
      opts.registry.metrics().then(
        (body) => send({ t: 'metrics-reply', id: m.id, status: 200, contentType: opts.registry.contentType, body }),
        (e: unknown) => send({ t: 'metrics-reply', id: m.id, status: 500, contentType: 'text/plain; charset=utf-8', body: `error collecting metrics: ${String(e)}\n` }),
      );
    } else if (m.t === 'scraped') {
      const n = scrapeNo.get(m.id);
      scrapeNo.delete(m.id);
      if (n === undefined || !m.complete) return;
      answered++;
      for (const w of waiters) if (n > w.after) w.done(true);
    }
  };
  return new Promise((resolve, reject) => {
    const failed = (e: Error) => { if (!open) { clearInterval(timer); reject(e); } };
    thread.once('error', failed);
    thread.once('exit', (code) => failed(new Error(`metrics server thread exited (code ${code}) before it listened`)));
    thread.on('message', (m: ProbeToMain) => {
      if (m.t === 'listen-error') {
        void thread.terminate();
        failed(new MetricsListenError(`metrics port ${host}:${opts.port}: cannot listen (${m.message})`, m.code));
      } else if (m.t === 'listening') {
        open = true;
        thread.off('error', failed);
        // the thread does nothing that can fail once it listens; should it die, say so
        thread.on('error', (e) => { console.error(`metrics server thread failed: ${e.message}`); });
        resolve(server(m.port));
      } else onMessage(m);
    });
  });

  function server(port: number): MetricsServer {
    const nextScrape = (signal?: AbortSignal) => new Promise<boolean>((res) => {
      if (signal?.aborted || !open) { res(false); return; }
      const w = {
        after: arrived,
        done: (ok: boolean) => { waiters.delete(w); signal?.removeEventListener('abort', onAbort); res(ok); },
      };
      const onAbort = () => w.done(false);
      signal?.addEventListener('abort', onAbort, { once: true });
      waiters.add(w);
    });
    return {
      port,
      get scrapes() { return answered; },
      setReady,
      nextScrape,
      close: () => {
        if (open) {
          open = false;
          clearInterval(timer);
          for (const w of waiters) w.done(false);
          send({ t: 'close' });
        }
        return exited;
      },
    };
  }
}
