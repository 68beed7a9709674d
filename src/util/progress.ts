import cliProgress from 'cli-progress';
import { getLogFormat, log } from './log.js';

/**
 * A progress bar on a TTY (cli-progress), plain summary lines otherwise (CI, pipes, json logs).
 * `stop(summary)` on success prints the summary; `stop()` (the error path) prints nothing, so a
 * failing command's stderr is its one `vilm:` line.
 */
export interface Progress {
  update(value: number, payload?: Record<string, string | number>): void;
  stop(summary?: string): void;
}

export function progress(label: string, total: number, unit = ''): Progress {
  const tty = Boolean(process.stderr.isTTY) && getLogFormat() === 'text' && !process.env.CI;
  if (!tty) {
    let lastLog = 0;
    return {
      update(value) {
        const now = Date.now();
        if (now - lastLog > 10_000) { lastLog = now; log.info(`${label}: ${value}/${total}${unit ? ' ' + unit : ''}`); }
      },
      stop(summary) { if (summary) log.info(`${label}: ${summary}`); },
    };
  }
  const bar = new cliProgress.SingleBar({
    format: `${label} [{bar}] {percentage}% {value}/{total}${unit ? ' ' + unit : ''} {info}`,
    stream: process.stderr,
    hideCursor: true,
    // the bar disappears when stopped: a summary line replaces it, or nothing (an error's one line)
    clearOnComplete: true,
  }, cliProgress.Presets.shades_classic);
  bar.start(total, 0, { info: '' });
  return {
    update(value, payload) {
      const info = payload ? Object.entries(payload).map(([k, v]) => `${k}=${v}`).join(' ') : '';
      bar.update(value, { info });
    },
    stop(summary) { bar.stop(); if (summary) log.info(`${label}: ${summary}`); },
  };
}
