/**
 * Logging for every command: human text by default, one JSON object a line with
 * `--log-format json`. Logs go to stderr so stdout stays for command output (ids, JSON reports).
 */
export type LogFormat = 'text' | 'json';
export type LogFields = Record<string, string | number | boolean | null | undefined>;

// VILM_LOG_FORMAT carries --log-format into worker threads (they copy the process's environment
// when they start and have their own copy of this module), so their lines are JSON too
let format: LogFormat = process.env.VILM_LOG_FORMAT === 'json' ? 'json' : 'text';
let quiet = false;

export function setLogFormat(f: LogFormat): void { format = f; process.env.VILM_LOG_FORMAT = f; }
export function getLogFormat(): LogFormat { return format; }
export function setQuiet(q: boolean): void { quiet = q; }

/**
 * Where a finished log line (text or JSON, newline included) goes instead of straight to stderr:
 * the progress bar (./progress.ts) registers one while it is drawn on a terminal, so each line is
 * printed above the bar (bar cleared, line written, bar redrawn) rather than over it. This module
 * knows nothing of the bar. Returns the interceptor it replaces (null: none).
 */
export type LogInterceptor = (line: string) => void;
let interceptor: LogInterceptor | null = null;
export function setLogInterceptor(f: LogInterceptor | null): LogInterceptor | null {
  const prev = interceptor;
  interceptor = f;
  return prev;
}

function write(line: string): void {
  if (interceptor) interceptor(line);
  else process.stderr.write(line);
}

function emit(level: 'info' | 'warn' | 'error', msg: string, fields?: LogFields): void {
  if (quiet && level === 'info') return;
  if (format === 'json') {
    write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n');
    return;
  }
  const extra = fields
    ? Object.entries(fields).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${typeof v === 'number' ? fmtNum(v) : typeof v === 'string' ? fmtString(v) : v}`).join(' ')
    : '';
  const prefix = level === 'info' ? '' : `${level}: `;
  write(`${prefix}${escapeControls(msg)}${extra ? ' ' + extra : ''}\n`);
}

/**
 * Text logs are one line per record whatever the values hold: control characters (a newline in a
 * worker's self-chosen name would forge a log line) are written as \n, \u001b …, and a field value
 * with spaces, quotes or '=' is quoted so `key=value` stays parseable.
 */
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
// eslint-disable-next-line no-control-regex
const HAS_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
function escapeControls(s: string): string {
  return s.replace(CONTROLS, (c) => ({ '\n': '\\n', '\r': '\\r', '\t': '\\t' } as Record<string, string>)[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
function fmtString(v: string): string {
  return /[\s"'=]/.test(v) || HAS_CONTROL.test(v) || v === '' ? `"${escapeControls(v.replace(/["\\]/g, (c) => `\\${c}`))}"` : v;
}

function fmtNum(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return v.toFixed(4);
}

export const log = {
  info: (msg: string, fields?: LogFields) => emit('info', msg, fields),
  warn: (msg: string, fields?: LogFields) => emit('warn', msg, fields),
  error: (msg: string, fields?: LogFields) => emit('error', msg, fields),
};
