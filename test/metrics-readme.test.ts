/**
 * The README's metric tables (section "Metrics") are the registries: every metric of the
 * coordinator and of a remote worker, with its type, labels and help text, and nothing else.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Registry } from 'prom-client';
import { createMetrics } from '../src/metrics/index.ts';
import { createWorkerMetrics } from '../src/metrics/worker.ts';

/** The rows of the first table after `heading` inside the README's Metrics section. */
function table(readme: string, heading: string): string[] {
  const section = readme.slice(readme.indexOf('\n## Metrics\n'));
  const at = section.indexOf(`\n${heading}\n`);
  assert.ok(at >= 0, `README: no "${heading}" in the Metrics section`);
  const lines = section.slice(at).split('\n').slice(2);
  const start = lines.findIndex((l) => l.startsWith('| name |'));
  const rows: string[] = [];
  for (const l of lines.slice(start + 2)) { if (!l.startsWith('|')) break; rows.push(l); }
  return rows;
}

async function rows(registry: Registry): Promise<string[]> {
  const out: string[] = [];
  for (const m of await registry.getMetricsAsJSON()) {
    const labels = (registry.getSingleMetric(m.name) as unknown as { labelNames?: string[] }).labelNames ?? [];
    out.push(`| \`${m.name}\` | ${String(m.type)} | ${labels.map((l) => `\`${l}\``).join(', ')} | ${m.help} |`);
  }
  return out;
}

test('README Metrics tables list exactly the registered metrics (name, type, labels, help)', async () => {
  const readme = readFileSync('README.md', 'utf8');
  assert.deepEqual(table(readme, '### Coordinator'), await rows(createMetrics({ processMetrics: false }).registry));
  assert.deepEqual(table(readme, '### Remote worker (optional)'), await rows(createWorkerMetrics({ name: 'w', processMetrics: false }).registry));
});
