import path from 'node:path';
import { CROSSING_METHOD, type Crossing, type LabelledRun, type References, type RunSummary } from './quality.js';
import type { ValPoint } from './run.js';
import { escapeXml, formatCount, formatNumber, lineChart, type Marker, type Series } from './svg.js';

/**
 * HTML parts shared by the single-run report and the comparison page: the page style, the runs
 * table, the validation curves on three axes, the time-to-quality section. Everything is inline
 * (no script, no CDN) and depends only on the input: same logs → same bytes.
 */

export const COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

/** The colour of the i-th run of a comparison. */
export const runColor = (i: number): string => COLORS[i % COLORS.length];

export function pageCss(maxWidth: number): string {
  return `body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: ${maxWidth}px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; } h3 { font-size: 15px; }
table { border-collapse: collapse; } th, td { text-align: left; padding: 3px 12px 3px 0; vertical-align: top; }
th { font-weight: 600; color: #444; } td { font-variant-numeric: tabular-nums; }
table.grid th, table.grid td { border-bottom: 1px solid #eee; padding-left: 4px; }
.wide { overflow-x: auto; }
pre { background: #f6f6f6; padding: 10px; overflow-x: auto; font-size: 12px; }
svg.chart { display: block; margin: 8px 0; max-width: 100%; height: auto; }
svg .title { font-weight: 600; font-size: 13px; } svg .tick, svg .legend { font-size: 11px; fill: #444; }
svg .label { font-size: 12px; fill: #222; } svg .grid { stroke: #eee; } svg .axis { stroke: #888; }
.note { color: #777; } .swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; }`;
}

/** A number or '–' when unknown. */
export function fmt(v: number | null | undefined): string {
  return typeof v === 'number' && Number.isFinite(v) ? formatNumber(v) : '–';
}

/** "value ± se", the ± part only when the standard error is known. */
export function pm(v: number | null | undefined, se: number | null | undefined): string {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
  return typeof se === 'number' && Number.isFinite(se) ? `${formatNumber(v)} ± ${formatNumber(se)}` : formatNumber(v);
}

function gridTable(cls: string, head: string[], rows: string[][]): string {
  return `<div class="wide"><table class="grid ${cls}"><tr>${head.map((h) => `<th>${escapeXml(h)}</th>`).join('')}</tr>`
    + rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')
    + '</table></div>';
}

/** One row per run (cells are escaped here). */
export function runsTable(rows: RunSummary[], colors: string[]): string {
  return gridTable('runs', [
    'run', 'optimizer', 'lr', 'steps', 'tokens', 'training min', 'last validation loss', 'validation bits/byte',
    'whole-split validation loss / bits/byte', 'test loss / bits/byte',
  ], rows.map((s, i) => [
    `<span class="swatch" style="background:${colors[i]}"></span>${escapeXml(s.label)}`,
    escapeXml(s.optimizer ?? '–'),
    escapeXml(fmt(s.lr)),
    escapeXml(`${formatNumber(s.steps)}${s.finished ? '' : ' (unfinished)'}`),
    escapeXml(formatNumber(s.tokens)),
    escapeXml(formatNumber(s.trainMinutes)),
    escapeXml(s.val ? `${pm(s.val.loss, s.val.lossSe)} (step ${formatNumber(s.val.step)})` : '–'),
    escapeXml(s.val ? pm(s.val.bitsPerByte, s.val.bitsPerByteSe) : '–'),
    escapeXml(s.valWhole ? `${fmt(s.valWhole.loss)} / ${fmt(s.valWhole.bitsPerByte)}` : '–'),
    escapeXml(s.test ? `${fmt(s.test.loss)} / ${fmt(s.test.bitsPerByte)}${s.test.sequences !== null ? ` (${formatNumber(s.test.sequences)} sequences)` : ''}` : '–'),
  ]));
}

export type Axis = 'step' | 'tokens' | 'minutes';

const AXIS_LABEL: Record<Axis, string> = { step: 'step', tokens: 'tokens seen', minutes: 'training minutes' };
const xOf = (p: ValPoint, axis: Axis): number => (axis === 'step' ? p.step : axis === 'tokens' ? p.tokensSeen : p.minutes);
const xFormat = (axis: Axis) => (axis === 'tokens' ? formatCount : formatNumber);

export const WHOLE_LEGEND = 'whole validation split (end)';

/** Validation loss of every run against one axis, ±1 standard error as a band; whole-split checks as diamonds. */
export function valLossChart(runs: LabelledRun[], axis: Axis): string {
  const series: Series[] = runs.map((r, i) => ({
    name: r.label, color: runColor(i), dots: true,
    points: r.curve.map((p) => [xOf(p, axis), p.loss]),
    errors: r.curve.map((p) => p.lossSe),
  }));
  const markers: Marker[] = runs.flatMap((r, i) => r.whole.map((p) => ({
    x: xOf(p, axis), y: p.loss, color: runColor(i),
    label: `${r.label}: whole validation split at step ${p.step}: loss ${pm(p.loss, p.lossSe)}`,
  })));
  return lineChart(series, {
    title: `Validation loss vs ${AXIS_LABEL[axis]}`, xLabel: AXIS_LABEL[axis], yLabel: 'loss (nats per token)',
    xFormat: xFormat(axis), xFromZero: true, markers, markerLegend: WHOLE_LEGEND,
  });
}

/** Validation bits per byte against training minutes or tokens seen, with the reference levels. */
export function bitsPerByteChart(runs: LabelledRun[], refs: References | null, axis: 'minutes' | 'tokens'): string {
  const series: Series[] = runs.map((r, i) => ({
    name: r.label, color: runColor(i), dots: true,
    points: r.curve.map((p) => [xOf(p, axis), p.bitsPerByte ?? NaN]),
    errors: r.curve.map((p) => p.bitsPerByteSe),
  }));
  const markers: Marker[] = runs.flatMap((r, i) => r.whole.filter((p) => p.bitsPerByte !== null).map((p) => ({
    x: xOf(p, axis), y: p.bitsPerByte ?? NaN, color: runColor(i),
    label: `${r.label}: whole validation split at step ${p.step}: ${pm(p.bitsPerByte, p.bitsPerByteSe)} bits per byte`,
  })));
  return lineChart(series, {
    title: `Validation bits per byte vs ${AXIS_LABEL[axis]}`, xLabel: AXIS_LABEL[axis], yLabel: 'bits per byte',
    xFormat: xFormat(axis), xFromZero: true, markers, markerLegend: WHOLE_LEGEND,
    refLines: (refs?.references ?? []).map((x) => ({ y: x.bitsPerByte, label: x.name })),
  });
}

/** The table "when the run passes each reference"; ≤ marks a run already there at its first point (nothing to interpolate from). */
export function crossingTable(cs: Crossing[]): string {
  return gridTable('crossings', ['reference', 'bits/byte', 'run', 'training min', 'tokens seen', 'step'], cs.map((c) => {
    const head = [escapeXml(c.reference), escapeXml(formatNumber(c.referenceBitsPerByte)), escapeXml(c.run)];
    if (c.status === 'reached') {
      const mark = c.interpolated ? '' : '≤ ';
      return [...head, escapeXml(`${mark}${fmt(c.minutes)}`), escapeXml(`${mark}${fmt(c.tokens)}`), escapeXml(fmt(c.step))];
    }
    return [...head, `<span class="${c.status === 'not reached' ? 'not-reached' : 'no-data'}">${c.status === 'not reached' ? 'not reached' : 'no bits per byte in the log'}</span>`, '', ''];
  }));
}

/** The time-to-quality section (charts and crossing table); `bpbMinutesChart` is the chart also written as its own SVG. */
export function timeToQualitySection(runs: LabelledRun[], refs: References, cs: Crossing[], bpbMinutesChart: string): string {
  const derived = runs.filter((r) => r.curve.some((p) => p.minutesDerived)).map((r) => r.label);
  const anyFirst = cs.some((c) => c.status === 'reached' && !c.interpolated);
  const whole = runs.some((r) => r.whole.length > 0);
  return `<h2>Time to quality</h2>
${refs.text ? `<p class="references-text">${escapeXml(refs.text)}</p>\n` : ''}<p class="note">Reference levels from <code>${escapeXml(refs.file)}</code>, drawn as dashed lines. Training minutes count the time of training steps only (validation, test and checkpoints excluded); tokens seen are the real (non-padding) target tokens trained on.${whole ? ' The hollow diamond is the last point of a run checked against the whole validation split; the curve itself is the run\'s fixed validation sample.' : ''}${derived.length ? ` ${escapeXml(derived.join(', '))}: no trainSeconds in the log (older format), minutes are the sum of logged step times.` : ''}</p>
${bpbMinutesChart}
${bitsPerByteChart(runs, refs, 'tokens')}
<h3>When each run passes each reference</h3>
<p class="note">The ${escapeXml(CROSSING_METHOD)}.${anyFirst ? ' ≤: already at or below at the first validation point, so it passed at or before that point\'s minutes and tokens.' : ''}</p>
${crossingTable(cs)}`;
}

/** "label (dir/log.jsonl, up to TIME)" lines naming the inputs of a page. */
export function sourcesNote(runs: LabelledRun[]): string {
  return runs.map((r) => `${escapeXml(r.label)}: <code>${escapeXml(path.join(r.data.dir, 'log.jsonl'))}</code>`
    + `${r.data.lastTime ? ` (records up to ${escapeXml(r.data.lastTime)})` : ''}`
    + `${r.data.truncatedTail ? ' (last line was still being written and was skipped)' : ''}`).join('; ');
}
