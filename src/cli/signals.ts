/**
 * SIGINT/SIGTERM for a running training loop: the first one asks the loop to finish (or abandon)
 * the current step, checkpoint, say bye to the workers and exit; a second one exits at once.
 */
import type { StopSignal } from '../train/loop.js';
import { log } from '../util/log.js';

export function installStopHandlers(stop: StopSignal): () => void {
  const on = (sig: NodeJS.Signals) => {
    if (stop.requested) { log.warn(`${sig} again: exiting without a final checkpoint`); process.exit(130); }
    stop.requested = true;
    log.warn(`${sig}: stopping after the current step (checkpoint, then exit); press again to exit now`);
    stop.notify?.();
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  return () => { process.off('SIGINT', on); process.off('SIGTERM', on); };
}
