import { isMainThread } from 'node:worker_threads';
import { getLogFormat, log, setLogInterceptor, type LogInterceptor } from './log.js';

/**
 * Progress of a long command (train, coordinator, eval, data prepare/clean, tokenizer, crawls):
 *
 * - on a terminal (stderr a TTY, text logs, no CI, TERM not dumb): one bar line
 *   `label ████░░░░  45% 90/200 steps | 1.8 steps/s | elapsed 50 s, ETA 1m 01s | loss=3.214`,
 *   redrawn in place (drawn here: cli-progress cannot print above its bar, its timer keeps the
 *   process alive and its cursor save/restore lands on the wrong row once lines scroll); every
 *   log line is printed ABOVE it (log.ts hands its lines to the bar, which clears its line,
 *   writes the log line and redraws), and so is anything else written to process.stderr while it
 *   is drawn — worker threads' lines too, which Node pipes through the main thread's stderr;
 * - off a terminal: a plain log line every ~10 s once there is progress, and always a final line
 *   (`prepare: done 1.0/1.0 MB in 3.2 s (310 KB/s), …`), never a `0/1 MB` (sizes are scaled);
 * - with `--log-format json`: the same as JSON records
 *   `{msg: label, progress: 'update'|'done'|'stopped', value, total, unit, start, rate, eta_s, elapsed_s, …}`
 *   (total and eta_s null when unknown; rate in units per second; bytes for 'bytes').
 *
 * The rate (and the ETA from it) is measured over the last `windowMs` of updates, not the whole run,
 * so a slow start (thread start-up, compilation) or a change of pace does not skew it for long.
 * A bar's redraw timer is unref'd: it never keeps the process alive.
 *
 * `done(summary)` / `stopped(summary)` print the final line; `abort()` (the error path) prints
 * nothing, so a failing command's stderr is its one `vilm:` line.
 */
export type ProgressPayload = Record<string, string | number>;

export interface Progress {
  /** the position so far (absolute; bytes when the unit is 'bytes') and extra fields to show */
  update(value: number, payload?: ProgressPayload): void;
  /** a total learnt later (a crawl's first response); 0 = unknown */
  setTotal(total: number): void;
  /** finished: the final line `label: done V/T unit in D (rate)[, summary]` (update to the final value first) */
  done(summary?: string): void;
  /** ended before the total (a signal, --stop-at): `label: stopped at V/T unit after D[, summary]` */
  stopped(summary?: string): void;
  /** the error path: the bar goes, no line */
  abort(): void;
}

/** What the bar needs of a stream (process.stderr, or a fake terminal in tests). */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(chunk: string): boolean;
}

export type ProgressMode = 'bar' | 'lines' | 'json';

export interface ProgressOptions {
  /** where the bar is drawn; default process.stderr (lines and JSON records go through the log) */
  stream?: ProgressStream;
  /** default: 'json' with --log-format json, 'bar' on a terminal, else 'lines' */
  mode?: ProgressMode;
  /** where this run starts (a resumed training run): rate, ETA and the first line count from here */
  start?: number;
  /** clock in ms (tests); default Date.now */
  now?: () => number;
  /** ms between plain lines / JSON records; default 10 000 */
  everyMs?: number;
  /** ms of recent updates the rate is measured over; default 30 000 */
  windowMs?: number;
  /** ms between redraws of the bar (elapsed and ETA move on); default 1000, 0 = no timer */
  tickMs?: number;
}

/** The mode for a stream: a bar only on an interactive terminal with text logs. */
export function progressMode(stream: ProgressStream = process.stderr): ProgressMode {
  if (getLogFormat() === 'json') return 'json';
  const ci = process.env.CI;
  const inCI = ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
  return stream.isTTY === true && !inCI && process.env.TERM !== 'dumb' && isMainThread ? 'bar' : 'lines';
}

// ---------------------------------------------------------------------------------------------
// formatting

/** A duration for people: `3.2 s`, `42 s`, `3m 05s`, `1h 02m`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 9.95) return `${seconds.toFixed(1)} s`;
  if (seconds < 59.5) return `${Math.round(seconds)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  const m = Math.round(seconds / 60);
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

const BYTE_SCALES: [number, string][] = [[1e9, 'GB'], [1e6, 'MB'], [1e3, 'KB'], [1, 'bytes']];

function byteScale(n: number): [number, string] {
  return BYTE_SCALES.find(([f]) => n >= f) ?? BYTE_SCALES[BYTE_SCALES.length - 1];
}

/** A number of bytes in one unit, scaled (decimal units, as `ls -h --si`): 0.5 MB is `500 KB`. */
function scaled(n: number, factor: number): string {
  if (factor === 1) return Math.round(n).toLocaleString('en-US');
  const x = n / factor;
  return x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1);
}

/**
 * `value/total unit`, or `value unit` when the total is unknown (0). Bytes are scaled by the
 * total — `120/350 KB`, `0.4/1.0 MB`, never `0/1 MB`; counts are whole numbers with separators.
 */
export function formatAmount(value: number, total: number, unit: string): string {
  if (unit === 'bytes') {
    const [f, name] = byteScale(Math.max(total, value));
    return total > 0 ? `${scaled(value, f)}/${scaled(total, f)} ${name}` : `${scaled(value, f)} ${name}`;
  }
  const n = (x: number) => (Number.isInteger(x) ? x.toLocaleString('en-US') : x.toFixed(1));
  const u = unit ? ` ${unit}` : '';
  return total > 0 ? `${n(value)}/${n(total)}${u}` : `${n(value)}${u}`;
}

/** A rate: `1.2 MB/s`, `340 KB/s`, `1.8 steps/s`, `0.12 steps/s`, `1,234 documents/s`. */
export function formatRate(perSecond: number, unit: string): string {
  if (unit === 'bytes') {
    const [f, name] = byteScale(perSecond);
    const x = perSecond / f;
    return `${f === 1 || x >= 100 ? Math.round(x) : x.toFixed(1)} ${name === 'bytes' ? 'B' : name}/s`;
  }
  const u = unit || 'items';
  const s = perSecond >= 100 ? Math.round(perSecond).toLocaleString('en-US') : perSecond >= 10 ? perSecond.toFixed(1) : perSecond.toPrecision(2);
  return `${s} ${u}/s`;
}

function formatPayload(p: ProgressPayload): string[] {
  return Object.entries(p).map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? v.toPrecision(4) : typeof v === 'number' ? v.toLocaleString('en-US') : v}`);
}

// ---------------------------------------------------------------------------------------------
// rate and ETA

/**
 * The recent rate: positions over the last `windowMs` (one sample kept from before the window, so
 * the span covers the whole window once there is that much history). Updates closer than 100 ms
 * replace the latest sample: a few hundred samples at most, however often `add` is called.
 */
export class RateMeter {
  private samples: { t: number; v: number }[];
  private fresh = true;

  constructor(private readonly windowMs: number, t0: number, v0: number) {
    this.samples = [{ t: t0, v: v0 }];
  }

  add(t: number, v: number): void {
    const s = this.samples;
    const last = s[s.length - 1];
    if (v < last.v) { this.samples = [{ t, v }]; this.fresh = false; return; } // went back: start over
    if (s.length >= 2 && t - s[s.length - 2].t < 100) s[s.length - 1] = { t, v };
    else s.push({ t, v });
    // the interval before the first update holds the start-up (threads, compilation, the first
    // read): once two updates measure the pace, it no longer counts
    if (this.fresh && s.length >= 3) { s.shift(); this.fresh = false; }
    while (s.length > 2 && s[1].t <= t - this.windowMs) s.shift();
  }

  get last(): { t: number; v: number } { return this.samples[this.samples.length - 1]; }

  /** units per second over the window, as of the latest update; null before any progress */
  rate(): number | null {
    const first = this.samples[0], last = this.last;
    const dt = last.t - first.t;
    return dt > 0 && last.v > first.v ? ((last.v - first.v) * 1000) / dt : null;
  }

  /**
   * Seconds left to `total`: the recent rate's estimate made at the latest update, counted down
   * since then; once that is overdue (a stall), re-estimated with the time since the window's
   * start, so a stalled run's ETA grows rather than sitting at 0. null: unknown.
   */
  eta(total: number, now: number): number | null {
    const last = this.last;
    if (total <= 0) return null;
    const remaining = total - last.v;
    if (remaining <= 0) return 0;
    const rate = this.rate();
    if (rate === null) return null;
    const countdown = remaining / rate - (now - last.t) / 1000;
    if (countdown > 0) return countdown;
    const first = this.samples[0];
    return (remaining * (now - first.t)) / 1000 / (last.v - first.v);
  }
}

// ---------------------------------------------------------------------------------------------
// the bar on a terminal

const CLEAR = '\r\u001b[K';

/** The one bar drawn now (a second bar at the same time falls back to lines). */
let activeBar: TerminalLine | null = null;

/**
 * One redrawable line at the bottom of a terminal. While it exists, log.ts's lines come here
 * (clear, line, redraw), and when the stream is the process's stderr so does every other write to
 * it (worker threads, a direct process.stderr.write): a write ending in a newline is printed above
 * the bar; a partial line holds the redraws back until its newline comes.
 */
class TerminalLine {
  private drawn = false;
  private partial = false;
  private ended = false;
  private lastText = '';
  private lastDraw = -Infinity;
  private readonly raw: (s: string) => void;
  private readonly prevInterceptor: LogInterceptor | null;
  private readonly timer: ReturnType<typeof setInterval> | undefined;
  private unpatch: (() => void) | undefined;
  private readonly onExit = () => { if (this.drawn) this.raw(CLEAR); };

  constructor(private readonly stream: ProgressStream, private readonly render: (width: number) => string, private readonly now: () => number, tickMs: number) {
    const write = stream.write;
    this.raw = (s) => { write.call(stream, s); };
    if (stream === (process.stderr as ProgressStream)) this.patchStderr();
    this.prevInterceptor = setLogInterceptor((line) => this.above(line));
    process.on('exit', this.onExit);
    if (tickMs > 0) {
      this.timer = setInterval(() => this.draw(true), tickMs);
      this.timer.unref();
    }
    this.draw(true);
  }

  private patchStderr(): void {
    const err = process.stderr;
    const orig = err.write;
    const self = this;
    const patched = function (this: unknown, chunk: unknown, ...rest: unknown[]): boolean {
      if (self.ended) return (orig as (...a: unknown[]) => boolean).apply(err, [chunk, ...rest]);
      if (self.drawn) { self.raw(CLEAR); self.drawn = false; }
      const r = (orig as (...a: unknown[]) => boolean).apply(err, [chunk, ...rest]);
      const text = typeof chunk === 'string' ? chunk : chunk instanceof Uint8Array ? String.fromCharCode(chunk[chunk.length - 1] ?? 10) : '\n';
      self.partial = !text.endsWith('\n');
      self.draw(true);
      return r;
    } as typeof err.write;
    err.write = patched;
    // restore only our own patch (a later patch on top stays, and passes through ours)
    this.unpatch = () => { if (err.write === patched) err.write = orig; };
  }

  /** a log line (newline included), printed above the bar */
  above(line: string): void {
    if (this.drawn) { this.raw(CLEAR); this.drawn = false; }
    this.raw(line);
    this.partial = !line.endsWith('\n');
    if (!this.ended) this.draw(true);
  }

  /** redraw; unforced redraws (updates) at most every 100 ms */
  draw(force: boolean): void {
    if (this.ended || this.partial) return;
    const t = this.now();
    if (!force && t - this.lastDraw < 100) return;
    const width = Math.max(20, (this.stream.columns || 80) - 1);
    let text = this.render(width);
    if (text.length > width) text = text.slice(0, width);
    if (this.drawn && text === this.lastText) return;
    this.raw(`\r${text}\u001b[K`);
    this.drawn = true;
    this.lastText = text;
    this.lastDraw = t;
  }

  /** take the bar away; `finalLine` (a log line) is printed where it was */
  end(finalLine?: () => void): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer) clearInterval(this.timer);
    if (this.drawn) { this.raw(CLEAR); this.drawn = false; }
    // the final line goes through the log while our interceptor still routes it to this stream
    finalLine?.();
    setLogInterceptor(this.prevInterceptor);
    this.unpatch?.();
    process.removeListener('exit', this.onExit);
    if (activeBar === this) activeBar = null;
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * A progress report over `total` (0: unknown) in `unit` — 'bytes' is shown scaled (KB, MB, GB);
 * any other unit is a count (`steps`, `documents`, `rows` …).
 */
export function progress(label: string, total: number, unit = '', opts: ProgressOptions = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  const now = opts.now ?? Date.now;
  const everyMs = opts.everyMs ?? 10_000;
  let mode = opts.mode ?? progressMode(stream);
  if (mode === 'bar' && activeBar !== null) mode = 'lines';
  const t0 = now();
  const start = opts.start ?? 0;
  const meter = new RateMeter(opts.windowMs ?? 30_000, t0, start);
  let value = start;
  let tot = Math.max(0, total);
  let payload: ProgressPayload = {};
  let lastLine = t0;
  let finished = false;

  const elapsed = () => (now() - t0) / 1000;
  const overallRate = () => { const e = elapsed(); return e > 0 && value > start ? (value - start) / e : null; };
  const pct = () => (tot > 0 ? `${Math.floor((100 * Math.min(value, tot)) / tot)}%` : '');

  const statusParts = (): string[] => {
    const rate = meter.rate();
    const eta = meter.eta(tot, now());
    return [
      rate === null ? `? ${unit === 'bytes' ? 'MB' : unit || 'items'}/s` : formatRate(rate, unit),
      `elapsed ${formatDuration(elapsed())}${tot > 0 ? `, ETA ${eta === null ? '?' : formatDuration(eta)}` : ''}`,
    ];
  };

  const renderBar = (width: number): string => {
    const amount = `${tot > 0 ? pct().padStart(4) + ' ' : ''}${formatAmount(value, tot, unit)}`;
    const rest = [...statusParts(), ...(Object.keys(payload).length ? [formatPayload(payload).join(' ')] : [])].join(' | ');
    const fixed = label.length + amount.length + rest.length + 5;
    // a narrow terminal loses the bar glyphs before any figure
    if (tot <= 0 || width - fixed < 10) return `${label} ${amount} | ${rest}`;
    const size = Math.min(30, width - fixed);
    const filled = Math.round((size * Math.min(value, tot)) / tot);
    return `${label} ${'\u2588'.repeat(filled)}${'\u2591'.repeat(size - filled)} ${amount} | ${rest}`;
  };

  const record = (kind: 'update' | 'done' | 'stopped', summary?: string) => {
    const rate = kind === 'update' ? meter.rate() : overallRate();
    const eta = kind === 'update' ? meter.eta(tot, now()) : null;
    const round = (x: number | null, d: number) => (x === null ? null : Number(x.toFixed(d)));
    log.info(label, {
      progress: kind, value, total: tot > 0 ? tot : null, unit: unit || null, start, rate: round(rate, 3), eta_s: round(eta, 1),
      elapsed_s: round(elapsed(), 1), ...payload, ...(summary ? { summary } : {}),
    });
  };

  const line = () => {
    const amount = formatAmount(value, tot, unit);
    log.info(`${label}: ${amount}${tot > 0 ? ` (${pct()})` : ''}, ${statusParts().join(', ')}${Object.keys(payload).length ? ', ' + formatPayload(payload).join(' ') : ''}`);
  };

  const finalText = (kind: 'done' | 'stopped', summary?: string): string => {
    const rate = overallRate();
    const r = rate === null ? '' : ` (${formatRate(rate, unit)})`;
    // a resumed run says where it started: its time and rate are this run's only
    const from = start > 0 ? ` (from ${formatAmount(start, 0, unit === 'bytes' ? unit : '')})` : '';
    const head = kind === 'done'
      ? `${label}: done ${formatAmount(value, tot, unit)}${from} in ${formatDuration(elapsed())}${r}`
      : `${label}: stopped at ${formatAmount(value, tot, unit)}${from} after ${formatDuration(elapsed())}${r}`;
    return `${head}${summary ? `, ${summary}` : ''}`;
  };

  let bar: TerminalLine | null = null;
  if (mode === 'bar') bar = activeBar = new TerminalLine(stream, renderBar, now, opts.tickMs ?? 1000);

  const finish = (kind: 'done' | 'stopped', summary?: string) => {
    if (finished) return;
    finished = true;
    const print = () => { if (mode === 'json') record(kind, summary); else log.info(finalText(kind, summary)); };
    if (bar) bar.end(print); else print();
  };

  return {
    update(v, p) {
      if (finished) return;
      value = v;
      if (p) payload = { ...payload, ...p };
      const t = now();
      meter.add(t, v);
      if (bar) { bar.draw(false); return; }
      // the first line only once there is progress, then every `everyMs`
      if (value > start && t - lastLine >= everyMs) {
        lastLine = t;
        if (mode === 'json') record('update'); else line();
      }
    },
    setTotal(n) { tot = Math.max(0, n); },
    done: (summary) => finish('done', summary),
    stopped: (summary) => finish('stopped', summary),
    abort() {
      if (finished) return;
      finished = true;
      bar?.end();
    },
  };
}
