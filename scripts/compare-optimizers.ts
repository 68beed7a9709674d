/**
 * The spec's four optimizers on the same token budget, each at its best learning rate from a small
 * sweep (not a test; minutes of CPU per run).
 *
 *   npx tsx scripts/compare-optimizers.ts --data runs/wiki/data [--config configs/viwiki.yaml]
 *        [--steps 200] [--batch-tokens 2048] [--workers 2] [--out runs/optimizers]
 *        [--grid "sgd=1,5;momentum=1,5;rmsprop=0.001,0.003;adam=0.001,0.003"]
 *
 * Every run: `vilm coordinator --local-only` with the config, `--steps S`, `train.batch_tokens`,
 * `train.lr` from the grid, `train.min_lr` = lr/10 (cosine), the same seed, data order and
 * validation sample; validation every S/5 steps; the test split's fixed sample of 512 sequences at
 * the end. The best learning rate of each optimizer is the one with the lowest final validation
 * loss. Prints a table, writes OUT/optimizers.json, and `vilm report` of the four best runs
 * (OUT/optimizers.html: validation curves overlaid).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

const data = arg('data', 'runs/wiki/data');
const config = arg('config', 'configs/viwiki.yaml');
const steps = Number(arg('steps', '200'));
const batchTokens = Number(arg('batch-tokens', '2048'));
const workers = arg('workers', '2');
const out = arg('out', 'runs/optimizers');
const grid = Object.fromEntries(arg('grid', 'sgd=1,5;momentum=1,5;rmsprop=0.001,0.003;adam=0.001,0.003')
  .split(';').map((part) => {
    const [opt, lrs] = part.split('=');
    return [opt.trim(), lrs.split(',').map(Number)];
  })) as Record<string, number[]>;

interface Final { valLoss: number | null; testLoss: number; testBitsPerByte: number; trainSeconds: number }
interface Row { optimizer: string; lr: number; dir: string; valLoss: number | null; testLoss: number; testBitsPerByte: number; minutes: number }

const cli = path.resolve('src/cli/main.ts');
mkdirSync(out, { recursive: true });
const rows: Row[] = [];
for (const [optimizer, lrs] of Object.entries(grid)) {
  for (const lr of lrs) {
    const dir = path.join(out, `${optimizer}-lr${lr}`);
    if (!existsSync(path.join(dir, 'final.json'))) {
      rmSync(dir, { recursive: true, force: true });
      process.stderr.write(`${optimizer} lr=${lr}: ${steps} steps …\n`);
      const r = spawnSync('node', ['--import', 'tsx', cli, 'coordinator', '--local-only', '--workers', workers,
        '--config', config, '--data', data, '--out', dir, '--steps', String(steps), '--optimizer', optimizer,
        '--set', `train.lr=${lr}`, '--set', `train.min_lr=${lr / 10}`, '--set', `train.batch_tokens=${batchTokens}`,
        '--set', `train.eval_every=${Math.max(1, Math.round(steps / 5))}`, '--set', `train.checkpoint_every=${steps}`,
        '--set', 'train.log_every=50', '--test-sequences', '512'], { stdio: ['ignore', 'ignore', 'inherit'] });
      if (r.status !== 0) { process.stderr.write(`${optimizer} lr=${lr}: exit ${r.status}\n`); continue; }
    }
    const f = JSON.parse(readFileSync(path.join(dir, 'final.json'), 'utf8')) as Final;
    rows.push({ optimizer, lr, dir, valLoss: f.valLoss, testLoss: f.testLoss, testBitsPerByte: f.testBitsPerByte, minutes: f.trainSeconds / 60 });
  }
}

const best = Object.keys(grid).map((opt) => rows.filter((r) => r.optimizer === opt && r.valLoss !== null && Number.isFinite(r.valLoss))
  .sort((a, b) => (a.valLoss as number) - (b.valLoss as number))[0]).filter((r): r is Row => r !== undefined);
const tokens = steps * batchTokens;
writeFileSync(path.join(out, 'optimizers.json'), JSON.stringify({ config, steps, batchTokens, tokens, runs: rows, best: best.map((b) => b.dir) }, null, 2) + '\n');
console.log(`\n${steps} steps × ${batchTokens} tokens (${(tokens / 1e6).toFixed(2)} M padded positions) per run, ${config}\n`);
console.log('| optimizer | lr | val loss | test loss | test bits/byte | training min | best |\n| --- | ---: | ---: | ---: | ---: | ---: | :---: |');
for (const r of rows) {
  console.log(`| ${r.optimizer} | ${r.lr} | ${r.valLoss?.toFixed(3) ?? '-'} | ${r.testLoss.toFixed(3)} | ${r.testBitsPerByte.toFixed(3)} | ${r.minutes.toFixed(1)} | ${best.includes(r) ? '✓' : ''} |`);
}
if (best.length > 0) {
  const html = path.join(out, 'optimizers.html');
  const r = spawnSync('node', ['--import', 'tsx', cli, 'report', ...best.map((b) => b.dir), '--out', html,
    '--labels', best.map((b) => `${b.optimizer} ${b.lr}`).join(',')], { stdio: 'inherit' });
  if (r.status === 0) console.log(`\nwrote ${html}`);
}
