import { crossings, reportTables, type LabelledRun, type References } from './quality.js';
import { bitsPerByteChart, pageCss, runColor, runsTable, sourcesNote, timeToQualitySection, valLossChart } from './sections.js';
import { escapeXml } from './svg.js';

/**
 * The comparison page of `vilm report RUN1 RUN2 …`: a runs table, the validation loss curves of all
 * runs overlaid against step, tokens seen and training minutes (±1 standard error bands), and with a
 * references file, time to quality. One colour per run, the same in every chart and table.
 */
export function renderComparison(runs: LabelledRun[], refs: References | null): string {
  const tables = reportTables(runs, refs);
  const colors = runs.map((_, i) => runColor(i));
  const anySe = runs.some((r) => r.curve.some((p) => p.lossSe !== null));
  const anyWhole = runs.some((r) => r.whole.length > 0);
  const derived = runs.filter((r) => r.curve.some((p) => p.minutesDerived)).map((r) => r.label);
  const tq = refs ? timeToQualitySection(runs, refs, crossings(runs, refs.references), bitsPerByteChart(runs, refs, 'minutes')) : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vilm comparison: ${escapeXml(runs.map((r) => r.label).join(', '))}</title>
<style>
${pageCss(960)}
</style>
</head>
<body>
<h1>vilm run comparison</h1>
<p class="note">From ${sourcesNote(runs)}.</p>
<h2>Runs</h2>
${runsTable(tables.runs, colors)}
<p class="note">lr is the peak learning rate of the schedule (the start record's config); training minutes count training steps only (evaluation and checkpoints excluded); whole-split validation and test come from final.json once a run has finished.</p>
<h2>Validation loss</h2>
<p class="note">${anySe ? 'Bands (or bars, for a lone point) are ±1 standard error of each estimate, where the log has one. ' : ''}${anyWhole ? 'A hollow diamond is the last point of a run checked against the whole validation split. ' : ''}Tokens seen are the real (non-padding) target tokens trained on.${derived.length ? ` ${escapeXml(derived.join(', '))}: no trainSeconds in the log (older format), minutes are the sum of logged step times.` : ''}</p>
${valLossChart(runs, 'step')}
${valLossChart(runs, 'tokens')}
${valLossChart(runs, 'minutes')}
${tq}
</body>
</html>
`;
}
