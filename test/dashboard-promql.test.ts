/**
 * The dashboard as a Grafana user imports it (issue 12): every panel query is valid PromQL by
 * Prometheus' own grammar (@prometheus-io/lezer-promql) once Grafana's variables are expanded,
 * every selector is scoped to one run by the job/instance variables (two runs on one Prometheus
 * are never summed), every panel has a unit, and the variables are there (datasource, job,
 * instance, and the remote workers' job/instance) as label_values queries that parse too.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  allPanels, dashboardQueries, expandGrafanaVariables, loadDashboard, parseLabelValues, promqlErrors, promqlSelectors, variableQuery,
  type VariableValue,
} from './support/dashboard.ts';

const dashboard = loadDashboard();

/** Values like Grafana's on a real setup: one coordinator picked, all remote workers. */
const SAMPLE_VARS: Record<string, VariableValue> = {
  job: 'vilm-coordinator', instance: '127.0.0.1:9464', worker_job: { all: '.*' }, worker_instance: { values: ['10.0.0.7:9465', 'gpu-box:9465'], multi: true },
};

/**
 * The variables a selector must be scoped by: a remote worker's own metrics come from other
 * targets (the worker job), everything else from the coordinator picked in `instance`.
 */
function scopeOf(metric: string): { job: [string, string]; instance: [string, string] } {
  return metric.startsWith('vilm_remote_')
    ? { job: ['=~', '$worker_job'], instance: ['=~', '$worker_instance'] }
    : { job: ['=', '$job'], instance: ['=', '$instance'] };
}

/** What is wrong with a panel query: PromQL errors after expansion, selectors not scoped to the run. */
function queryProblems(expr: string): string[] {
  const problems: string[] = [];
  const expanded = expandGrafanaVariables(expr, '1m', SAMPLE_VARS);
  if (/\$/.test(expanded)) problems.push(`a variable left unexpanded: ${expanded}`);
  for (const e of promqlErrors(expanded)) problems.push(`PromQL: ${e}`);
  // the variables themselves (still inside the strings): only the interval is expanded
  const selectors = promqlSelectors(expandGrafanaVariables(expr, '1m'));
  if (selectors.length === 0) problems.push('no selector');
  for (const s of selectors) {
    const want = scopeOf(s.metric);
    for (const label of ['job', 'instance'] as const) {
      const ms = s.matchers.filter((m) => m.label === label);
      const [op, value] = want[label];
      if (ms.length !== 1 || ms[0].op !== op || ms[0].value !== value) problems.push(`${s.metric}: needs ${label}${op}"${value}", has ${JSON.stringify(ms)}`);
    }
  }
  return problems;
}

test('every panel query parses with the official PromQL parser after variable expansion, and is scoped by the job/instance variables', () => {
  const qs = dashboardQueries(dashboard.panels);
  assert.ok(qs.length >= 30, `${qs.length} queries`);
  const bad = qs.flatMap((q) => queryProblems(q.expr).map((p) => `${q.panel} [${q.refId}]: ${p}`));
  assert.deepEqual(bad, []);
});

test('the checks are real: a syntax error, an unscoped selector, a wrong variable and an unknown variable are caught', () => {
  assert.deepEqual(queryProblems('sum(rate(vilm_tokens_total{job="$job", instance="$instance"}[$__rate_interval]))'), []);
  assert.ok(queryProblems('sum(rate(vilm_tokens_total{job="$job", instance="$instance"}[$__rate_interval])').some((p) => p.startsWith('PromQL')), 'missing )');
  assert.ok(queryProblems('sum(rate(vilm_tokens_total{job="$job", instance="$instance"}[$__rate_interval])) by le').some((p) => p.startsWith('PromQL')), 'by without ()');
  assert.ok(queryProblems('vilm_loss{job="$job", instance="$instance"} / vilm_validation_loss{job="$job"}').some((p) => p.includes('vilm_validation_loss: needs instance')));
  assert.ok(queryProblems('vilm_remote_connected{job="$job", instance="$instance"}').some((p) => p.includes('needs job=~"$worker_job"')));
  assert.ok(queryProblems('vilm_loss{job="$job", instance="$run"}').some((p) => p.includes('unexpanded')));
  assert.ok(promqlErrors('rate(vilm_tokens_total[$__rate_interval])').length > 0, 'Grafana variables are not PromQL: they must be expanded first');
  // Grafana's formatting for Prometheus: several values as an escaped regex alternation
  assert.equal(expandGrafanaVariables('x{i=~"$v"}', '1m', { v: { values: ['a.b:1', 'c'], multi: true } }), 'x{i=~"(a\\\\.b:1|c)"}');
  assert.equal(expandGrafanaVariables('x{i="${v}"}[$__rate_interval]', '30s', { v: 'h:1' }), 'x{i="h:1"}[30s]');
});

test('every panel has a unit; the Step figure is the global step (no reset on resume); learning rate and gradient norm on separate panels', () => {
  const panels = allPanels(dashboard.panels).filter((p) => p.type !== 'row');
  assert.ok(panels.length >= 25);
  const noUnit = panels.filter((p) => typeof p.fieldConfig?.defaults?.unit !== 'string' || p.fieldConfig.defaults.unit === '').map((p) => p.title);
  assert.deepEqual(noUnit, [], 'panels without fieldConfig.defaults.unit');
  const exprsOf = (p: (typeof panels)[number]) => (p.targets ?? []).map((t) => t.expr ?? '');
  const step = panels.find((p) => /^Step\b/.test(p.title ?? ''));
  assert.ok(step && exprsOf(step).some((e) => /^vilm_global_step\{/.test(e)), 'the Step stat shows vilm_global_step');
  for (const p of panels.filter((x) => x.type === 'stat')) {
    assert.ok(!exprsOf(p).some((e) => /^(sum\()?vilm_steps_total\b/.test(e)), `${p.title}: vilm_steps_total restarts at 0 on resume`);
  }
  const lr = panels.filter((p) => exprsOf(p).some((e) => e.includes('vilm_learning_rate')));
  const gn = panels.filter((p) => exprsOf(p).some((e) => e.includes('vilm_gradient_norm')));
  assert.equal(lr.length, 1);
  assert.equal(gn.length, 1);
  assert.notEqual(lr[0], gn[0], 'learning rate (~1e-3) and gradient norm (~1) share no axis');
  // the loss panel has training, validation and test loss; progress and ETA are shown
  const all = panels.flatMap(exprsOf).join('\n');
  assert.ok(panels.some((p) => ['vilm_loss{', 'vilm_validation_loss{', 'vilm_test_loss{'].every((n) => exprsOf(p).some((e) => e.startsWith(n)))), 'a loss panel with train, validation and test');
  for (const n of ['vilm_planned_steps', 'vilm_eta_seconds', 'vilm_test_perplexity', 'vilm_network_sent_bytes_total', 'vilm_worker_micro_shards_total']) assert.ok(all.includes(n), n);
});

test('variables: datasource (Prometheus), job and instance of the coordinator, the remote workers\' job and instances; label_values queries that parse', () => {
  const byName = new Map(dashboard.variables.map((v) => [v.name, v]));
  assert.deepEqual([...byName.keys()], ['datasource', 'job', 'instance', 'worker_job', 'worker_instance']);
  assert.equal(byName.get('datasource')?.type, 'datasource');
  assert.equal(byName.get('datasource')?.query, 'prometheus');
  for (const name of ['job', 'instance', 'worker_job', 'worker_instance']) {
    const v = byName.get(name)!;
    assert.equal(v.type, 'query', name);
    assert.equal(v.datasource?.uid, '${datasource}', `${name}: queries the chosen datasource`);
    const lv = parseLabelValues(variableQuery(v));
    assert.ok(lv, `${name}: a label_values(selector, label) query, got ${variableQuery(v)}`);
    assert.equal(lv.label, name.replace('worker_', ''));
    assert.deepEqual(promqlErrors(expandGrafanaVariables(lv.selector, '1m', SAMPLE_VARS)), [], `${name}: ${lv.selector}`);
  }
  // one coordinator at a time (never summed); instances follow the job; remote workers: all by default
  assert.equal(byName.get('job')?.multi, false);
  assert.equal(byName.get('instance')?.multi, false);
  assert.equal(byName.get('instance')?.includeAll, false);
  assert.match(variableQuery(byName.get('instance')!), /job="\$job"/);
  assert.match(variableQuery(byName.get('worker_instance')!), /job=~"\$worker_job"/);
  assert.equal(byName.get('worker_instance')?.includeAll, true);
});
