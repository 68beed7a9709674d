import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { SaxesParser } from 'saxes';
import { crossing, labelRun, loadReferences, loadRun, reportTables, writeReports, type ReportTables, type ValPoint } from '../src/report/index.ts';

const TIMEOUT = { timeout: 120_000 };

interface ValSpec { step: number; loss: number; bpb: number | null; se?: number }

/**
 * A run folder: `steps` steps of 1,000 tokens and 6 s each (so step 10 = 1 training minute,
 * 10,000 tokens seen), validation points as given. `old`: val records in the older format
 * ({step, loss, tokens} only). `whole`: the end-of-run check on the whole validation split.
 */
function makeRun(root: string, name: string, o: { steps: number; vals: ValSpec[]; old?: boolean; whole?: ValSpec; optimizer?: string; lr?: number; finished?: boolean }): string {
  const dir = path.join(root, name);
  mkdirSync(dir, { recursive: true });
  const t0 = Date.parse('2026-02-01T00:00:00Z');
  const time = (i: number) => new Date(t0 + i * 6000).toISOString();
  const lines: object[] = [{ type: 'start', time: time(0), config: { model: { d_model: 64 }, train: { optimizer: o.optimizer ?? 'adam', lr: o.lr ?? 3e-3, steps: o.steps } }, workers: 1, backend: 'cpu' }];
  const valRec = (v: ValSpec, whole: boolean) => (o.old
    ? { type: 'val', time: time(v.step), step: v.step, loss: v.loss, tokens: 2000 }
    : {
      type: 'val', time: time(v.step), step: v.step, loss: v.loss, lossSe: v.se ?? 0.02, bitsPerByte: v.bpb, bitsPerByteSe: v.bpb === null ? null : 0.01,
      sequences: whole ? 100 : 16, tokens: whole ? 50_000 : 4000, trainSeconds: 6 * v.step, whole,
    });
  for (let s = 1; s <= o.steps; s++) {
    lines.push({
      type: 'step', time: time(s), step: s, loss: 8 - s / 10, tokens: 1000, paddedTokens: 1024, bucket: 64, lr: o.lr ?? 3e-3, gradNorm: 1,
      timing: { total: 6, compute: 5, waitStragglers: 0.5, reduce: 0.2, optimizer: 0.3, publish: 0.1 }, workers: 1,
    });
    for (const v of o.vals) if (v.step === s) lines.push(valRec(v, false));
  }
  if (o.whole) lines.push(valRec(o.whole, true));
  if (o.finished !== false) {
    lines.push({ type: 'test', time: time(o.steps + 1), step: o.steps, loss: 4.1, ppl: Math.exp(4.1), bitsPerByte: 1.7 });
    writeFileSync(path.join(dir, 'final.json'), JSON.stringify({
      step: o.steps, weightsSha256: 'ff00', trainLoss: 5, valLoss: o.vals[o.vals.length - 1].loss,
      valWholeLoss: o.whole?.loss ?? null, valWholeBitsPerByte: o.whole?.bpb ?? null, trainSeconds: 6 * o.steps,
      testLoss: 4.1, testPpl: Math.exp(4.1), testBitsPerByte: 1.7, testSequences: 123,
    }, null, 2));
  }
  writeFileSync(path.join(dir, 'log.jsonl'), lines.map((l) => JSON.stringify(l) + '\n').join(''));
  return dir;
}

/** Three runs and a references file: A crosses "target" (1.8) between 1 min (2.0) and 2 min (1.6) → 1.5 min. */
function fixture() {
  const root = mkdtempSync(path.join(os.tmpdir(), 'vilm-compare-'));
  const a = makeRun(root, 'run-a', {
    steps: 30, optimizer: 'adam', lr: 3e-3,
    vals: [{ step: 10, loss: 5, bpb: 2.0 }, { step: 20, loss: 4.5, bpb: 1.6 }, { step: 30, loss: 4.3, bpb: 1.5 }],
    whole: { step: 30, loss: 4.31, bpb: 1.52, se: 0.005 },
  });
  const b = makeRun(root, 'run-b', {
    steps: 30, optimizer: 'lion', lr: 1e-4,
    vals: [{ step: 10, loss: 5.5, bpb: 2.6 }, { step: 20, loss: 5.1, bpb: 2.2 }, { step: 30, loss: 4.9, bpb: 1.9 }],
  });
  const c = makeRun(root, 'run-c', { steps: 20, old: true, finished: false, vals: [{ step: 10, loss: 6, bpb: null }, { step: 20, loss: 5.6, bpb: null }] });
  const refs = path.join(root, 'refs.json');
  writeFileSync(refs, JSON.stringify({ references: [{ name: 'gzip -9', bitsPerByte: 2.44 }, { name: 'target', bitsPerByte: 1.8 }], text: 'Compressors on the same validation text.' }));
  return { root, a, b, c, refs };
}

function cli(args: string[], cwd?: string) {
  const main = path.resolve('src/cli/main.ts');
  return spawnSync('node', ['--import', 'tsx', main, ...args], { encoding: 'utf8', timeout: 60_000, cwd });
}

function svgs(html: string): string[] {
  return [...html.matchAll(/<svg[\s\S]*?<\/svg>/g)].map((m) => m[0]);
}

function parseXml(xml: string): { name: string; attrs: Record<string, string> }[] {
  const out: { name: string; attrs: Record<string, string> }[] = [];
  const p = new SaxesParser({ xmlns: false });
  p.on('error', (e) => { throw e; });
  p.on('opentag', (t) => out.push({ name: t.name, attrs: t.attributes as Record<string, string> }));
  p.write(xml).close();
  return out;
}

const title = (svg: string) => /aria-label="([^"]*)"/.exec(svg)?.[1] ?? '';
const polylines = (svg: string) => parseXml(svg).filter((e) => e.name === 'polyline').map((e) => e.attrs['data-series']);

test('crossing: linear interpolation between the bracketing points; first point; not reached; no data', TIMEOUT, () => {
  const pt = (step: number, minutes: number, tokensSeen: number, bpb: number | null): ValPoint => ({
    step, loss: 1, lossSe: null, bitsPerByte: bpb, bitsPerByteSe: null, sequences: null, tokens: null, trainSeconds: minutes * 60, whole: false, tokensSeen, minutes, minutesDerived: false,
  });
  const curve = [pt(10, 1, 1000, 2.0), pt(20, 2, 3000, 1.6), pt(30, 3, 5000, 1.5)];
  const c = crossing(curve, 1.8);
  assert.equal(c.status, 'reached');
  assert.equal(c.step, 20);
  assert.ok(Math.abs((c.minutes ?? NaN) - 1.5) < 1e-12, String(c.minutes));
  assert.equal(c.tokens, 2000);
  assert.equal(c.interpolated, true);
  assert.deepEqual(c.point, { minutes: 2, tokens: 3000, bitsPerByte: 1.6 });
  // exactly at a point: that point
  assert.deepEqual([crossing(curve, 1.6).minutes, crossing(curve, 1.6).step], [2, 20]);
  // already below at the first point: its own numbers, nothing interpolated
  assert.deepEqual({ ...crossing(curve, 2.5), point: null }, { status: 'reached', step: 10, minutes: 1, tokens: 1000, interpolated: false, point: null });
  assert.equal(crossing(curve, 1.0).status, 'not reached');
  // points without bits per byte are skipped when bracketing
  assert.equal(crossing([pt(10, 1, 1000, 2.0), pt(15, 1.5, 2000, null), pt(20, 2, 3000, 1.6)], 1.8).minutes, 1.5);
  assert.equal(crossing([pt(10, 1, 1000, null)], 1.8).status, 'no data');
});

test('vilm report RUN1 RUN2 RUN3 --references: comparison HTML, JSON tables and the time-to-quality SVG', TIMEOUT, () => {
  const { root, a, b, c, refs } = fixture();
  const out = path.join(root, 'out', 'cmp.html');
  const r = cli(['report', a, b, c, '--references', refs, '--labels', 'Adam 3e-3,Lion 1e-4,old log', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const json = path.join(root, 'out', 'cmp.json'), svg = path.join(root, 'out', 'cmp-time-to-quality.svg');
  assert.deepEqual(r.stdout.trim().split('\n'), [out, json, svg]);
  assert.deepEqual(readdirSync(path.join(root, 'out')).sort(), ['cmp-time-to-quality.svg', 'cmp.html', 'cmp.json']);

  const html = readFileSync(out, 'utf8');
  assert.doesNotMatch(html, /<script|<link |src="http|href="http|@import/i);
  for (const label of ['Adam 3e-3', 'Lion 1e-4', 'old log']) assert.ok(html.includes(label), label);
  const charts = svgs(html);
  assert.deepEqual(charts.map(title), [
    'Validation loss vs step', 'Validation loss vs tokens seen', 'Validation loss vs training minutes',
    'Validation bits per byte vs training minutes', 'Validation bits per byte vs tokens seen',
  ]);
  // one polyline per run in every loss chart; the old log has no bits per byte, so none there
  for (const ch of charts.slice(0, 3)) assert.deepEqual(polylines(ch), ['Adam 3e-3', 'Lion 1e-4', 'old log']);
  for (const ch of charts.slice(3)) assert.deepEqual(polylines(ch), ['Adam 3e-3', 'Lion 1e-4']);
  // ±1 se bands for the runs that log one; none for the old format
  const bands = parseXml(charts[0]).filter((e) => e.attrs.class === 'band').map((e) => e.attrs['data-band']);
  assert.deepEqual(bands, ['Adam 3e-3', 'Lion 1e-4']);
  // reference lines, labelled; the whole-split point as a diamond (not a dot)
  const bpbEls = parseXml(charts[3]);
  assert.deepEqual(bpbEls.filter((e) => e.attrs.class === 'ref').map((e) => e.attrs['data-ref']), ['gzip -9', 'target']);
  assert.equal(bpbEls.filter((e) => e.attrs.class === 'marker').length, 1);
  assert.equal(bpbEls.filter((e) => e.name === 'circle').length, 6, 'three validation points each for A and B');
  assert.ok(charts[3].includes('gzip -9 (2.44)'));
  assert.match(html, /linearly interpolated/);
  assert.match(html, /whole validation split/);
  assert.ok(html.includes('Compressors on the same validation text.'));
  // crossing table: A passes target at 1.5 min / 15,000 tokens / step 20; B never does; C has no bpb
  const rows = [...html.matchAll(/<tr>(.*?)<\/tr>/g)].map((m) => m[1].replace(/<[^>]+>/g, '|').replace(/\|+/g, '|'));
  const row = (ref: string, run: string) => rows.find((x) => x.startsWith(`|${ref}|`) && x.includes(`|${run}|`));
  assert.equal(row('target', 'Adam 3e-3'), '|target|1.8|Adam 3e-3|1.5|15,000|20|');
  assert.equal(row('target', 'Lion 1e-4'), '|target|1.8|Lion 1e-4|not reached|');
  assert.equal(row('gzip -9', 'Adam 3e-3'), '|gzip -9|2.44|Adam 3e-3|≤ 1|≤ 10,000|10|');
  assert.equal(row('gzip -9', 'Lion 1e-4'), '|gzip -9|2.44|Lion 1e-4|1.4|14,000|20|');
  assert.equal(row('target', 'old log'), '|target|1.8|old log|no bits per byte in the log|');
  // runs table
  assert.ok(rows.some((x) => x.startsWith('|Lion 1e-4|lion|1.00e-4|30|30,000|3|4.9 ± 0.02 (step 30)|1.9 ± 0.01|')), rows.join('\n'));
  assert.ok(rows.some((x) => x.startsWith('|old log|adam|0.003|20 (unfinished)|20,000|2|5.6 (step 20)|–|–|–|')), rows.join('\n'));

  // the JSON file: the same tables
  const t = JSON.parse(readFileSync(json, 'utf8')) as ReportTables;
  const want = reportTables([labelRun('Adam 3e-3', loadRun(a)), labelRun('Lion 1e-4', loadRun(b)), labelRun('old log', loadRun(c))], loadReferences(refs));
  assert.deepEqual(t, JSON.parse(JSON.stringify(want)));
  assert.deepEqual(t.references, [{ name: 'gzip -9', bitsPerByte: 2.44 }, { name: 'target', bitsPerByte: 1.8 }]);
  const cx = (ref: string, run: string) => t.crossings.find((x) => x.reference === ref && x.run === run)!;
  assert.equal(cx('target', 'Adam 3e-3').status, 'reached');
  assert.ok(Math.abs(cx('target', 'Adam 3e-3').minutes! - 1.5) < 1e-9);
  assert.equal(cx('target', 'Adam 3e-3').tokens, 15_000);
  assert.equal(cx('target', 'Adam 3e-3').step, 20);
  assert.ok(Math.abs(cx('gzip -9', 'Lion 1e-4').minutes! - 1.4) < 1e-9);
  assert.equal(cx('gzip -9', 'Lion 1e-4').tokens, 14_000);
  assert.deepEqual([cx('target', 'Lion 1e-4').status, cx('target', 'Lion 1e-4').minutes], ['not reached', null]);
  assert.equal(cx('gzip -9', 'old log').status, 'no data');
  assert.equal(t.crossings.length, 6);
  const ra = t.runs[0];
  assert.deepEqual(
    { optimizer: ra.optimizer, lr: ra.lr, steps: ra.steps, tokens: ra.tokens, trainMinutes: ra.trainMinutes, val: ra.val, valWhole: ra.valWhole, test: ra.test, finished: ra.finished },
    { optimizer: 'adam', lr: 3e-3, steps: 30, tokens: 30_000, trainMinutes: 3, val: { step: 30, loss: 4.3, lossSe: 0.02, bitsPerByte: 1.5, bitsPerByteSe: 0.01 }, valWhole: { loss: 4.31, bitsPerByte: 1.52 }, test: { loss: 4.1, bitsPerByte: 1.7, sequences: 123 }, finished: true },
  );
  assert.equal(t.runs[2].val?.lossSe, null);

  // the standalone SVG: a whole XML document, the minutes chart with its own style
  const svgText = readFileSync(svg, 'utf8');
  assert.match(svgText, /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.doesNotMatch(svgText, /<script|href=/i);
  const els = parseXml(svgText);
  assert.equal(els.filter((e) => e.name === 'style').length, 1);
  assert.deepEqual(els.filter((e) => e.name === 'polyline').map((e) => e.attrs['data-series']), ['Adam 3e-3', 'Lion 1e-4']);
  assert.equal(title(svgText), 'Validation bits per byte vs training minutes');
  assert.ok(svgText.includes(charts[3].slice(charts[3].indexOf('>') + 1)), 'the same chart as in the page');
});

test('same input → same bytes; default labels and out; old-format logs are accepted', TIMEOUT, async () => {
  const { root, a, b, c, refs } = fixture();
  const o1 = await writeReports([a, b, c], { out: path.join(root, 'x', 'r.html'), references: refs });
  const o2 = await writeReports([a, b, c], { out: path.join(root, 'y', 'r.html'), references: refs });
  for (const k of ['html', 'json', 'svg'] as const) assert.equal(readFileSync(o1[k]!, 'utf8'), readFileSync(o2[k]!, 'utf8'), k);
  const html = readFileSync(o1.html, 'utf8');
  for (const label of ['run-a', 'run-b', 'run-c']) assert.ok(html.includes(`data-series="${label}"`), label);
  assert.match(html, /run-c: no trainSeconds in the log \(older format\)/);

  // the old-format run: unknown fields are null, minutes come from the step times
  const d = loadRun(c);
  assert.deepEqual(d.val[0], { step: 10, loss: 6, lossSe: null, bitsPerByte: null, bitsPerByteSe: null, sequences: null, tokens: 2000, trainSeconds: null, whole: false });
  const curve = labelRun('c', d).curve;
  assert.deepEqual(curve.map((p) => [p.minutes, p.tokensSeen, p.minutesDerived]), [[1, 10_000, true], [2, 20_000, true]]);

  // several runs, no --out: ./report-compare.html (+ .json); no references → no SVG
  const cwd = process.cwd();
  const work = mkdtempSync(path.join(os.tmpdir(), 'vilm-compare-cwd-'));
  process.chdir(work);
  try {
    const o = await writeReports([a, b]);
    assert.equal(o.html, path.join(work, 'report-compare.html'));
    assert.equal(o.json, path.join(work, 'report-compare.json'));
    assert.equal(o.svg, null);
    assert.deepEqual(readdirSync(work).sort(), ['report-compare.html', 'report-compare.json']);
    assert.doesNotMatch(readFileSync(o.html, 'utf8'), /Time to quality/);
  } finally {
    process.chdir(cwd);
  }
  void root;
});

test('one run with --references: its report plus time to quality, JSON and SVG beside it', TIMEOUT, () => {
  const { a, refs } = fixture();
  const r = cli(['report', a, '--references', refs]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), [path.join(a, 'report.html'), path.join(a, 'report.json'), path.join(a, 'report-time-to-quality.svg')]);
  const html = readFileSync(path.join(a, 'report.html'), 'utf8');
  assert.deepEqual(svgs(html).map(title), [
    'Loss (nats per token)', 'Throughput', 'Step time by part (stacked)',
    'Validation bits per byte vs training minutes', 'Validation bits per byte vs tokens seen',
  ]);
  assert.match(html, /<h2>Validation and test<\/h2>/);
  assert.match(html, /<h2>Time to quality<\/h2>/);
  // the whole-split check is a diamond in the loss chart, not one more validation dot
  const loss = parseXml(svgs(html)[0]);
  assert.equal(loss.filter((e) => e.name === 'circle').length, 3);
  assert.equal(loss.filter((e) => e.attrs.class === 'marker').length, 1);
  const t = JSON.parse(readFileSync(path.join(a, 'report.json'), 'utf8')) as ReportTables;
  assert.deepEqual(t.crossings.map((x) => [x.reference, x.run, x.step]), [['gzip -9', 'run-a', 10], ['target', 'run-a', 20]]);
});

test('bad inputs: one-line errors naming the file, non-zero exit, nothing written', TIMEOUT, () => {
  const { root, a, b, refs } = fixture();
  const out = path.join(root, 'bad', 'r.html');
  const oneLine = (r: ReturnType<typeof cli>, re: RegExp) => {
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr.trim(), re);
  };
  const badJson = path.join(root, 'bad-refs.json');
  writeFileSync(badJson, '{"references": [{"name": "gzip", "bitsPerByte": 2.4},');
  oneLine(cli(['report', a, b, '--references', badJson, '--out', out]), /^vilm: .*bad-refs\.json: invalid JSON/);

  const missing = path.join(root, 'no-refs.json');
  oneLine(cli(['report', a, b, '--references', missing, '--out', out]), /^vilm: .*no-refs\.json: cannot read references file \(ENOENT\)/);

  const shape = path.join(root, 'shape.json');
  writeFileSync(shape, JSON.stringify({ references: [{ name: 'gzip', bitsPerByte: 'two' }] }));
  oneLine(cli(['report', a, '--references', shape, '--out', out]), /^vilm: .*shape\.json: references\[0\]\.bitsPerByte must be a positive number$/);
  writeFileSync(shape, JSON.stringify([1, 2]));
  oneLine(cli(['report', a, '--references', shape, '--out', out]), /^vilm: .*shape\.json: expected \{"references"/);

  const empty = path.join(root, 'empty-run');
  mkdirSync(empty);
  oneLine(cli(['report', a, empty, '--references', refs, '--out', out]), /^vilm: .*empty-run\/log\.jsonl: cannot read \(ENOENT\)/);

  oneLine(cli(['report', a, b, '--labels', 'only-one', '--out', out]), /^vilm: --labels: 1 label\(s\) for 2 run\(s\)$/);
  assert.equal(existsSync(path.join(root, 'bad')), false, 'nothing written');
});
