/**
 * Logging for every command: human text by default, one JSON object a line with
 * `--log-format json`. Logs go to stderr so stdout stays for command output (ids, JSON reports).
 */
export type LogFormat = 'text' | 'json';
export type LogFields = Record<string, string | number | boolean | null | undefined>;

let format: LogFormat = 'text';
let quiet = false;

export function setLogFormat(f: LogFormat): void { format = f; }
export function getLogFormat(): LogFormat { return format; }
export function setQuiet(q: boolean): void { quiet = q; }

function emit(level: 'info' | 'warn' | 'error', msg: string, fields?: LogFields): void {
  if (quiet && level === 'info') return;
  if (format === 'json') {
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n');
    return;
  }
  const extra = fields
    ? Object.entries(fields).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${typeof v === 'number' ? fmtNum(v) : v}`).join(' ')
    : '';
  const prefix = level === 'info' ? '' : `${level}: `;
  process.stderr.write(`${prefix}${msg}${extra ? ' ' + extra : ''}\n`);
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
