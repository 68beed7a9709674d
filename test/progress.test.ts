/**
 * Progress (src/util/progress.ts, src/train/progress.ts): the formatting and the recent-rate ETA on
 * a fake clock; plain lines off a terminal (the first only after progress, always a final line);
 * JSON records; the bar on a fake terminal with log lines printed above it (and worker-thread
 * writes to process.stderr); a bar never keeps the process alive; and through the real CLI:
 * `tokenizer train` and `data prepare` on the built-in sample (final line with the real total, no
 * `0/…` line; every stderr line JSON with --log-format json), `train` and a resumed `train`.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { log, setLogFormat, setLogInterceptor } from '../src/util/log.ts';
import { formatAmount, formatDuration, formatRate, progress, RateMeter, type ProgressStream } from '../src/util/progress.ts';
import { trainProgress } from '../src/train/progress.ts';
import type { StepEvent } from '../src/events/index.ts';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-progress-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

function fakeClock(t = 1_000_000) {
  return { now: () => t, advance: (ms: number) => { t += ms; } };
}

/** Log lines while `f` runs (the interceptor a bar saves and restores sits under this one). */
function captureLog<T>(f: (lines: string[]) => T): T {
  const lines: string[] = [];
  const prev = setLogInterceptor((l) => { lines.push(l); });
  try { return f(lines); } finally { setLogInterceptor(prev); }
}

/** A terminal: the screen lines after `out` (handles \r, \n, ESC[K — all a bar may write). */
function screen(out: string): string[] {
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(out.replace(/\u001b\[K/g, ''), /\u001b/, 'no escape sequence but ESC[K');
  const lines = [''];
  let col = 0;
  for (let i = 0; i < out.length; i++) {
    const last = lines.length - 1;
    if (out.startsWith('\u001b[K', i)) { lines[last] = lines[last].slice(0, col); i += 2; continue; }
    const c = out[i];
    if (c === '\r') col = 0;
    else if (c === '\n') { lines.push(''); col = 0; } else { lines[last] = lines[last].slice(0, col).padEnd(col) + c + lines[last].slice(col + 1); col++; }
  }
  return lines;
}

function fakeTty(columns = 120): ProgressStream & { out: string } {
  return { isTTY: true, columns, out: '', write(s: string) { this.out += s; return true; } };
}

setLogFormat('text');

test('formatting: durations, scaled byte amounts (never 0/1 MB), counts, rates', () => {
  assert.equal(formatDuration(3.21), '3.2 s');
  assert.equal(formatDuration(42.4), '42 s');
  assert.equal(formatDuration(185), '3m 05s');
  assert.equal(formatDuration(3720), '1h 02m');
  assert.equal(formatAmount(0, 1_000_000, 'bytes'), '0.0/1.0 MB');
  assert.equal(formatAmount(400_000, 1_000_000, 'bytes'), '0.4/1.0 MB');
  assert.equal(formatAmount(120_000, 350_000, 'bytes'), '120/350 KB');
  assert.equal(formatAmount(450, 900, 'bytes'), '450/900 bytes');
  assert.equal(formatAmount(1_234_567_890, 2_000_000_000, 'bytes'), '1.2/2.0 GB');
  assert.equal(formatAmount(250_000, 0, 'bytes'), '250 KB');
  assert.equal(formatAmount(1234, 10000, 'documents'), '1,234/10,000 documents');
  assert.equal(formatAmount(17, 0, 'rows'), '17 rows');
  assert.equal(formatRate(1_200_000, 'bytes'), '1.2 MB/s');
  assert.equal(formatRate(340_000, 'bytes'), '340 KB/s');
  assert.equal(formatRate(1.83, 'steps'), '1.8 steps/s');
  assert.equal(formatRate(0.125, 'steps'), '0.13 steps/s');
  assert.equal(formatRate(1234.4, 'documents'), '1,234 documents/s');
});

test('RateMeter: the recent rate, not the run average; start-up not counted; ETA counts down, grows in a stall', () => {
  // a slow start (10 s before the first unit), then 1 unit/s: the start-up interval is dropped
  const m0 = new RateMeter(30_000, 0, 0);
  m0.add(10_000, 1); m0.add(11_000, 2); m0.add(12_000, 3);
  assert.equal(m0.rate(), 1);

  const m = new RateMeter(30_000, 0, 0);
  let t = 0, v = 0;
  for (let i = 0; i < 60; i++) { t += 1000; v += 10; m.add(t, v); }
  assert.equal(m.rate(), 10);
  assert.equal(m.eta(1000, t), 40);
  // between updates the estimate counts down
  assert.equal(m.eta(1000, t + 5000), 35);
  // the pace drops to 1/s: after a window the rate is the new one, not the average (630/90 = 7)
  for (let i = 0; i < 30; i++) { t += 1000; v += 1; m.add(t, v); }
  assert.ok(Math.abs(m.rate()! - 1) < 1e-9, String(m.rate()));
  const remaining = 1000 - v;
  assert.ok(Math.abs(m.eta(1000, t)! - remaining) < 1e-6);
  // a stall: past the countdown the estimate grows with the time since the window's start
  const later = m.eta(1000, t + 2 * remaining * 1000)!;
  const evenLater = m.eta(1000, t + 4 * remaining * 1000)!;
  assert.ok(later > 0 && evenLater > later, `${later} then ${evenLater}`);
  // unknown total or no progress yet: no ETA; done: 0
  assert.equal(m.eta(0, t), null);
  assert.equal(new RateMeter(30_000, 0, 5).eta(10, 1000), null);
  assert.equal(m.eta(v, t), 0);
  // many updates close together stay a few samples (merged under 100 ms)
  const dense = new RateMeter(30_000, 0, 0);
  for (let i = 1; i <= 100_000; i++) dense.add(i, i);
  assert.equal(dense.rate(), 1000);
});

test('off a terminal: no line before progress, then one every ~10 s, and a final line with the real total', () => {
  const clock = fakeClock();
  const lines = captureLog((lines) => {
    const p = progress('prepare', 1_000_000, 'bytes', { mode: 'lines', now: clock.now });
    clock.advance(12_000); p.update(0);
    assert.deepEqual(lines, [], 'no line without progress, however long');
    clock.advance(1000); p.update(100_000, { docs: 12 });
    assert.equal(lines.length, 1);
    clock.advance(2000); p.update(200_000, { docs: 30 });
    assert.equal(lines.length, 1, 'not again within 10 s');
    clock.advance(10_000); p.update(600_000, { docs: 80 });
    assert.equal(lines.length, 2);
    p.update(1_000_000, { docs: 168 });
    p.done('168 docs');
    p.done('again');
    p.update(5);
    return lines;
  });
  assert.match(lines[0], /^prepare: 0\.1\/1\.0 MB \(10%\), [\d.]+ KB\/s, elapsed 13 s, ETA [^,]+, docs=12\n$/);
  assert.match(lines[1], /^prepare: 0\.6\/1\.0 MB \(60%\), .*docs=80\n$/);
  assert.equal(lines[2], 'prepare: done 1.0/1.0 MB in 25 s (40.0 KB/s), 168 docs\n');
  assert.equal(lines.length, 3, 'one final line; nothing after it');
  for (const l of lines) assert.doesNotMatch(l, /(^|\s)0(\.0)?\//, 'no 0/… line');
});

test('off a terminal: abort() (the error path) prints nothing; stopped() says where it stopped', () => {
  const clock = fakeClock();
  const lines = captureLog((lines) => {
    const a = progress('clean', 5000, 'bytes', { mode: 'lines', now: clock.now });
    a.update(100);
    a.abort();
    a.done('not after abort');
    const s = progress('crawl', 0, 'rows', { mode: 'lines', now: clock.now, start: 200 });
    clock.advance(4000); s.update(300);
    s.stopped('interrupted');
    return lines;
  });
  assert.deepEqual(lines, ['crawl: stopped at 300 rows (from 200) after 4.0 s (25.0 rows/s), interrupted\n']);
});

test('--log-format json: records with value, total, unit, eta_s, rate; the final one too', () => {
  const clock = fakeClock();
  setLogFormat('json');
  let lines: string[];
  try {
    lines = captureLog((lines) => {
      const p = progress('eval', 200, 'documents', { now: clock.now });
      clock.advance(11_000); p.update(50, { tokens: 999 });
      clock.advance(5000); p.update(200);
      p.done('9,999 tokens');
      return lines;
    });
  } finally { setLogFormat('text'); }
  const recs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(recs.length, 2);
  assert.deepEqual({ ...recs[0], time: 0 }, {
    time: 0, level: 'info', msg: 'eval', progress: 'update', value: 50, total: 200, unit: 'documents', start: 0,
    rate: Number((50 / 11).toFixed(3)), eta_s: 33, elapsed_s: 11, tokens: 999,
  });
  assert.equal(recs[1].progress, 'done');
  assert.equal(recs[1].value, 200);
  assert.equal(recs[1].total, 200);
  assert.equal(recs[1].rate, 12.5);
  assert.equal(recs[1].summary, '9,999 tokens');
});

test('on a terminal: a log line mid-bar prints on its own line above the bar, which is redrawn; the final line replaces the bar', () => {
  const clock = fakeClock();
  const tty = fakeTty(120);
  const elsewhere = captureLog((elsewhere) => {
    const p = progress('eval', 200, 'documents', { stream: tty, mode: 'bar', now: clock.now, tickMs: 0 });
    clock.advance(1000); p.update(50, { tokens: 1234 });
    let s = screen(tty.out);
    assert.equal(s.length, 1);
    assert.match(s[0], /^eval █+░+  25% 50\/200 documents \| .* \| elapsed 1\.0 s, ETA .* \| tokens=1,234$/);
    log.info('a log line', { step: 3 });
    s = screen(tty.out);
    assert.equal(s[0], 'a log line step=3');
    assert.match(s[1], /^eval .* 50\/200 documents/, 'the bar is drawn again under the line');
    assert.equal(s.length, 2);
    assert.ok(tty.out.endsWith('\u001b[K'), 'the bar is the last thing written');
    clock.advance(1000); p.update(100);
    log.warn('second line');
    s = screen(tty.out);
    assert.deepEqual(s.slice(0, 2), ['a log line step=3', 'warn: second line']);
    assert.match(s[2], /^eval .* 50% 100\/200 documents/);
    p.update(200);
    p.done('9,999 tokens');
    s = screen(tty.out);
    assert.deepEqual(s, ['a log line step=3', 'warn: second line', 'eval: done 200/200 documents in 2.0 s (100 documents/s), 9,999 tokens', '']);
    // the bar is gone: logs go where they went before it
    log.info('after the bar');
    return elsewhere;
  });
  assert.deepEqual(elsewhere, ['after the bar\n']);
  assert.doesNotMatch(tty.out, /after the bar/);
});

test('on a terminal: writes to process.stderr (a worker thread, a direct write) also print above the bar', async () => {
  const clock = fakeClock();
  const err = process.stderr;
  const orig = err.write;
  let out = '';
  const recorder = ((chunk: string | Uint8Array) => { out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'); return true; }) as typeof err.write;
  err.write = recorder;
  try {
    const p = progress('train', 10, 'steps', { stream: err as ProgressStream, mode: 'bar', now: clock.now, tickMs: 0 });
    clock.advance(1000); p.update(3, { loss: 3.5 });
    // a worker thread's stderr is piped through this thread's process.stderr
    const w = new Worker("process.stderr.write('from a thread\\n')", { eval: true });
    await once(w, 'exit');
    const deadline = Date.now() + 20_000;
    while (!out.includes('from a thread')) {
      if (Date.now() > deadline) assert.fail(`the thread's line never arrived: ${JSON.stringify(out)}`);
      await sleep(20);
    }
    let s = screen(out);
    assert.equal(s[0], 'from a thread');
    // (no bar glyphs at 80 columns, process.stderr's width when it is no terminal: the figures come first)
    assert.match(s[1], /^train (█+░+ )? 30% 3\/10 steps \| 3\.0 steps\/s \| elapsed 1\.0 s, ETA [\d.]+ s \| loss=3\.500$/);
    err.write('direct write\n');
    s = screen(out);
    assert.deepEqual(s.slice(0, 2), ['from a thread', 'direct write']);
    assert.match(s[2], /^train .* 3\/10 steps/);
    p.stopped();
    assert.deepEqual(screen(out), ['from a thread', 'direct write', 'train: stopped at 3/10 steps after 1.0 s (3.0 steps/s)', '']);
    assert.equal(err.write, recorder, 'process.stderr.write is given back when the bar ends');
  } finally {
    err.write = orig;
  }
});

test('a drawn bar never keeps the process alive (its redraw timer is unref\'d)', () => {
  const script = [
    "import { progress } from './src/util/progress.ts';",
    "const tty = { isTTY: true, columns: 80, write: () => true };",
    "const p = progress('x', 100, 'steps', { stream: tty, mode: 'bar', tickMs: 50 });",
    "p.update(1);",
    "console.log('left running');",
  ].join('\n');
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.signal, null, 'exited by itself, not killed at the deadline');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'left running\n');
});

function step(n: number, loss = 4): StepEvent {
  return {
    step: n, loss, tokens: 1000, paddedTokens: 1200, bucket: 64, lr: 1e-3, gradNorm: 1, workers: 1,
    timing: { total: 0.5, compute: 0.4, waitStragglers: 0, reduce: 0.05, optimizer: 0.03, publish: 0.02 },
  };
}

test('train progress: a resumed run starts at its step, counts only its own steps, ends with one line', async () => {
  const clock = fakeClock();
  const lines = await (async () => {
    const lines: string[] = [];
    const prev = setLogInterceptor((l) => { lines.push(l); });
    try {
      const tp = trainProgress('train', { mode: 'lines', now: clock.now });
      tp.observer.onStart!({ backend: 'wasm', workers: 1, config: {}, step: 5, steps: 10 });
      for (let s = 6; s <= 10; s++) {
        clock.advance(2000);
        tp.observer.onStep!(step(s, 4.0123 - s / 10));
        if (s === 10) log.info('step', { step: 10 });
      }
      await Promise.resolve();
      tp.close();
      return lines;
    } finally { setLogInterceptor(prev); }
  })();
  // the periodic line at 10 s; the loop's own step line; then the final line (5 steps in 10 s)
  assert.equal(lines.length, 3, lines.join(''));
  assert.match(lines[0], /^train: 10\/10 steps \(100%\), 0\.50 steps\/s, elapsed 10 s, ETA 0\.0 s, loss=3\.012 tok\/s=2,000\n$/);
  assert.equal(lines[1], 'step step=10\n');
  assert.equal(lines[2], 'train: done 10/10 steps (from 5) in 10 s (0.50 steps/s), loss 3.012\n');
});

test('train progress: stopped early → a `stopped at` line; no step taken → no line', () => {
  const clock = fakeClock();
  const lines = captureLog((lines) => {
    const a = trainProgress('train', { mode: 'lines', now: clock.now });
    a.observer.onStart!({ backend: 'wasm', workers: 2, config: {}, step: 0, steps: 100 });
    clock.advance(1000); a.observer.onStep!(step(1));
    clock.advance(1000); a.observer.onStep!(step(2));
    a.close();
    a.close();
    const b = trainProgress('train', { mode: 'lines', now: clock.now });
    b.observer.onStart!({ backend: 'wasm', workers: 2, config: {}, step: 0, steps: 100 });
    b.close();
    return lines;
  });
  assert.deepEqual(lines, ['train: stopped at 2/100 steps after 2.0 s (1.0 steps/s)\n']);
});

// ---------------------------------------------------------------------------------------------
// the real CLI, off a terminal (CI=1) and with --log-format json

const SAMPLE = 'data/sample';
const sampleFiles = readdirSync(SAMPLE).filter((f) => f.endsWith('.jsonl')).map((f) => path.join(SAMPLE, f));
const sampleBytes = sampleFiles.reduce((a, f) => a + statSync(f).size, 0);
const tok = path.join(root, 'tokenizer.json');
const data = path.join(root, 'data');

function vilm(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, CI: '1', ...env } });
  assert.equal(r.signal, null, `vilm ${args.join(' ')}: killed at the deadline`);
  return r;
}

function jsonLines(stderr: string): Record<string, unknown>[] {
  const lines = stderr.split('\n').filter((l) => l !== '');
  return lines.map((l) => {
    try { return JSON.parse(l) as Record<string, unknown>; } catch { return assert.fail(`not JSON: ${l}`); }
  });
}

test('CLI off a terminal: tokenizer train and data prepare end with a final line of the real total; no 0/… line', { timeout: 300_000 }, () => {
  const total = formatAmount(sampleBytes, sampleBytes, 'bytes');
  assert.ok(sampleBytes < 1e6, 'the sample is under a MB: the case that printed 0/1 MB');
  const t = vilm(['tokenizer', 'train', '--in', ...sampleFiles, '--vocab-size', '512', '--out', tok]);
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stderr, new RegExp(`^tokenizer train \\(reading\\): done ${total.replace(/[/.]/g, '\\$&')} in [\\d.]+ s \\([\\d.]+ [KM]B/s\\), \\d+ documents$`, 'm'));
  const p = vilm(['data', 'prepare', '--in', ...sampleFiles, '--tokenizer', tok, '--out', data, '--max-len', '128', '--buckets', '32,64,96,128']);
  assert.equal(p.status, 0, p.stderr);
  const finals = p.stderr.split('\n').filter((l) => l.startsWith('prepare: done '));
  assert.equal(finals.length, 1, p.stderr);
  assert.match(finals[0], new RegExp(`^prepare: done ${total.replace(/[/.]/g, '\\$&')} in [\\d.]+ s \\(.*\\), \\d+ docs$`));
  assert.doesNotMatch(p.stderr, /(^|\s)0(\.0)?\/\d/m, 'no 0/… line');
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(p.stderr + t.stderr, /\r|\u001b/, 'no terminal control off a terminal');
});

test('CLI --log-format json: every stderr line of data prepare is JSON, the final record carries the real total', { timeout: 300_000 }, () => {
  const p = vilm(['data', 'prepare', '--log-format', 'json', '--in', ...sampleFiles, '--tokenizer', tok, '--out', path.join(root, 'data-json'), '--max-len', '128', '--buckets', '32,64,96,128']);
  assert.equal(p.status, 0, p.stderr);
  const recs = jsonLines(p.stderr);
  const done = recs.filter((r) => r.msg === 'prepare' && r.progress === 'done');
  assert.equal(done.length, 1, p.stderr);
  assert.equal(done[0].value, sampleBytes);
  assert.equal(done[0].total, sampleBytes);
  assert.equal(done[0].unit, 'bytes');
  assert.equal(typeof done[0].rate, 'number');
});

test('CLI train (json): step records and a final progress record; a resumed run\'s progress starts at its step', { timeout: 300_000 }, () => {
  copyFileSync(tok, path.join(data, 'tokenizer.json'));
  const out = path.join(root, 'run');
  const base = ['train', '--config', 'configs/test.yaml', '--data', data, '--out', out, '--backend', 'wasm', '--test-sequences', '8', '--metrics-port', '0', '--log-format', 'json'];
  const a = vilm([...base, '--steps', '3']);
  assert.equal(a.status, 0, a.stderr);
  const ra = jsonLines(a.stderr);
  assert.deepEqual(ra.filter((r) => r.msg === 'step').map((r) => r.step), [1, 2, 3]);
  const da = ra.filter((r) => r.msg === 'train' && (r.progress === 'done' || r.progress === 'stopped'));
  assert.deepEqual(da.map((r) => [r.progress, r.start, r.value, r.total, r.unit]), [['done', 0, 3, 3, 'steps']]);
  assert.equal(typeof da[0].loss, 'number');
  const b = vilm([...base, '--steps', '5', '--resume']);
  assert.equal(b.status, 0, b.stderr);
  const rb = jsonLines(b.stderr);
  assert.deepEqual(rb.filter((r) => r.msg === 'step').map((r) => r.step), [4, 5]);
  const db = rb.filter((r) => r.msg === 'train' && (r.progress === 'done' || r.progress === 'stopped'));
  assert.deepEqual(db.map((r) => [r.progress, r.start, r.value, r.total]), [['done', 3, 5, 5]]);
});
