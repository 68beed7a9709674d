import { combineObservers, type TrainerObserver } from '../events/index.js';
import { createMetrics, type VilmMetrics } from './index.js';
import { startMetricsServer } from './server.js';

/**
 * The coordinator's metrics in one call, for `vilm coordinator` (and `vilm train`):
 *
 *   const m = await serveCoordinatorMetrics({ port: 9464, backend });
 *   await runTrainingLoop({ …, observers: [m.observer], hooks: { started: () => m.markReady() } });
 *   await m.linger(60);   // the final figures get scraped
 *   await m.close();
 *
 * /readyz turns 200 once `markReady()` is called (the fleet is up and accepting workers) or the
 * first step completes, whichever comes first.
 */
export interface CoordinatorMetrics {
  metrics: VilmMetrics;
  observer: TrainerObserver;
  /** the bound port (useful with port 0) */
  port: number;
  markReady(): void;
  /** GET /metrics answered so far */
  readonly scrapes: number;
  /**
   * After the run: keep serving until one scrape that arrived after this call has been answered
   * (the final figures are then in Prometheus), at most `seconds`, or until `signal` aborts. Returns
   * at once when nothing scraped /metrics so far (nobody to wait for) or `seconds` is 0.
   */
  linger(seconds: number, signal?: AbortSignal): Promise<LingerOutcome>;
  close(): Promise<void>;
}

/**
 * How a linger ended: 'scraped' (the final figures were scraped), 'timeout' (no scrape within the
 * time), 'aborted' (a signal), 'no-scraper' (nothing ever scraped: no wait), 'off' (0 seconds).
 */
export type LingerOutcome = 'scraped' | 'timeout' | 'aborted' | 'no-scraper' | 'off';

export async function serveCoordinatorMetrics(opts: { port: number; host?: string; backend?: string; maxWorkerLabels?: number }): Promise<CoordinatorMetrics> {
  const metrics = createMetrics({ backend: opts.backend, maxWorkerLabels: opts.maxWorkerLabels });
  const server = await startMetricsServer({ port: opts.port, host: opts.host, registry: metrics.registry, ready: false });
  let ready = false;
  const markReady = () => { if (!ready) { ready = true; server.setReady(true); } };
  const observer = combineObservers(metrics.observer, { onStep: markReady });
  const linger = async (seconds: number, signal?: AbortSignal): Promise<LingerOutcome> => {
    if (!(seconds > 0)) return 'off';
    if (server.scrapes === 0) return 'no-scraper';
    if (signal?.aborted) return 'aborted';
    const stop = new AbortController();
    let timedOut = false;
    // the deadline is cleared whatever ends the wait: no timer outlives the linger
    const timer = setTimeout(() => { timedOut = true; stop.abort(); }, seconds * 1000);
    const onAbort = () => stop.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (await server.nextScrape(stop.signal)) return 'scraped';
      return timedOut ? 'timeout' : 'aborted';
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  };
  return {
    metrics, observer, port: server.port, markReady,
    get scrapes() { return server.scrapes; },
    linger, close: () => server.close(),
  };
}
