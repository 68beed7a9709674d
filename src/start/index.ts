/**
 * The first-run job behind `npm start` (`vilm start`): on a fresh machine, with no flags, it
 * cleans the built-in sample corpus (data/sample), trains a tokenizer, prepares bucketed data,
 * trains with a coordinator and 2 worker threads, prints the validation loss and a generated
 * Vietnamese sample, and leaves a run folder with checkpoint, log, final.json and report.html.
 *
 * `--corpus DIR|FILE…` uses another corpus (e.g. ../shared/corpus/viwiki) with the seed model
 * config (configs/tiny.yaml, 10k vocabulary).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, applyOverrides, type RunConfig } from '../config/index.js';
import { corpusFiles, prepareCorpus, SAMPLE_CORPUS, timestamp } from './sample-data.js';
import { runTrainingLoop, type StopSignal } from '../train/loop.js';
import type { TrainerObserver } from '../events/index.js';
import { loadCheckpoint } from '../train/checkpoint.js';
import { openModel } from '../train/open-model.js';
import { generate } from '../train/generate.js';
import { writeReport } from '../report/index.js';
import type { BackendName } from '../backend/types.js';
import { UserError } from '../util/errors.js';
import { log } from '../util/log.js';
import { trainProgress } from '../train/progress.js';

export { corpusFiles, SAMPLE_CORPUS };

export interface StartOptions {
  /** corpus JSONL files or folders of them; default: the built-in sample */
  corpus?: string[];
  out?: string;
  config?: string;
  vocabSize?: number;
  workers: number;
  steps?: number;
  prompt: string;
  maxTokens: number;
  backend: BackendName;
  set: string[];
  /** test-split batches scored at the end (a fixed-order prefix covering every bucket); 0 = all */
  testSequences: number;
  metricsObservers?: TrainerObserver[];
}

export async function runStart(o: StartOptions): Promise<{ runDir: string; sample: string }> {
  const usingSample = !o.corpus || o.corpus.length === 0;
  const inputs = corpusFiles(usingSample ? [SAMPLE_CORPUS] : o.corpus!);
  const configFile = o.config ?? (usingSample ? 'configs/sample.yaml' : 'configs/tiny.yaml');
  let cfg: RunConfig = loadConfig(configFile);
  if (o.set.length) cfg = applyOverrides(cfg, o.set);
  const vocabSize = o.vocabSize ?? cfg.model.vocab_size;
  if (vocabSize !== cfg.model.vocab_size) cfg = applyOverrides(cfg, [`model.vocab_size=${vocabSize}`]);
  const runDir = o.out ?? path.join('runs', `start-${timestamp()}`);
  if (existsSync(path.join(runDir, 'final.json'))) throw new UserError(`--out ${runDir}: already holds a finished run; choose another folder`);
  const dataDir = path.join(runDir, 'data');
  log.info(`vilm start: corpus ${usingSample ? 'the built-in sample' : inputs.join(', ')}, config ${configFile}, run ${runDir}`);

  // 1–3. clean, tokenizer, split/sequences/buckets
  const prepared = await prepareCorpus(inputs, dataDir, { vocabSize, maxLen: cfg.model.max_len, seed: cfg.train.seed });

  // 4. train: a coordinator with N local worker threads, progress bar on a TTY (logs above it)
  const steps = o.steps ?? cfg.train.steps;
  const bar = trainProgress();
  const stop: StopSignal = { requested: false };
  let r;
  try {
    r = await runTrainingLoop({
      config: cfg, dataDir: prepared, outDir: runDir, resume: false, steps, backend: o.backend,
      inProcess: false, threads: o.workers, stopSignal: stop, testSequences: o.testSequences > 0 ? o.testSequences : undefined,
      observers: [bar.observer, ...(o.metricsObservers ?? [])],
    });
  } finally {
    bar.close();
  }
  log.info(r.final ? `trained: step ${r.final.step}, validation loss ${fmt(r.final.valLoss)}, test loss ${fmt(r.final.testLoss)} (ppl ${fmt(r.final.testPpl)})` : `trained: stopped at step ${r.step}`);

  // 5. a generated sample from the final checkpoint (KV-cached decoder)
  const ck = loadCheckpoint(runDir);
  const { model, tokenizer } = await openModel(ck, runDir, o.backend);
  let sample = o.prompt;
  for await (const piece of generate(model, ck.weights, tokenizer, o.prompt, { maxTokens: o.maxTokens, temperature: 0.8, topK: 40, topP: 0.95, seed: 1 })) sample += piece;
  model.dispose();

  // 6. report
  const report = await writeReport(runDir);
  const lines = [
    '',
    `run folder:       ${runDir}`,
    `validation loss:  ${fmt(r.final?.valLoss ?? null)}`,
    `test loss / ppl:  ${fmt(r.final?.testLoss ?? null)} / ${fmt(r.final?.testPpl ?? null)}`,
    `sample:           ${sample.replace(/\s+/g, ' ').trim()}`,
    `report:           ${report}`,
    `next:             npx vilm predict --checkpoint ${runDir} --prompt "${o.prompt}"`,
    '',
  ];
  process.stdout.write(lines.join('\n'));
  return { runDir, sample };
}

function fmt(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(3);
}
