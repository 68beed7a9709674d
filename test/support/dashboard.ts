import { readFileSync } from 'node:fs';
import { UserError } from '../../src/util/errors.ts';

/**
 * Reading the Grafana dashboard (cluster/grafana/dashboards/vilm.json) and the PromQL in it, so
 * tests can check every panel query against the metrics we register and against a real Prometheus.
 */
export const DATASOURCE_UID = 'vilm-prometheus';
export const DASHBOARD_FILE = new URL('../../cluster/grafana/dashboards/vilm.json', import.meta.url);

export interface PanelQuery {
  panel: string;
  refId: string;
  expr: string;
  /** datasource uids named by the panel and the target */
  datasourceUids: string[];
}

interface GrafanaTarget { refId?: string; expr?: string; datasource?: { uid?: string } }
interface GrafanaPanel { title?: string; datasource?: { uid?: string }; targets?: GrafanaTarget[]; panels?: GrafanaPanel[] }

export function loadDashboard(file: string | URL = DASHBOARD_FILE): { title: string; uid: string; panels: GrafanaPanel[] } {
  let raw: unknown;
  try { raw = JSON.parse(readFileSync(file, 'utf8')); } catch (e) {
    throw new UserError(`${String(file)}: cannot read dashboard JSON (${(e as Error).message.split('\n')[0]})`);
  }
  const d = raw as { title?: unknown; uid?: unknown; panels?: unknown };
  if (typeof d.title !== 'string' || typeof d.uid !== 'string' || !Array.isArray(d.panels)) {
    throw new UserError(`${String(file)}: dashboard needs string 'title', 'uid' and a 'panels' array`);
  }
  return { title: d.title, uid: d.uid, panels: d.panels as GrafanaPanel[] };
}

/** Every (panel, target) query of a dashboard, rows included. */
export function dashboardQueries(panels: GrafanaPanel[]): PanelQuery[] {
  const out: PanelQuery[] = [];
  const walk = (ps: GrafanaPanel[]) => {
    for (const p of ps) {
      if (p.panels) walk(p.panels);
      for (const t of p.targets ?? []) {
        out.push({
          panel: p.title ?? '(untitled)', refId: t.refId ?? '?', expr: t.expr ?? '',
          datasourceUids: [p.datasource?.uid, t.datasource?.uid].filter((u): u is string => typeof u === 'string'),
        });
      }
    }
  };
  walk(panels);
  return out;
}

/** Replace Grafana's interval variables so the query can be sent to Prometheus directly. */
export function expandGrafanaVariables(expr: string, rateInterval = '5s'): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$\{__rate_interval\}|\$\{__interval\}/g, rateInterval);
}

const PROMQL_WORDS = new Set([
  // aggregation operators and keywords
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile',
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset',
]);

/**
 * Metric names and label names a PromQL expression refers to. Written here (a tokenizer, not a full
 * PromQL parser) because no maintained JS PromQL parser is installed; it handles what dashboards
 * use: selectors with `{…}` matchers, `[range]`, functions, `by/without/on/ignoring (labels)`.
 */
export function promqlReferences(expr: string): { metrics: string[]; labels: string[] } {
  const metrics = new Set<string>();
  const labels = new Set<string>();
  // strings first (they may contain anything), then durations in [..]
  let s = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""').replace(/\[[^\]]*\]/g, ' ');
  // label matchers: {a="x", b=~"y"}
  s = s.replace(/\{([^}]*)\}/g, (_m, inner: string) => {
    for (const part of inner.split(',')) {
      const name = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/.exec(part);
      if (name) labels.add(name[1]);
    }
    return ' ';
  });
  // grouping label lists: by (a, b) / without (...) / on (...) / ignoring (...) / group_left (...)
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_m, _kw: string, inner: string) => {
    for (const l of inner.split(',')) if (l.trim()) labels.add(l.trim());
    return ' ';
  });
  // number literals (1e6, 0.95) so their exponent is not read as a name
  s = s.replace(/\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b/gi, ' ');
  for (const m of s.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?/g)) {
    const word = m[0].replace(/\s*\($/, '');
    const isCall = m[1] !== undefined;
    if (isCall || PROMQL_WORDS.has(word)) continue;
    if (/^(Inf|NaN|inf|nan)$/.test(word)) continue;
    metrics.add(word);
  }
  return { metrics: [...metrics], labels: [...labels] };
}
