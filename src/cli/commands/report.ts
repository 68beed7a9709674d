import { defineCommand } from '../define.js';

export const reportCommand = defineCommand({
  command: 'report <runs..>',
  describe: 'write a self-contained HTML report of a run, or a comparison of several (validation curves, time to quality)',
  builder: (y) => y
    .positional('runs', { type: 'string', array: true, demandOption: true, describe: 'run folder(s) with log.jsonl (and final.json once finished)' })
    .option('out', { type: 'string', describe: 'output HTML file (default: RUN/report.html for one run, ./report-compare.html for several); FILE.json and FILE-time-to-quality.svg go beside it' })
    .option('references', { type: 'string', describe: 'JSON file {"references":[{"name","bitsPerByte"}…],"text"}: reference levels for the time-to-quality section' })
    .option('labels', { type: 'string', describe: 'comma-separated run labels, one per run (default: folder names)' })
    .example('$0 report runs/start', 'writes runs/start/report.html')
    .example('$0 report runs/k8s --out /tmp/k8s.html', 'somewhere else')
    .example('$0 report runs/adam runs/lion --labels adam,lion --references refs.json', 'compare two runs: report-compare.html, .json and -time-to-quality.svg')
    .strict(),
  handler: async (a) => {
    const { writeReports } = await import('../../report/index.js');
    const labels = a.labels === undefined ? undefined : a.labels.split(',').map((l) => l.trim());
    const files = await writeReports(a.runs.map(String), { out: a.out, references: a.references, labels });
    process.stdout.write([files.html, files.json, files.svg].filter((f): f is string => f !== null).join('\n') + '\n');
  },
});
