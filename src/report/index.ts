import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import { renderComparison } from './compare.js';
import { crossings, labelRun, loadReferences, reportTables, summarizeRun, type LabelledRun, type References } from './quality.js';
import { loadRun, stepParts, summarizeWorkers, type RunData } from './run.js';
import { bitsPerByteChart, COLORS, pageCss, pm, runsTable, sourcesNote, timeToQualitySection, WHOLE_LEGEND } from './sections.js';
import { barChart, escapeXml, formatNumber, lineChart, stackedAreaChart, standaloneSvg } from './svg.js';

/**
 * `vilm report RUN…`: self-contained HTML (inline CSS and SVG, no script, no CDN) from run folders'
 * log.jsonl (RunLogRecord lines, src/events/index.ts; written by src/events/run-log.ts) and final.json.
 * One run: the run's report. Several: a comparison page (./compare.ts). With a references file: the
 * time-to-quality section, plus, beside the HTML, its tables as JSON and the bits-per-byte-vs-minutes
 * chart as its own SVG. Output depends only on the input (same logs → same bytes).
 */
export * from './run.js';
export { loadReferences, crossing, crossings, summarizeRun, reportTables, labelRun } from './quality.js';
export type { Reference, References, Crossing, RunSummary, ReportTables, LabelledRun } from './quality.js';
export { renderComparison } from './compare.js';

function flatten(o: unknown, prefix = ''): [string, string][] {
  if (o === null || typeof o !== 'object') return [[prefix, typeof o === 'number' ? formatNumber(o) : String(o)]];
  if (Array.isArray(o)) return [[prefix, JSON.stringify(o)]];
  return Object.entries(o as Record<string, unknown>).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
}

function table(rows: [string, string][], cls: string): string {
  return `<table class="${cls}">${rows.map(([k, v]) => `<tr><th>${escapeXml(k)}</th><td>${escapeXml(v)}</td></tr>`).join('')}</table>`;
}

export interface RenderOptions {
  /** reference levels: adds the time-to-quality section */
  references?: References | null;
  /** the run's name in the tables and charts (default: the folder's name) */
  label?: string;
}

/** The report of one run: today's sections plus the runs table and, with references, time to quality. */
export function renderReport(d: RunData, o: RenderOptions = {}): string {
  const run = labelRun(o.label ?? defaultLabels([d.dir])[0], d);
  const refs = o.references ?? null;
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
    ['last validation loss', d.val.length ? pm(d.val[d.val.length - 1].loss, d.val[d.val.length - 1].lossSe) : '–'],
    ['backend', d.start?.backend ?? '–'],
    ['workers at start', d.start ? String(d.start.workers) : '–'],
  ];
  if (d.test.length) {
    const t = d.test[d.test.length - 1];
    summary.push(['test loss / perplexity / bits per byte', `${formatNumber(t.loss)} / ${formatNumber(t.ppl)} / ${formatNumber(t.bitsPerByte)}`]);
  }

  const lossChart = lineChart([
    { name: 'train loss', color: COLORS[0], points: steps.map((s) => [s.step, s.loss]) },
    { name: 'validation loss', color: COLORS[1], points: d.val.map((v) => [v.step, v.loss]), errors: d.val.map((v) => v.lossSe), dots: true },
  ], {
    title: 'Loss (nats per token)', xLabel: 'step', yLabel: 'loss', markerLegend: WHOLE_LEGEND,
    markers: d.valWhole.map((v) => ({ x: v.step, y: v.loss, color: COLORS[1], label: `whole validation split at step ${v.step}: loss ${pm(v.loss, v.lossSe)}` })),
  });
  const lossNote = d.val.some((v) => v.lossSe !== null) || d.valWhole.length
    ? `<p class="note">${d.val.some((v) => v.lossSe !== null) ? 'The band around the validation loss is ±1 standard error of its estimate (the run\'s fixed validation sample).' : ''}${d.valWhole.length ? ' The hollow diamond is the last point checked against the whole validation split.' : ''}</p>`
    : '';

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

  const tq = refs ? timeToQualitySection([run], refs, crossings([run], refs.references), bitsPerByteChart([run], refs, 'minutes')) : '';

  // Inline CSS only: the file must render the same offline, attached to a mail or a CI artifact.
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vilm report: ${escapeXml(run.label)}</title>
<style>
${pageCss(780)}
</style>
</head>
<body>
<h1>vilm training report</h1>
<p class="note">From ${sourcesNote([run])}.</p>
<h2>Summary</h2>
${table(summary, 'summary')}
<h2>Final</h2>
${finalRows.length ? table(finalRows, 'final') : '<p class="note">No final.json: the run has not finished.</p>'}
<h2>Validation and test</h2>
${runsTable([summarizeRun(run)], [COLORS[1]])}
<h2>Loss</h2>
${lossChart}
${lossNote}
<h2>Throughput</h2>
${tpsChart}
<h2>Workers</h2>
${utilChart}
<h2>Step time</h2>
<p class="note">compute = tasks out until the last result came in, minus the wait for stragglers (after the first worker finished); reduce, optimizer and publish run on the coordinator.</p>
${partsChart}
${tq}
<h2>Configuration</h2>
${config !== null ? `<pre class="config">${escapeXml(config)}</pre>` : '<p class="note">No start record in the log.</p>'}
</body>
</html>
`;
}

/** Write RUN/report.html (or `out`) atomically; returns the path written. */
export async function writeReport(dir: string, out?: string): Promise<string> {
  return (await writeReports([dir], { out })).html;
}

export interface ReportOptions {
  /** the HTML file (default: RUN/report.html for one run, ./report-compare.html for several) */
  out?: string;
  /** a references file (reference levels in bits per byte) */
  references?: string;
  /** one label per run (default: the folders' names) */
  labels?: string[];
}

export interface ReportFiles {
  html: string;
  /** the tables as JSON (written for a comparison or with references) */
  json: string | null;
  /** the bits-per-byte-vs-minutes chart as its own SVG (written with references) */
  svg: string | null;
}

/** Run labels: the folders' names; the paths as given where two names are the same. */
export function defaultLabels(dirs: string[]): string[] {
  const names = dirs.map((d) => path.basename(path.resolve(d)) || d);
  const dup = (n: string) => names.filter((x) => x === n).length > 1;
  const out = names.map((n, i) => (dup(n) ? path.normalize(dirs[i]) : n));
  return out.map((n, i) => (out.indexOf(n) < i ? `${n} #${out.slice(0, i + 1).filter((x) => x === n).length}` : n));
}

/** The JSON and SVG written beside `html`: FILE.json and FILE-time-to-quality.svg (FILE = html less .html). */
export function siblingFiles(html: string): { json: string; svg: string } {
  const base = html.replace(/\.html?$/i, '');
  return { json: `${base}.json`, svg: `${base}-time-to-quality.svg` };
}

/**
 * `vilm report RUN…`: check every input first (labels, references file, run folders), then write the
 * HTML and, for a comparison or with references, the JSON tables and the time-to-quality SVG.
 */
export async function writeReports(dirs: string[], o: ReportOptions = {}): Promise<ReportFiles> {
  if (dirs.length === 0) throw new UserError('name at least one run folder');
  let labels = defaultLabels(dirs);
  if (o.labels !== undefined) {
    if (o.labels.length !== dirs.length) throw new UserError(`--labels: ${o.labels.length} label(s) for ${dirs.length} run(s)`);
    if (o.labels.some((l) => l.trim() === '')) throw new UserError('--labels: a label is empty');
    const seen = o.labels.find((l, i) => o.labels?.indexOf(l) !== i);
    if (seen !== undefined) throw new UserError(`--labels: '${seen}' is given twice`);
    labels = o.labels;
  }
  const refs = o.references !== undefined ? loadReferences(o.references) : null;
  const runs: LabelledRun[] = dirs.map((d, i) => labelRun(labels[i], loadRun(d)));
  const html = o.out ?? (dirs.length === 1 ? path.join(dirs[0], 'report.html') : path.resolve('report-compare.html'));
  const page = runs.length === 1 ? renderReport(runs[0].data, { references: refs, label: runs[0].label }) : renderComparison(runs, refs);
  const side = siblingFiles(html);
  const files: ReportFiles = { html, json: null, svg: null };
  await writeFileAtomic(html, page);
  if (runs.length > 1 || refs) {
    await writeFileAtomic(side.json, JSON.stringify(reportTables(runs, refs), null, 2) + '\n');
    files.json = side.json;
  }
  if (refs) {
    await writeFileAtomic(side.svg, standaloneSvg(bitsPerByteChart(runs, refs, 'minutes')));
    files.svg = side.svg;
  }
  return files;
}
