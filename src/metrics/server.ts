import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { UserError } from '../util/errors.js';

export interface MetricsServerOptions {
  /** TCP port; 0 picks a free one (see the returned `port`). (The CLI's `--metrics-port 0` means off instead.) */
  port: number;
  /** Interface to bind. Default '0.0.0.0' (Prometheus scrapes from another host/pod). */
  host?: string;
  registry: Registry;
  /** /readyz answers 200 while this returns true, 503 otherwise. Default: always ready. */
  ready?: () => boolean;
}

export interface MetricsServer {
  port: number;
  /** GET /metrics requests answered so far (a scraper is there when this is > 0) */
  readonly scrapes: number;
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
 * Serve `/metrics` (Prometheus text format), `/healthz` (process is up) and `/readyz`
 * (the coordinator is ready, e.g. data loaded and listening for workers) with node:http.
 */
export function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const ready = opts.ready ?? (() => true);
  // scrapes: numbered as they arrive; a waiter wants one numbered above `after`, answered
  let arrived = 0;
  let answered = 0;
  const waiters = new Set<{ after: number; done: (ok: boolean) => void }>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const text = (status: number, body: string) => { res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(req.method === 'HEAD' ? undefined : body); };
    switch (url.pathname) {
      case '/metrics': {
        if (req.method === 'GET') {
          const n = ++arrived;
          res.once('finish', () => {
            answered++;
            for (const w of waiters) if (n > w.after) w.done(true);
          });
        }
        opts.registry.metrics().then(
          (body) => { res.writeHead(200, { 'content-type': opts.registry.contentType }).end(req.method === 'HEAD' ? undefined : body); },
          (e: unknown) => text(500, `error collecting metrics: ${String(e)}\n`),
        );
        return;
      }
      case '/healthz':
        text(200, 'ok\n');
        return;
      case '/readyz':
        if (ready()) text(200, 'ready\n'); else text(503, 'not ready\n');
        return;
      default:
        text(404, 'not found: try /metrics, /healthz, /readyz\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      reject(new MetricsListenError(`metrics port ${opts.host ?? '0.0.0.0'}:${opts.port}: cannot listen (${e.code ?? e.message})`, e.code));
    });
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => {
      server.removeAllListeners('error');
      const port = (server.address() as AddressInfo).port;
      const nextScrape = (signal?: AbortSignal) => new Promise<boolean>((res) => {
        if (signal?.aborted || !server.listening) { res(false); return; }
        const w = {
          after: arrived,
          done: (ok: boolean) => { waiters.delete(w); signal?.removeEventListener('abort', onAbort); res(ok); },
        };
        const onAbort = () => w.done(false);
        signal?.addEventListener('abort', onAbort, { once: true });
        waiters.add(w);
      });
      resolve({
        port,
        get scrapes() { return answered; },
        nextScrape,
        close: () => new Promise<void>((res) => {
          for (const w of waiters) w.done(false);
          server.close(() => res());
          server.closeAllConnections();
        }),
      });
    });
  });
}
