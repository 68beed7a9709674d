import { readFileSync } from 'node:fs';
import { parser } from '@prometheus-io/lezer-promql';
import { UserError } from '../../src/util/errors.ts';

/**
 * Reading the Grafana dashboard (cluster/grafana/dashboards/vilm.json) and the PromQL in it, so
 * tests can check every panel query against the metrics we register, with Prometheus' own parser
 * (@prometheus-io/lezer-promql) and against a real Prometheus.
 */
/** The datasource uid the provisioning declares (cluster/grafana/provisioning/datasources/vilm.yaml). */
export const DATASOURCE_UID = 'vilm-prometheus';
/** What every panel and target names as its datasource: the dashboard's `datasource` variable. */
export const DATASOURCE_REF = '${datasource}';
export const DASHBOARD_FILE = new URL('../../cluster/grafana/dashboards/vilm.json', import.meta.url);

export interface PanelQuery {
  panel: string;
  refId: string;
  expr: string;
  /** datasource uids named by the panel and the target */
  datasourceUids: string[];
}

interface GrafanaTarget { refId?: string; expr?: string; datasource?: { uid?: string } }
export interface GrafanaPanel {
  title?: string; type?: string; datasource?: { uid?: string }; targets?: GrafanaTarget[]; panels?: GrafanaPanel[];
  fieldConfig?: { defaults?: { unit?: unknown } };
}

/** A dashboard variable (templating.list). */
export interface GrafanaVariable {
  name: string;
  type: string;
  query?: string | { query?: string };
  definition?: string;
  datasource?: { type?: string; uid?: string };
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string | null;
  current?: { text?: unknown; value?: unknown };
}

export interface Dashboard { title: string; uid: string; panels: GrafanaPanel[]; variables: GrafanaVariable[] }

export function loadDashboard(file: string | URL = DASHBOARD_FILE): Dashboard {
  let raw: unknown;
  try { raw = JSON.parse(readFileSync(file, 'utf8')); } catch (e) {
    throw new UserError(`${String(file)}: cannot read dashboard JSON (${(e as Error).message.split('\n')[0]})`);
  }
  const d = raw as { title?: unknown; uid?: unknown; panels?: unknown; templating?: { list?: unknown } };
  if (typeof d.title !== 'string' || typeof d.uid !== 'string' || !Array.isArray(d.panels)) {
    throw new UserError(`${String(file)}: dashboard needs string 'title', 'uid' and a 'panels' array`);
  }
  const variables = Array.isArray(d.templating?.list) ? d.templating.list as GrafanaVariable[] : [];
  return { title: d.title, uid: d.uid, panels: d.panels as GrafanaPanel[], variables };
}

/** Every panel, rows' panels included (row panels themselves too). */
export function allPanels(panels: GrafanaPanel[]): GrafanaPanel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every (panel, target) query of a dashboard, rows included. */
export function dashboardQueries(panels: GrafanaPanel[]): PanelQuery[] {
  return allPanels(panels).flatMap((p) => (p.targets ?? []).map((t) => ({
    panel: p.title ?? '(untitled)', refId: t.refId ?? '?', expr: t.expr ?? '',
    datasourceUids: [p.datasource?.uid, t.datasource?.uid].filter((u): u is string => typeof u === 'string'),
  })));
}

/** The PromQL of a query variable (`label_values(…)`), whichever of Grafana's shapes it is stored in. */
export function variableQuery(v: GrafanaVariable): string {
  return typeof v.query === 'string' ? v.query : v.query?.query ?? v.definition ?? '';
}

/** `label_values(selector, label)` → its parts; null for another kind of variable query. */
export function parseLabelValues(q: string): { selector: string; label: string } | null {
  const m = /^\s*label_values\(\s*(.+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$/s.exec(q);
  return m ? { selector: m[1], label: m[2] } : null;
}

/** A variable's value(s) for expansion: one value, or several (a multi-value / All selection). */
export type VariableValue = string | { values: string[]; multi: true } | { all: string };

/** Grafana's escaping for Prometheus (its datasource's interpolateQueryExpr). */
const regularEscape = (v: string) => v.replace(/\\/g, '\\\\').replace(/'/g, "\\\\'");
const regexEscape = (v: string) => v.replace(/\\/g, '\\\\\\\\').replace(/[$^*{}[\]'+?.()|]/g, '\\\\$&');

/**
 * Replace Grafana's variables the way Grafana does for a Prometheus datasource, so the query can
 * be sent to Prometheus directly: `$__rate_interval`/`$__interval` → `rateInterval`; `$name` and
 * `${name}` → the value of `vars[name]` (one value as is; several as `(a|b)` regex-escaped; All
 * with an allValue as that value). A variable used but not given is left as is, which the parser
 * (or Prometheus) then refuses.
 */
export function expandGrafanaVariables(expr: string, rateInterval = '5s', vars: Record<string, VariableValue> = {}): string {
  const value = (name: string): string | undefined => {
    if (name === '__rate_interval' || name === '__interval') return rateInterval;
    const v = vars[name];
    if (v === undefined) return undefined;
    if (typeof v === 'string') return regularEscape(v);
    if ('all' in v) return v.all;
    const esc = v.values.map(regexEscape);
    return esc.length === 1 ? esc[0] : `(${esc.join('|')})`;
  };
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (m, braced: string | undefined, bare: string | undefined) => value((braced ?? bare)!) ?? m);
}

/** Where the official PromQL grammar found errors (empty: the expression parses). */
export function promqlErrors(expr: string): string[] {
  const errors: string[] = [];
  parser.parse(expr).iterate({
    enter: (n) => {
      if (n.type.isError) errors.push(`error at ${n.from}: …${expr.slice(Math.max(0, n.from - 15), n.from)}⚠${expr.slice(n.from, n.from + 15)}…`);
    },
  });
  return errors;
}

export interface Matcher { label: string; op: string; value: string }
/** One vector selector of an expression: its metric name and label matchers. */
export interface Selector { metric: string; matchers: Matcher[] }

/** The string value of a PromQL string literal ("…", '…' or `…`). */
function stringValue(lit: string): string {
  if (lit.startsWith('`')) return lit.slice(1, -1);
  return lit.slice(1, -1).replace(/\\(.)/g, '$1');
}

/** Every vector selector of an expression, from the official parser's tree. */
export function promqlSelectors(expr: string): Selector[] {
  const out: Selector[] = [];
  const tree = parser.parse(expr);
  tree.iterate({
    enter: (n) => {
      if (n.name !== 'VectorSelector') return;
      const node = n.node;
      const id = node.getChild('Identifier');
      const matchers: Matcher[] = [];
      for (const m of node.getChild('LabelMatchers')?.getChildren('UnquotedLabelMatcher') ?? []) {
        const label = m.getChild('LabelName'), op = m.getChild('MatchOp'), str = m.getChild('StringLiteral');
        if (label && op && str) matchers.push({ label: expr.slice(label.from, label.to), op: expr.slice(op.from, op.to), value: stringValue(expr.slice(str.from, str.to)) });
      }
      out.push({ metric: id ? expr.slice(id.from, id.to) : '', matchers });
    },
  });
  return out;
}

/**
 * Metric names and label names a PromQL expression refers to (selectors' names and matchers,
 * and the labels of by/without/on/ignoring/group_left/group_right), from the official parser.
 */
export function promqlReferences(expr: string): { metrics: string[]; labels: string[] } {
  const metrics = new Set<string>();
  const labels = new Set<string>();
  for (const s of promqlSelectors(expr)) {
    if (s.metric) metrics.add(s.metric);
    for (const m of s.matchers) labels.add(m.label);
  }
  parser.parse(expr).iterate({
    enter: (n) => {
      if (n.name !== 'GroupingLabels') return;
      for (const l of n.node.getChildren('LabelName')) labels.add(expr.slice(l.from, l.to));
    },
  });
  return { metrics: [...metrics], labels: [...labels] };
}
