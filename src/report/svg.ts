/**
 * Tiny SVG chart drawing for the HTML run report: line charts, stacked areas, horizontal bars.
 *
 * Written here instead of using a charting library because the report must be ONE self-contained
 * file that opens offline (a laptop on a train, a CI artifact) with no CDN, no script and nothing
 * to bundle; a few static charts need only axes, ticks, polylines and a legend.
 */

export interface Series {
  name: string;
  color: string;
  /** [x, y] points; non-finite y values are left out */
  points: [number, number][];
  /** draw a dot at every point (for sparse series such as validation loss) */
  dots?: boolean;
  /**
   * ± half-widths aligned with `points` (e.g. one standard error); null where unknown. Drawn as a
   * band over consecutive points that have one, as an error bar where such a point stands alone.
   */
  errors?: (number | null)[];
}

/** A labelled horizontal line across the plot (a reference level). */
export interface RefLine {
  y: number;
  label: string;
}

/** A single highlighted point, drawn as a hollow diamond (not a dot). */
export interface Marker {
  x: number;
  y: number;
  color: string;
  /** tooltip */
  label: string;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** start the y axis at 0 (throughputs, durations) */
  yFromZero?: boolean;
  /** format of y tick labels */
  yFormat?: (v: number) => string;
  /** cut the y axis here (outliers such as a first step with start-up costs); drawing is clipped */
  yMax?: number;
  /** start the x axis at 0 (training minutes, tokens seen) */
  xFromZero?: boolean;
  /** format of x tick labels */
  xFormat?: (v: number) => string;
  /** horizontal reference lines (line charts); they widen the y range to be seen */
  refLines?: RefLine[];
  /** highlighted points (line charts) */
  markers?: Marker[];
  /** legend entry for the markers (line charts) */
  markerLegend?: string;
}

const PAD = { left: 64, right: 16, top: 32, bottom: 58 };

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** "Nice" tick values (1, 2, 5 × 10^k steps) covering [min, max], about `count` of them. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0];
  if (max === min) { const d = Math.abs(max) || 1; min -= d / 2; max += d / 2; }
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.floor(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  if (out[out.length - 1] < max) out.push(Number((out[out.length - 1] + step).toPrecision(12)));
  return out;
}

/** Counts with k/M/B suffixes (axis ticks of tokens): 1500 → 1.5k, 2000000 → 2M. */
export function formatCount(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  for (const [d, u] of [[1e9, 'B'], [1e6, 'M'], [1e3, 'k']] as const) {
    if (a >= d) return `${Number((v / d).toPrecision(3))}${u}`;
  }
  return formatNumber(v);
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  return Number(v.toPrecision(4)).toString();
}

interface Frame { x0: number; x1: number; y0: number; y1: number; w: number; h: number }

/** Axes, grid and labels; returns the SVG parts and the data→pixel mapping. */
function frame(o: ChartOptions, xr: [number, number], yr: [number, number], extraBottom = 0) {
  const w = o.width ?? 720, h = (o.height ?? 280) + extraBottom;
  const bottom = PAD.bottom + extraBottom;
  const xt = niceTicks(xr[0], xr[1], 8), yt = niceTicks(yr[0], yr[1], 5);
  const f: Frame = { x0: xt[0], x1: xt[xt.length - 1], y0: yt[0], y1: yt[yt.length - 1], w, h };
  const px = (x: number) => PAD.left + ((x - f.x0) / (f.x1 - f.x0 || 1)) * (w - PAD.left - PAD.right);
  const py = (y: number) => h - bottom - ((y - f.y0) / (f.y1 - f.y0 || 1)) * (h - PAD.top - bottom);
  const fmt = o.yFormat ?? formatNumber;
  const parts: string[] = [];
  parts.push(`<text class="title" x="${PAD.left}" y="18">${escapeXml(o.title)}</text>`);
  for (const y of yt) {
    parts.push(`<line class="grid" x1="${PAD.left}" x2="${w - PAD.right}" y1="${r(py(y))}" y2="${r(py(y))}"/>`);
    parts.push(`<text class="tick" x="${PAD.left - 6}" y="${r(py(y)) + 4}" text-anchor="end">${escapeXml(fmt(y))}</text>`);
  }
  const xfmt = o.xFormat ?? formatNumber;
  for (const x of xt) parts.push(`<text class="tick" x="${r(px(x))}" y="${h - bottom + 16}" text-anchor="middle">${escapeXml(xfmt(x))}</text>`);
  parts.push(`<line class="axis" x1="${PAD.left}" x2="${w - PAD.right}" y1="${h - bottom}" y2="${h - bottom}"/>`);
  parts.push(`<line class="axis" x1="${PAD.left}" x2="${PAD.left}" y1="${PAD.top}" y2="${h - bottom}"/>`);
  parts.push(`<text class="label" x="${(PAD.left + w - PAD.right) / 2}" y="${h - bottom + 32}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`);
  parts.push(`<text class="label" transform="translate(14 ${(PAD.top + h - bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(o.yLabel)}</text>`);
  return { parts, px, py, w, h };
}

interface LegendItem { name: string; color: string; shape?: 'square' | 'diamond' }

const LEGEND_ROW = 16;

/** Legend items left to right, wrapping onto more rows; the row of each item. */
function legendRows(items: LegendItem[], w: number): number[] {
  let x = PAD.left, row = 0;
  return items.map((it) => {
    const iw = 24 + it.name.length * 7;
    if (x > PAD.left && x + iw > w) { row++; x = PAD.left; }
    x += iw;
    return row;
  });
}

function legend(items: LegendItem[], w: number, h: number, wrap = false): string {
  let x = PAD.left, row = -1;
  const rows = wrap ? legendRows(items, w) : items.map(() => 0);
  const nRows = rows.length ? rows[rows.length - 1] + 1 : 1;
  return items.map((it, i) => {
    if (rows[i] !== row) { row = rows[i]; x = PAD.left; }
    const y = h - 10 - (nRows - 1 - row) * LEGEND_ROW;
    const mark = it.shape === 'diamond'
      ? `<path d="M${x + 5} ${y - 10}l5 5l-5 5l-5 -5z" fill="#fff" stroke="${it.color}" stroke-width="1.6"/>`
      : `<rect x="${x}" y="${y - 9}" width="10" height="10" fill="${it.color}"/>`;
    const s = `${mark}<text class="legend" x="${x + 14}" y="${y}">${escapeXml(it.name)}</text>`;
    x += 24 + it.name.length * 7;
    return wrap || x < w ? s : '';
  }).join('');
}

/** A short deterministic id from content (ids in one HTML page must differ; no randomness: same input → same bytes). */
function hashId(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
  return h.toString(36);
}

function r(v: number): number { return Math.round(v * 10) / 10; }

function extent(vals: number[], fromZero: boolean): [number, number] {
  const f = vals.filter(Number.isFinite);
  if (f.length === 0) return [0, 1];
  let lo = Math.min(...f), hi = Math.max(...f);
  if (fromZero) lo = Math.min(0, lo);
  if (lo === hi) hi = lo + (Math.abs(lo) || 1);
  return [lo, hi];
}

function svgOpen(w: number, h: number, kind: string, title: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="${kind}" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="${escapeXml(title)}">`;
}

/**
 * One polyline per series (point count = finite points of the series), with optional ± bands,
 * labelled horizontal reference lines and highlighted (diamond) points.
 */
export function lineChart(series: Series[], o: ChartOptions): string {
  const kept = series.map((s) => s.points
    .map(([x, y], i): [number, number, number] => [x, y, errOf(s.errors?.[i])])
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  const refs = (o.refLines ?? []).filter((l) => Number.isFinite(l.y));
  const markers = (o.markers ?? []).filter((m) => Number.isFinite(m.x) && Number.isFinite(m.y));
  const xs = [...kept.flat().map((p) => p[0]), ...markers.map((m) => m.x)];
  const ys = [
    ...kept.flat().flatMap(([, y, e]) => (Number.isFinite(e) ? [y - e, y + e] : [y])),
    ...refs.map((l) => l.y), ...markers.map((m) => m.y),
  ];
  // a series with nothing to draw (e.g. a run without bits per byte) stays out of the legend
  const items: LegendItem[] = series.filter((_, i) => kept[i].length > 0 || kept.every((k) => k.length === 0)).map((s) => ({ name: s.name, color: s.color }));
  if (markers.length && o.markerLegend) items.push({ name: o.markerLegend, color: '#444', shape: 'diamond' });
  const w0 = o.width ?? 720;
  const rows = legendRows(items, w0);
  const extra = ((rows.length ? rows[rows.length - 1] : 0)) * LEGEND_ROW;
  const { parts, px, py, w, h } = frame(o, extent(xs, o.xFromZero ?? false), extent(ys, o.yFromZero ?? false), extra);
  refs.forEach((l, i) => {
    const y = r(py(l.y));
    parts.push(`<line class="ref" data-ref="${escapeXml(l.label)}" x1="${PAD.left}" x2="${w - PAD.right}" y1="${y}" y2="${y}" stroke="#555" stroke-width="1" stroke-dasharray="5 4"/>`);
    // alternate ends so close levels do not print over each other
    const right = i % 2 === 0;
    parts.push(`<text class="legend ref-label" x="${right ? w - PAD.right - 4 : PAD.left + 4}" y="${y - 4}" text-anchor="${right ? 'end' : 'start'}">${escapeXml(`${l.label} (${formatNumber(l.y)})`)}</text>`);
  });
  series.forEach((s, i) => {
    const p = kept[i];
    // ± bands over runs of consecutive points that have an error; a lone one gets an error bar
    let seg: [number, number, number][] = [];
    const flush = () => {
      if (seg.length === 1) {
        const [x, y, e] = seg[0];
        const X = r(px(x));
        parts.push(`<path class="errbar" data-band="${escapeXml(s.name)}" d="M${X - 3} ${r(py(y + e))}h6M${X} ${r(py(y + e))}V${r(py(y - e))}M${X - 3} ${r(py(y - e))}h6" stroke="${s.color}" stroke-width="1" fill="none"/>`);
      } else if (seg.length > 1) {
        const up = seg.map(([x, y, e]) => `${r(px(x))},${r(py(y + e))}`);
        const down = seg.map(([x, y, e]) => `${r(px(x))},${r(py(y - e))}`).reverse();
        parts.push(`<polygon class="band" data-band="${escapeXml(s.name)}" fill="${s.color}" fill-opacity="0.18" stroke="none" points="${[...up, ...down].join(' ')}"/>`);
      }
      seg = [];
    };
    for (const q of p) { if (Number.isFinite(q[2])) seg.push(q); else flush(); }
    flush();
  });
  series.forEach((s, i) => {
    const p = kept[i];
    if (p.length === 0) return;
    const attr = `data-series="${escapeXml(s.name)}" stroke="${s.color}"`;
    parts.push(`<polyline class="series" ${attr} fill="none" stroke-width="1.6" points="${p.map(([x, y]) => `${r(px(x))},${r(py(y))}`).join(' ')}"/>`);
    if (s.dots) for (const [x, y] of p) parts.push(`<circle class="dot" cx="${r(px(x))}" cy="${r(py(y))}" r="3" fill="${s.color}"><title>${escapeXml(`${s.name} @ ${formatNumber(x)}: ${formatNumber(y)}`)}</title></circle>`);
  });
  for (const m of markers) {
    const X = r(px(m.x)), Y = r(py(m.y));
    parts.push(`<path class="marker" d="M${X} ${r(Y - 6)}l6 6l-6 6l-6 -6z" fill="#fff" fill-opacity="0.6" stroke="${m.color}" stroke-width="1.8"><title>${escapeXml(m.label)}</title></path>`);
  }
  parts.push(legend(items, w, h, true));
  return `${svgOpen(w, h, 'line', o.title)}${parts.join('')}</svg>`;
}

function errOf(e: number | null | undefined): number {
  return typeof e === 'number' && Number.isFinite(e) && e >= 0 ? e : NaN;
}

/** The CSS the charts need when they are not inside the report page. */
const STANDALONE_CSS = 'text { font: 11px system-ui, sans-serif; fill: #444; } .title { font-weight: 600; font-size: 13px; fill: #222; } .label { font-size: 12px; fill: #222; } .grid { stroke: #eee; } .axis { stroke: #888; }';

/** A chart as its own .svg file (README, model card): XML prolog, its own style, white background. */
export function standaloneSvg(chart: string): string {
  const open = /^<svg[^>]*>/.exec(chart);
  if (!open) throw new Error('standaloneSvg: not an <svg> element');
  return `<?xml version="1.0" encoding="UTF-8"?>\n${open[0]}<style>${STANDALONE_CSS}</style><rect width="100%" height="100%" fill="#fff"/>${chart.slice(open[0].length)}\n`;
}

/** Layers stacked on top of each other over a shared x (e.g. the parts of a step's time). */
export function stackedAreaChart(x: number[], layers: { name: string; color: string; values: number[] }[], o: ChartOptions): string {
  const tops: number[][] = [];
  let base = x.map(() => 0);
  for (const l of layers) {
    const top = base.map((b, i) => b + Math.max(0, Number.isFinite(l.values[i]) ? l.values[i] : 0));
    tops.push(top);
    base = top;
  }
  const yr = extent([0, ...base], true);
  if (o.yMax !== undefined && o.yMax < yr[1]) yr[1] = o.yMax;
  const { parts, px, py, w, h } = frame(o, extent(x, false), yr);
  // clip to the plot area so a cut y axis does not let layers run over the title
  const clipId = `clip-${hashId(`${o.title}|${layers.map((l) => l.name).join('|')}|${x.join(',')}|${base.join(',')}`)}`;
  parts.push(`<clipPath id="${clipId}"><rect x="${PAD.left}" y="${PAD.top}" width="${w - PAD.left - PAD.right}" height="${h - PAD.top - PAD.bottom}"/></clipPath>`);
  layers.forEach((l, k) => {
    const top = tops[k], bottom = k === 0 ? x.map(() => 0) : tops[k - 1];
    const up = x.map((xi, i) => `${r(px(xi))},${r(py(top[i]))}`);
    const down = x.map((xi, i) => `${r(px(xi))},${r(py(bottom[i]))}`).reverse();
    parts.push(`<polygon class="layer" data-series="${escapeXml(l.name)}" clip-path="url(#${clipId})" fill="${l.color}" fill-opacity="0.75" stroke="none" points="${[...up, ...down].join(' ')}"/>`);
  });
  parts.push(legend(layers, w, h));
  return `${svgOpen(w, h, 'stacked', o.title)}${parts.join('')}</svg>`;
}

/** Horizontal bars, one per row, value in [0, max]. */
export function barChart(bars: { label: string; value: number; note?: string }[], o: ChartOptions & { max?: number }): string {
  const w = o.width ?? 720, rowH = 26, h = PAD.top + bars.length * rowH + 24;
  const left = 150, right = 230;
  const max = o.max ?? Math.max(1e-12, ...bars.map((b) => b.value));
  const fmt = o.yFormat ?? formatNumber;
  const parts = [`<text class="title" x="8" y="18">${escapeXml(o.title)}</text>`];
  bars.forEach((b, i) => {
    const y = PAD.top + i * rowH;
    const bw = Math.max(0, Math.min(1, b.value / max)) * (w - left - right);
    parts.push(`<text class="tick" x="${left - 8}" y="${y + 15}" text-anchor="end">${escapeXml(b.label)}</text>`);
    parts.push(`<rect class="bar" data-series="${escapeXml(b.label)}" x="${left}" y="${y + 3}" width="${r(bw)}" height="${rowH - 8}" fill="#4e79a7"/>`);
    parts.push(`<text class="legend" x="${left + r(bw) + 6}" y="${y + 15}">${escapeXml(fmt(b.value) + (b.note ? `  ${b.note}` : ''))}</text>`);
  });
  parts.push(`<text class="label" x="${left}" y="${h - 6}">${escapeXml(o.xLabel)}</text>`);
  return `${svgOpen(w, h, 'bar', o.title)}${parts.join('')}</svg>`;
}
