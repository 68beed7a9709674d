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

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  return Number(v.toPrecision(4)).toString();
}

interface Frame { x0: number; x1: number; y0: number; y1: number; w: number; h: number }

/** Axes, grid and labels; returns the SVG parts and the data→pixel mapping. */
function frame(o: ChartOptions, xr: [number, number], yr: [number, number]) {
  const w = o.width ?? 720, h = o.height ?? 280;
  const xt = niceTicks(xr[0], xr[1], 8), yt = niceTicks(yr[0], yr[1], 5);
  const f: Frame = { x0: xt[0], x1: xt[xt.length - 1], y0: yt[0], y1: yt[yt.length - 1], w, h };
  const px = (x: number) => PAD.left + ((x - f.x0) / (f.x1 - f.x0 || 1)) * (w - PAD.left - PAD.right);
  const py = (y: number) => h - PAD.bottom - ((y - f.y0) / (f.y1 - f.y0 || 1)) * (h - PAD.top - PAD.bottom);
  const fmt = o.yFormat ?? formatNumber;
  const parts: string[] = [];
  parts.push(`<text class="title" x="${PAD.left}" y="18">${escapeXml(o.title)}</text>`);
  for (const y of yt) {
    parts.push(`<line class="grid" x1="${PAD.left}" x2="${w - PAD.right}" y1="${r(py(y))}" y2="${r(py(y))}"/>`);
    parts.push(`<text class="tick" x="${PAD.left - 6}" y="${r(py(y)) + 4}" text-anchor="end">${escapeXml(fmt(y))}</text>`);
  }
  for (const x of xt) parts.push(`<text class="tick" x="${r(px(x))}" y="${h - PAD.bottom + 16}" text-anchor="middle">${escapeXml(formatNumber(x))}</text>`);
  parts.push(`<line class="axis" x1="${PAD.left}" x2="${w - PAD.right}" y1="${h - PAD.bottom}" y2="${h - PAD.bottom}"/>`);
  parts.push(`<line class="axis" x1="${PAD.left}" x2="${PAD.left}" y1="${PAD.top}" y2="${h - PAD.bottom}"/>`);
  parts.push(`<text class="label" x="${(PAD.left + w - PAD.right) / 2}" y="${h - PAD.bottom + 32}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`);
  parts.push(`<text class="label" transform="translate(14 ${(PAD.top + h - PAD.bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(o.yLabel)}</text>`);
  return { parts, px, py, w, h };
}

function legend(items: { name: string; color: string }[], w: number, h: number): string {
  let x = PAD.left;
  const y = h - 10;
  return items.map((it) => {
    const s = `<rect x="${x}" y="${y - 9}" width="10" height="10" fill="${it.color}"/><text class="legend" x="${x + 14}" y="${y}">${escapeXml(it.name)}</text>`;
    x += 24 + it.name.length * 7;
    return x < w ? s : '';
  }).join('');
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

/** One polyline per series (point count = finite points of the series). */
export function lineChart(series: Series[], o: ChartOptions): string {
  const pts = series.map((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  const xs = pts.flat().map((p) => p[0]), ys = pts.flat().map((p) => p[1]);
  const { parts, px, py, w, h } = frame(o, extent(xs, false), extent(ys, o.yFromZero ?? false));
  series.forEach((s, i) => {
    const p = pts[i];
    if (p.length === 0) return;
    const attr = `data-series="${escapeXml(s.name)}" stroke="${s.color}"`;
    parts.push(`<polyline class="series" ${attr} fill="none" stroke-width="1.6" points="${p.map(([x, y]) => `${r(px(x))},${r(py(y))}`).join(' ')}"/>`);
    if (s.dots) for (const [x, y] of p) parts.push(`<circle class="dot" cx="${r(px(x))}" cy="${r(py(y))}" r="3" fill="${s.color}"><title>${escapeXml(`${s.name} @ ${formatNumber(x)}: ${formatNumber(y)}`)}</title></circle>`);
  });
  parts.push(legend(series, w, h));
  return `${svgOpen(w, h, 'line', o.title)}${parts.join('')}</svg>`;
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
  const clipId = `clip-${Math.random().toString(36).slice(2, 10)}`;
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
