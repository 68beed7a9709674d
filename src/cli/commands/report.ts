import { defineCommand } from '../define.js';
import { writeReport } from '../../report/index.js';

export const reportCommand = defineCommand({
  command: 'report <run>',
  describe: 'write a self-contained HTML report of a run (loss, throughput, workers, step time)',
  builder: (y) => y
    .positional('run', { type: 'string', demandOption: true, describe: 'run folder with log.jsonl (and final.json once finished)' })
    .option('out', { type: 'string', describe: 'output file (default: RUN/report.html)' })
    .example('$0 report runs/start', 'writes runs/start/report.html')
    .example('$0 report runs/k8s --out /tmp/k8s.html', 'somewhere else')
    .strict(),
  handler: async (a) => {
    const file = await writeReport(a.run, a.out);
    process.stdout.write(file + '\n');
  },
});
