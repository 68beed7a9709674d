import { defineCommand, type AnyCommand } from '../define.js';
import { buildLayout, summarize } from '../../model/layout.js';
import { exportCommand } from './export.js';

const DEFAULT_CONFIG = 'configs/tiny.yaml';

const summary = defineCommand({
  command: 'summary',
  describe: 'print the parameter count: weight matrices, norms and biases, per tensor',
  builder: (y) => y
    .option('config', { type: 'string', default: DEFAULT_CONFIG, describe: 'model config YAML' })
    .option('json', { type: 'boolean', default: false, describe: 'print {weightMatrices, other, total, breakdown} as JSON' })
    .example('$0 model summary', 'the seed model: 1,427,456 weight-matrix parameters')
    .example('$0 model summary --config configs/test.yaml --json', 'machine-readable'),
  handler: async (a) => {
    const { loadConfig } = await import('../../config/index.js');
    const cfg = loadConfig(a.config);
    const s = summarize(buildLayout(cfg.model));
    if (a.json) { process.stdout.write(JSON.stringify(s, null, 2) + '\n'); return; }
    const rows = s.breakdown.map((b) => `${b.name.padEnd(36)} ${JSON.stringify(b.shape).padEnd(12)} ${String(b.count).padStart(9)}  ${b.kind}`);
    process.stdout.write([
      `config: ${a.config}`,
      ...rows,
      '',
      `weight matrices: ${s.weightMatrices.toLocaleString('en-US')}`,
      `norms and biases: ${s.other.toLocaleString('en-US')}`,
      `total: ${s.total.toLocaleString('en-US')}`,
    ].join('\n') + '\n');
  },
});

export const modelCommands: AnyCommand[] = [
  {
    command: 'model <command>',
    describe: 'inspect the model (parameter counts)',
    // `vilm model export …` still works for old scripts but is listed once, as `vilm export`
    builder: (y) => y.command(summary).command({ ...exportCommand, describe: false }).demandCommand(1),
    handler: () => undefined,
  },
  exportCommand, // `vilm export safetensors` (the spelling)
];
