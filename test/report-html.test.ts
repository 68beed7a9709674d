import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync, appendFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { SaxesParser } from 'saxes';
import { loadRun, renderReport, summarizeWorkers, writeReport } from '../src/report/index.ts';
import type { RunLogRecord } from '../src/events/index.ts';
import { Rng } from '../src/util/rng.ts';

/** A realistic run folder: start, N steps with 3 workers each, validation every 10, test, final.json. */
function makeRun(steps = 30, finished = true): { dir: string; records: RunLogRecord[] } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vilm-report-'));
  const rng = new Rng(3);
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  const time = (i: number) => new Date(t0 + i * 1000).toISOString();
  const records: RunLogRecord[] = [{ type: 'start', time: time(0), config: { model: { d_model: 64, n_layers: 3 }, train: { optimizer: 'adam', steps } }, workers: 3, backend: 'wasm' }];
  for (let s = 1; s <= steps; s++) {
    const compute = 0.3 + 0.1 * rng.next();
    const timing = { total: compute + 0.06, compute, waitStragglers: 0.05 * rng.next(), reduce: 0.02, optimizer: 0.03, publish: 0.005 };
    records.push({ type: 'step', time: time(s), step: s, loss: 9.2 * Math.exp(-s / 40) + 0.05 * rng.next(), tokens: 3500 + Math.floor(500 * rng.next()), paddedTokens: 4096, bucket: 100, lr: 3e-3, gradNorm: 1 + rng.next(), timing, workers: 3 });
    for (const [id, transport] of [['t0', 'thread'], ['t1', 'thread'], ['ws-a', 'ws']] as const) {
      records.push({ type: 'worker', time: time(s), step: s, workerId: id, transport, microShards: id === 'ws-a' ? 2 : 3, computeSeconds: compute * (id === 'ws-a' ? 0.5 : 0.9), bytesSent: 1e5, bytesReceived: 4e5 });
    }
    if (s % 10 === 0) records.push({ type: 'val', time: time(s), step: s, loss: 9.3 * Math.exp(-s / 40), tokens: 2000, lossSe: 0.01, bitsPerByte: 2.4, bitsPerByteSe: 0.004, sequences: 8, trainSeconds: s, whole: false });
  }
  if (finished) records.push({ type: 'test', time: time(steps + 1), step: steps, loss: 4.4321, ppl: Math.exp(4.4321), bitsPerByte: 1.9876 });
  writeFileSync(path.join(dir, 'log.jsonl'), records.map((r) => JSON.stringify(r) + '\n').join(''));
  if (finished) writeFileSync(path.join(dir, 'final.json'), JSON.stringify({ step: steps, weightsSha256: 'ab12cd34', trainLoss: 4.5, valLoss: 4.47, testLoss: 4.4321, testPpl: Math.exp(4.4321), testBitsPerByte: 1.9876 }, null, 2));
  return { dir, records };
}

function svgs(html: string): string[] {
  return [...html.matchAll(/<svg[\s\S]*?<\/svg>/g)].map((m) => m[0]);
}

/** Parse each SVG as XML (saxes): collects elements with their attributes. */
function parseSvg(svg: string): { name: string; attrs: Record<string, string> }[] {
  const out: { name: string; attrs: Record<string, string> }[] = [];
  const p = new SaxesParser({ xmlns: false });
  p.on('error', (e) => { throw e; });
  p.on('opentag', (t) => out.push({ name: t.name, attrs: t.attributes as Record<string, string> }));
  p.write(svg).close();
  return out;
}

function cli(...args: string[]) {
  return spawnSync('node', ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', timeout: 60_000 });
}

test('vilm report writes a self-contained HTML with one point per step and the final numbers', { timeout: 120_000 }, () => {
  const { dir, records } = makeRun(30);
  const r = cli('report', dir);
  assert.equal(r.status, 0, r.stderr);
  const out = path.join(dir, 'report.html');
  assert.equal(r.stdout.trim(), out);
  const html = readFileSync(out, 'utf8');
  // nothing half-written left beside it (atomic write)
  assert.deepEqual(readdirSync(dir).sort(), ['final.json', 'log.jsonl', 'report.html']);
  // self-contained: no external resources, no scripts
  assert.doesNotMatch(html, /<script|<link |src="http|href="http|@import/i);

  const charts = svgs(html);
  assert.equal(charts.length, 4, 'loss, throughput, workers, step-time parts');
  const els = charts.map(parseSvg);
  const series = (name: string) => els.flat().find((e) => e.attrs['data-series'] === name);
  const pointCount = (pts: string) => pts.trim().split(/\s+/).length;

  const steps = records.filter((x) => x.type === 'step');
  const vals = records.filter((x) => x.type === 'val');
  assert.equal(pointCount(series('train loss')!.attrs.points), steps.length);
  assert.equal(pointCount(series('validation loss')!.attrs.points), vals.length);
  assert.equal(els.flat().filter((e) => e.name === 'circle').length, vals.length);
  assert.equal(pointCount(series('tokens/s (non-pad targets / step time)')!.attrs.points), steps.length);
  // stacked step parts: each polygon goes along the top and back along the bottom
  const layers = els[3].filter((e) => e.name === 'polygon');
  assert.deepEqual(layers.map((l) => l.attrs['data-series']), ['compute', 'wait for stragglers', 'reduce', 'optimizer', 'publish', 'other']);
  for (const l of layers) assert.equal(pointCount(l.attrs.points), 2 * steps.length);
  // loss goes down, so the last point of the train-loss line is lower on screen (larger y) than the first
  const lossPts = series('train loss')!.attrs.points.split(' ').map((p) => p.split(',').map(Number));
  assert.ok(lossPts[lossPts.length - 1][1] > lossPts[0][1]);

  // one bar per worker, utilisation = its compute seconds over the step time of its steps
  const bars = els[2].filter((e) => e.name === 'rect' && e.attrs.class === 'bar').map((e) => e.attrs['data-series']);
  assert.deepEqual(bars, ['t0', 't1', 'ws-a']);
  const wsCompute = records.filter((x) => x.type === 'worker' && x.workerId === 'ws-a').reduce((a, x) => a + (x as { computeSeconds: number }).computeSeconds, 0);
  const wall = steps.reduce((a, x) => a + (x as { timing: { total: number } }).timing.total, 0);
  assert.ok(html.includes(`${(100 * wsCompute / wall).toFixed(1)}%`));
  assert.ok(html.includes('60 micro-shards'));

  // final.json numbers, test metrics and the config
  for (const s of ['4.432', '1.988', 'ab12cd34', 'testBitsPerByte', 'finished', 'd_model: 64', 'optimizer: adam', 'wasm']) assert.ok(html.includes(s), s);
  const tokens = steps.reduce((a, x) => a + (x as { tokens: number }).tokens, 0);
  assert.ok(html.includes(tokens.toLocaleString('en-US')), 'total tokens');
});

test('--out writes elsewhere; an unfinished run (no final.json, partial last line) still reports', { timeout: 120_000 }, async () => {
  const { dir } = makeRun(12, false);
  appendFileSync(path.join(dir, 'log.jsonl'), '{"type":"step","ti');
  const d = loadRun(dir);
  assert.equal(d.truncatedTail, true);
  assert.equal(d.final, null);
  assert.equal(d.steps.length, 12);
  const html = renderReport(d);
  assert.match(html, /unfinished \(no final\.json\)/);
  const w = summarizeWorkers(d);
  assert.deepEqual(w.map((x) => x.microShards), [36, 36, 24]);

  const outDir = mkdtempSync(path.join(os.tmpdir(), 'vilm-report-out-'));
  const out = path.join(outDir, 'sub', 'r.html');
  assert.equal(await writeReport(dir, out), out);
  assert.equal(svgs(readFileSync(out, 'utf8')).length, 4);
  assert.ok(!readdirSync(dir).includes('report.html'));
});

test('bad or missing run folders give a one-line error naming the file (and line)', { timeout: 120_000 }, () => {
  assert.throws(() => loadRun(path.join(os.tmpdir(), 'no-such-run-vilm')), { name: 'UserError', message: /no-such-run-vilm: no such run folder$/ });

  const empty = mkdtempSync(path.join(os.tmpdir(), 'vilm-report-empty-'));
  assert.throws(() => loadRun(empty), /log\.jsonl: cannot read \(ENOENT\)/);

  const { dir } = makeRun(5);
  const file = path.join(dir, 'log.jsonl');
  const lines = readFileSync(file, 'utf8').split('\n');
  lines[3] = '{not json';
  writeFileSync(file, lines.join('\n'));
  const bad = cli('report', dir);
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  assert.match(bad.stderr, /^vilm: .*log\.jsonl:4: invalid JSON/);

  lines[3] = JSON.stringify({ type: 'step', time: 'x', step: 2, loss: 1, tokens: 1, paddedTokens: 1, lr: 1, gradNorm: 1, workers: 1, timing: { total: 1 } });
  writeFileSync(file, lines.join('\n'));
  assert.throws(() => loadRun(dir), /log\.jsonl:4: step record needs a number 'timing\.compute'/);
  lines[3] = JSON.stringify({ type: 'mystery' });
  writeFileSync(file, lines.join('\n'));
  assert.throws(() => loadRun(dir), /log\.jsonl:4: unknown record type "mystery"/);

  const noSteps = mkdtempSync(path.join(os.tmpdir(), 'vilm-report-nosteps-'));
  writeFileSync(path.join(noSteps, 'log.jsonl'), JSON.stringify({ type: 'start', time: 'x', config: {}, workers: 1, backend: 'wasm' }) + '\n');
  assert.throws(() => loadRun(noSteps), /no step records yet/);

  const { dir: badFinal } = makeRun(3);
  writeFileSync(path.join(badFinal, 'final.json'), '{"step": 3,');
  assert.throws(() => loadRun(badFinal), /final\.json: invalid JSON/);
});

test('vilm report --help shows examples', { timeout: 120_000 }, () => {
  const h = cli('report', '--help');
  assert.equal(h.status, 0);
  assert.match(h.stdout, /Examples:/);
  assert.match(h.stdout, /vilm report runs\/start/);
  assert.match(h.stdout, /--out/);
});
