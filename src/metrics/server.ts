import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { UserError } from '../util/errors.js';

export interface MetricsServerOptions {
  /** TCP port; 0 picks a free one (see the returned `port`). */
  port: number;
  /** Interface to bind. Default '0.0.0.0' (Prometheus scrapes from another host/pod). */
  host?: string;
  registry: Registry;
  /** /readyz answers 200 while this returns true, 503 otherwise. Default: always ready. */
  ready?: () => boolean;
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Serve `/metrics` (Prometheus text format), `/healthz` (process is up) and `/readyz`
 * (the coordinator is ready, e.g. data loaded and listening for workers) with node:http.
 */
export function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const ready = opts.ready ?? (() => true);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const text = (status: number, body: string) => { res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(req.method === 'HEAD' ? undefined : body); };
    switch (url.pathname) {
      case '/metrics':
        opts.registry.metrics().then(
          (body) => { res.writeHead(200, { 'content-type': opts.registry.contentType }).end(req.method === 'HEAD' ? undefined : body); },
          (e: unknown) => text(500, `error collecting metrics: ${String(e)}\n`),
        );
        return;
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
      reject(new UserError(`metrics port ${opts.host ?? '0.0.0.0'}:${opts.port}: cannot listen (${e.code ?? e.message})`));
    });
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => {
      server.removeAllListeners('error');
      const port = (server.address() as AddressInfo).port;
      resolve({
        port,
        close: () => new Promise<void>((res) => {
          server.close(() => res());
          server.closeAllConnections();
        }),
      });
    });
  });
}
