/**
 * Metrics stay up after the run so that the final figures (test loss, perplexity) get scraped
 * (issue 12): only when something scraped during the run, until one scrape after the end, at most
 * --metrics-linger seconds; SIGTERM/Ctrl-C ends the wait at once with the run's exit code. Checked
 * on the server in-process, then through the real CLI.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { serveCoordinatorMetrics, type LingerOutcome } from '../src/metrics/coordinator.ts';
import { freePort } from '../scripts/fetch-prometheus.ts';
import { writeSyntheticData } from './support/synthetic-data.ts';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-metrics-linger-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const timeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

/** A promise's outcome, or 'pending' when it has not settled after `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'pending'>((r) => { timer = setTimeout(() => r('pending'), ms); });
  try { return await Promise.race([p, late]); } finally { clearTimeout(timer); }
}

test('linger: none without a scraper, until the next scrape with one, bounded by its deadline and a signal; no timer left', { timeout: 60_000 }, async () => {
  const m = await serveCoordinatorMetrics({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${m.port}/metrics`;
  const baseline = timeouts();
  try {
    // nothing ever scraped: nobody to wait for
    let t0 = performance.now();
    assert.equal(await m.linger(30), 'no-scraper');
    assert.ok(performance.now() - t0 < 500);
    assert.equal(await m.linger(0), 'off');
    // HEAD and other paths are not scrapes
    await fetch(url, { method: 'HEAD' });
    await fetch(`http://127.0.0.1:${m.port}/healthz`);
    assert.equal(m.scrapes, 0);
    assert.equal(await m.linger(30), 'no-scraper');

    // scraped during the run: wait for one more scrape, however long it takes (up to the deadline).
    // (The server's thread tells the main thread that a scrape was answered a moment after the
    // client has it; a HEAD above that counted would show here as 2.)
    await (await fetch(url)).text();
    for (const end = Date.now() + 5_000; m.scrapes < 1 && Date.now() < end;) await sleep(10);
    await sleep(100);
    assert.equal(m.scrapes, 1);
    const waiting = m.linger(30);
    assert.equal(await within(waiting, 700), 'pending', 'a scrape before the end does not end the linger');
    const body = await (await fetch(url)).text();
    assert.match(body, /^vilm_steps_total 0$/m);
    assert.equal(await within(waiting, 5_000), 'scraped');

    // no scrape within the deadline
    t0 = performance.now();
    assert.equal(await m.linger(0.4), 'timeout');
    const took = performance.now() - t0;
    assert.ok(took >= 350 && took < 5_000, `timeout after ${took} ms`);

    // a signal (Ctrl-C, SIGTERM) ends it at once
    const ac = new AbortController();
    const aborted = m.linger(30, ac.signal);
    await sleep(100);
    t0 = performance.now();
    ac.abort();
    assert.equal(await within(aborted, 2_000), 'aborted' satisfies LingerOutcome);
    assert.ok(performance.now() - t0 < 500);
    assert.equal(await m.linger(30, ac.signal), 'aborted', 'an already aborted signal: no wait');
    // every deadline timer was cleared
    assert.equal(timeouts(), baseline, process.getActiveResourcesInfo().join(', '));
  } finally { await m.close(); }
  // a linger on a closed server returns
  assert.notEqual(await within(m.linger(30), 2_000), 'pending');
});

// ---- through the real CLI ----

const data = writeSyntheticData(path.join(root, 'data'), { vocab: 500, buckets: [16, 32], rowsPerBucket: 8, seed: 11 });

interface Child { exited: Promise<number | null>; stdout(): string; stderr(): string; kill(sig: NodeJS.Signals): void; running(): boolean }

function train(out: string, extra: string[]): Child {
  const p = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'train', '--config', 'configs/test.yaml', '--data', data,
    '--out', path.join(root, out), '--backend', 'wasm', '--steps', '3', '--test-sequences', '4', '--set', 'train.eval_sequences=4', ...extra],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let so = '', se = '';
  p.stdout.on('data', (d: Buffer) => { so += d.toString(); });
  p.stderr.on('data', (d: Buffer) => { se += d.toString(); });
  let done = false;
  const exited = new Promise<number | null>((r) => p.once('exit', (code) => { done = true; r(code); }));
  return { exited, stdout: () => so, stderr: () => se, kill: (s) => p.kill(s), running: () => !done };
}

/** Wait for `cond`, failing with `what` (and the child's stderr) after `ms`. */
async function until(cond: () => boolean, ms: number, what: string, c: Child): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) { c.kill('SIGKILL'); assert.fail(`${what} within ${ms} ms\n${c.stderr().slice(-2000)}`); }
    await sleep(20);
  }
}

/** Scrape until the child's metrics answer once (during the run), failing after `ms`. */
async function scrapeOnce(url: string, c: Child, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.ok) return await r.text();
    } catch { /* not up yet */ }
    if (!c.running()) assert.fail(`the run ended before its metrics answered\n${c.stderr().slice(-2000)}`);
    if (Date.now() > deadline) { c.kill('SIGKILL'); assert.fail(`no /metrics within ${ms} ms`); }
    await sleep(20);
  }
}

const finalLine = (c: Child) => c.stdout().trim().split('\n').find((l) => l.startsWith('{"step"'));

test('vilm train: scraped during the run, it waits after the final figures until one more scrape takes them, then exits 0', { timeout: 180_000 }, async () => {
  const port = await freePort();
  const c = train('scraped', ['--metrics-port', String(port), '--metrics-linger', '60']);
  try {
    await scrapeOnce(`http://127.0.0.1:${port}/metrics`, c, 90_000);
    await until(() => finalLine(c) !== undefined, 120_000, 'final.json on stdout', c);
    // the run is over, the process waits (up to 60 s) for the scrape
    await sleep(1500);
    assert.ok(c.running(), `exited without waiting for a scrape:\n${c.stderr()}`);
    const waitLines = c.stderr().split('\n').filter((l) => l.includes('waiting up to 60 s for one more scrape of the final figures'));
    assert.equal(waitLines.length, 1, c.stderr());
    const final = JSON.parse(finalLine(c)!) as { step: number; testLoss: number };
    const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const testLoss = Number(/^vilm_test_loss (\S+)$/m.exec(body)?.[1]);
    assert.ok(Number.isFinite(testLoss) && Math.abs(testLoss - final.testLoss) < 1e-9, `test loss ${testLoss} vs final.json ${final.testLoss}`);
    assert.ok(Number.isFinite(Number(/^vilm_test_perplexity (\S+)$/m.exec(body)?.[1])));
    assert.match(body, /^vilm_global_step 3$/m);
    assert.match(body, /^vilm_planned_steps 3$/m);
    assert.match(body, /^vilm_eta_seconds 0$/m);
    // that scrape ends the linger: the process exits soon, with the run's code
    const t0 = Date.now();
    assert.equal(await within(c.exited, 10_000), 0, c.stderr());
    assert.ok(Date.now() - t0 < 10_000);
  } finally { if (c.running()) c.kill('SIGKILL'); }
});

test('vilm train: SIGTERM during the linger exits at once with the run\'s code; never scraped: no linger at all', { timeout: 240_000 }, async () => {
  const port = await freePort();
  const c = train('sigterm', ['--metrics-port', String(port), '--metrics-linger', '120']);
  try {
    await scrapeOnce(`http://127.0.0.1:${port}/metrics`, c, 90_000);
    await until(() => /waiting up to 120 s/.test(c.stderr()), 120_000, 'the linger line', c);
    assert.ok(finalLine(c), 'final.json is printed before the linger');
    const t0 = Date.now();
    c.kill('SIGTERM');
    assert.equal(await within(c.exited, 5_000), 0, `exit code after SIGTERM in the linger:\n${c.stderr()}`);
    assert.ok(Date.now() - t0 < 5_000);
    assert.doesNotMatch(c.stderr(), /again|without a final checkpoint/);
  } finally { if (c.running()) c.kill('SIGKILL'); }

  // nobody scrapes: the process ends right after the run, however long --metrics-linger is
  const port2 = await freePort();
  const d = train('unscraped', ['--metrics-port', String(port2), '--metrics-linger', '120']);
  try {
    await until(() => finalLine(d) !== undefined, 120_000, 'final.json on stdout', d);
    const t0 = Date.now();
    assert.equal(await within(d.exited, 10_000), 0, d.stderr());
    assert.ok(Date.now() - t0 < 10_000);
    assert.match(d.stderr(), new RegExp(`metrics on http://127\\.0\\.0\\.1:${port2}/metrics`));
    assert.doesNotMatch(d.stderr(), /waiting up to/);
  } finally { if (d.running()) d.kill('SIGKILL'); }
});
