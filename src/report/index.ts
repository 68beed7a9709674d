import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import type { RunLogRecord, StepEvent, Transport } from '../events/index.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import { barChart, escapeXml, formatNumber, lineChart, stackedAreaChart } from './svg.js';

/**
 * `vilm report RUN`: one self-contained HTML file (inline CSS and SVG, no script, no CDN) from the
 * run folder's log.jsonl (RunLogRecord lines, src/events/index.ts; written by src/events/run-log.ts) and final.json.
 */
export type StepRecord = Extract<RunLogRecord, { type: 'step' }>;
export type ValRecord = Extract<RunLogRecord, { type: 'val' }>;
export type TestRecord = Extract<RunLogRecord, { type: 'test' }>;
export type WorkerRecord = Extract<RunLogRecord, { type: 'worker' }>;
export type StartRecord = Extract<RunLogRecord, { type: 'start' }>;

export interface RunData {
  dir: string;
  steps: StepRecord[];
  val: ValRecord[];
  test: TestRecord[];
  workers: WorkerRecord[];
  /** the last start record (a resumed run has several) */
  start: StartRecord | null;
  /** final.json, or null while the run is unfinished */
  final: Record<string, unknown> | null;
  /** a trailing partial line was skipped (the run is still writing) */
  truncatedTail: boolean;
}

export interface WorkerSummary {
  workerId: string;
  transport: Transport;
  microShards: number;
  computeSeconds: number;
  /** compute seconds / wall seconds of the steps it took part in */
  utilisation: number;
  bytesSent: number;
  bytesReceived: number;
}

const isNum = (v: unknown): v is number => typeof v === 'number';

function checkRecord(file: string, line: number, o: Record<string, unknown>): RunLogRecord {
  const need = (fields: string[]) => {
    for (const f of fields) if (!isNum(o[f])) throw new UserError(`${file}:${line}: ${String(o.type)} record needs a number '${f}'`);
  };
  switch (o.type) {
    case 'step': {
      need(['step', 'loss', 'tokens', 'paddedTokens', 'lr', 'gradNorm', 'workers']);
      const t = o.timing as Record<string, unknown> | undefined;
      for (const f of ['total', 'compute', 'waitStragglers', 'reduce', 'optimizer', 'publish']) {
        if (!t || !isNum(t[f])) throw new UserError(`${file}:${line}: step record needs a number 'timing.${f}'`);
      }
      break;
    }
    case 'val': need(['step', 'loss']); break;
    case 'test': need(['step', 'loss', 'ppl']); break;
    case 'worker':
      need(['step', 'microShards', 'computeSeconds', 'bytesSent', 'bytesReceived']);
      if (typeof o.workerId !== 'string') throw new UserError(`${file}:${line}: worker record needs a string 'workerId'`);
      break;
    case 'start': break;
    default: throw new UserError(`${file}:${line}: unknown record type ${JSON.stringify(o.type)}`);
  }
  return o as unknown as RunLogRecord;
}

/** Read and check RUN/log.jsonl and RUN/final.json. Bad input → UserError naming file and line. */
export function loadRun(dir: string): RunData {
  let st;
  try { st = statSync(dir); } catch { throw new UserError(`${dir}: no such run folder`); }
  if (!st.isDirectory()) throw new UserError(`${dir}: not a folder (expected a run folder with log.jsonl)`);
  const logFile = path.join(dir, 'log.jsonl');
  let text: string;
  try { text = readFileSync(logFile, 'utf8'); } catch (e) {
    throw new UserError(`${logFile}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)}); is ${dir} a run folder?`);
  }
  const data: RunData = { dir, steps: [], val: [], test: [], workers: [], start: null, final: null, truncatedTail: false };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (raw.trim() === '') continue;
    let v: unknown;
    try { v = JSON.parse(raw); } catch (e) {
      // the run appends whole lines; a last line without its newline is a write in progress
      if (i === lines.length - 1) { data.truncatedTail = true; continue; }
      throw new UserError(`${logFile}:${i + 1}: invalid JSON: ${(e as Error).message}`);
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new UserError(`${logFile}:${i + 1}: expected a JSON object`);
    const rec = checkRecord(logFile, i + 1, v as Record<string, unknown>);
    switch (rec.type) {
      case 'step': data.steps.push(rec); break;
      case 'val': data.val.push(rec); break;
      case 'test': data.test.push(rec); break;
      case 'worker': data.workers.push(rec); break;
      case 'start': data.start = rec; break;
    }
  }
  if (data.steps.length === 0) throw new UserError(`${logFile}: no step records yet (nothing to report)`);
  data.steps.sort((a, b) => a.step - b.step);

  const finalFile = path.join(dir, 'final.json');
  let finalText: string | null = null;
  try { finalText = readFileSync(finalFile, 'utf8'); } catch { /* unfinished run: report without it */ }
  if (finalText !== null) {
    let f: unknown;
    try { f = JSON.parse(finalText); } catch (e) { throw new UserError(`${finalFile}: invalid JSON: ${(e as Error).message}`); }
    if (f === null || typeof f !== 'object' || Array.isArray(f)) throw new UserError(`${finalFile}: expected a JSON object`);
    data.final = f as Record<string, unknown>;
  }
  return data;
}

/** Per-worker totals; utilisation = compute seconds / wall seconds of the steps it worked in. */
export function summarizeWorkers(d: RunData): WorkerSummary[] {
  const stepTime = new Map(d.steps.map((s) => [s.step, s.timing.total]));
  const by = new Map<string, WorkerSummary & { steps: Set<number> }>();
  for (const w of d.workers) {
    let s = by.get(w.workerId);
    if (!s) {
      s = { workerId: w.workerId, transport: w.transport, microShards: 0, computeSeconds: 0, utilisation: 0, bytesSent: 0, bytesReceived: 0, steps: new Set() };
      by.set(w.workerId, s);
    }
    s.microShards += w.microShards;
    s.computeSeconds += w.computeSeconds;
    s.bytesSent += w.bytesSent;
    s.bytesReceived += w.bytesReceived;
    s.steps.add(w.step);
  }
  return [...by.values()].map(({ steps, ...s }) => {
    let wall = 0;
    for (const st of steps) wall += stepTime.get(st) ?? 0;
    return { ...s, utilisation: wall > 0 ? s.computeSeconds / wall : 0 };
  }).sort((a, b) => a.workerId.localeCompare(b.workerId, 'en', { numeric: true }));
}

/** The parts of a step's time that add up to its total (compute's own part excludes stragglers). */
export function stepParts(t: StepEvent['timing']): Record<string, number> {
  const compute = Math.max(0, t.compute - t.waitStragglers);
  const known = compute + t.waitStragglers + t.reduce + t.optimizer + t.publish;
  return {
    compute, 'wait for stragglers': t.waitStragglers, reduce: t.reduce, optimizer: t.optimizer, publish: t.publish,
    other: Math.max(0, t.total - known),
  };
}

const COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

function flatten(o: unknown, prefix = ''): [string, string][] {
  if (o === null || typeof o !== 'object') return [[prefix, typeof o === 'number' ? formatNumber(o) : String(o)]];
  if (Array.isArray(o)) return [[prefix, JSON.stringify(o)]];
  return Object.entries(o as Record<string, unknown>).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
}

function table(rows: [string, string][], cls: string): string {
  return `<table class="${cls}">${rows.map(([k, v]) => `<tr><th>${escapeXml(k)}</th><td>${escapeXml(v)}</td></tr>`).join('')}</table>`;
}

export function renderReport(d: RunData): string {
  const steps = d.steps;
  const x = steps.map((s) => s.step);
  const wall = steps.reduce((a, s) => a + s.timing.total, 0);
  const tokens = steps.reduce((a, s) => a + s.tokens, 0);
  const padded = steps.reduce((a, s) => a + s.paddedTokens, 0);
  const workers = summarizeWorkers(d);
  const last = steps[steps.length - 1];

  const summary: [string, string][] = [
    ['run', d.dir],
    ['status', d.final ? 'finished' : 'unfinished (no final.json)'],
    ['steps', `${formatNumber(last.step)} logged (${steps.length} records)`],
    ['tokens trained', formatNumber(tokens)],
    ['padding overhead', padded > 0 ? `${formatNumber(100 * (1 - tokens / padded))}% of positions` : '–'],
    ['step time (sum)', `${formatNumber(wall)} s`],
    ['mean throughput', wall > 0 ? `${formatNumber(tokens / wall)} tokens/s` : '–'],
    ['last train loss', formatNumber(last.loss)],
    ['last validation loss', d.val.length ? formatNumber(d.val[d.val.length - 1].loss) : '–'],
    ['backend', d.start?.backend ?? '–'],
    ['workers at start', d.start ? String(d.start.workers) : '–'],
  ];
  if (d.test.length) {
    const t = d.test[d.test.length - 1];
    summary.push(['test loss / perplexity / bits per byte', `${formatNumber(t.loss)} / ${formatNumber(t.ppl)} / ${formatNumber(t.bitsPerByte)}`]);
  }

  const lossChart = lineChart([
    { name: 'train loss', color: COLORS[0], points: steps.map((s) => [s.step, s.loss]) },
    { name: 'validation loss', color: COLORS[1], points: d.val.map((v) => [v.step, v.loss]), dots: true },
  ], { title: 'Loss (nats per token)', xLabel: 'step', yLabel: 'loss' });

  const tpsChart = lineChart([
    { name: 'tokens/s (non-pad targets / step time)', color: COLORS[4], points: steps.map((s) => [s.step, s.timing.total > 0 ? s.tokens / s.timing.total : NaN]) },
  ], { title: 'Throughput', xLabel: 'step', yLabel: 'tokens/s', yFromZero: true });

  const partNames = Object.keys(stepParts(last.timing));
  const partValues = steps.map((s) => stepParts(s.timing));
  // the first steps often carry start-up costs (backend init, compiling); cut the axis at 3× the
  // 90th percentile so the steady state stays readable, and say so under the chart
  const totals = steps.map((s) => s.timing.total).sort((a, b) => a - b);
  const p90 = totals[Math.floor(0.9 * (totals.length - 1))];
  const slowest = steps.reduce((a, s) => (s.timing.total > a.timing.total ? s : a), steps[0]);
  const cut = totals[totals.length - 1] > 3 * p90 && p90 > 0 ? 3 * p90 : undefined;
  const partsChart = stackedAreaChart(x, partNames.map((name, i) => ({ name, color: COLORS[i], values: partValues.map((p) => p[name]) })),
    { title: 'Step time by part (stacked)', xLabel: 'step', yLabel: 'seconds', yFromZero: true, yMax: cut })
    + (cut !== undefined ? `<p class="note">y axis cut at ${formatNumber(cut)} s (3× the 90th percentile); the slowest step, ${slowest.step}, took ${formatNumber(slowest.timing.total)} s.</p>` : '');

  const utilChart = workers.length
    ? barChart(workers.map((w) => ({
      label: w.workerId, value: w.utilisation,
      note: `${w.transport}, ${formatNumber(w.microShards)} micro-shards, ${formatNumber(w.computeSeconds)} s`,
    })), { title: 'Per-worker utilisation (compute time / step time)', xLabel: 'share of its steps spent computing', yLabel: '', max: Math.max(1, ...workers.map((w) => w.utilisation)), yFormat: (v) => `${(100 * v).toFixed(1)}%` })
    : '<p class="note">No worker records in the log.</p>';

  const finalRows = d.final ? flatten(d.final) : [];
  const config = d.start?.config !== undefined ? toYaml(d.start.config) : null;

  // Inline CSS only: the file must render the same offline, attached to a mail or a CI artifact.
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vilm report: ${escapeXml(path.basename(path.resolve(d.dir)))}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 780px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; } th, td { text-align: left; padding: 3px 12px 3px 0; vertical-align: top; }
th { font-weight: 600; color: #444; } td { font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 10px; overflow-x: auto; font-size: 12px; }
svg.chart { display: block; margin: 8px 0; max-width: 100%; height: auto; }
svg .title { font-weight: 600; font-size: 13px; } svg .tick, svg .legend { font-size: 11px; fill: #444; }
svg .label { font-size: 12px; fill: #222; } svg .grid { stroke: #eee; } svg .axis { stroke: #888; }
.note { color: #777; }
</style>
</head>
<body>
<h1>vilm training report</h1>
<p class="note">Generated ${escapeXml(new Date().toISOString())} from <code>${escapeXml(path.join(d.dir, 'log.jsonl'))}</code>${d.truncatedTail ? ' (last line was still being written and was skipped)' : ''}.</p>
<h2>Summary</h2>
${table(summary, 'summary')}
<h2>Final</h2>
${finalRows.length ? table(finalRows, 'final') : '<p class="note">No final.json: the run has not finished.</p>'}
<h2>Loss</h2>
${lossChart}
<h2>Throughput</h2>
${tpsChart}
<h2>Workers</h2>
${utilChart}
<h2>Step time</h2>
<p class="note">compute = tasks out until the last result came in, minus the wait for stragglers (after the first worker finished); reduce, optimizer and publish run on the coordinator.</p>
${partsChart}
<h2>Configuration</h2>
${config !== null ? `<pre class="config">${escapeXml(config)}</pre>` : '<p class="note">No start record in the log.</p>'}
</body>
</html>
`;
}

/** Write RUN/report.html (or `out`) atomically; returns the path written. */
export async function writeReport(dir: string, out?: string): Promise<string> {
  const data = loadRun(dir);
  const target = out ?? path.join(dir, 'report.html');
  await writeFileAtomic(target, renderReport(data));
  return target;
}
