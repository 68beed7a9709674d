/**
 * The run log `RUN/log.jsonl`: one `RunLogRecord` (./index.ts) a line, appended as events arrive.
 * It is one more observer of the run, like the metrics; `vilm report RUN` reads it back.
 */
import { appendFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { nameTarget, writeFileAtomic } from '../util/atomic.js';
import type { RunLogRecord, TrainerObserver } from './index.js';

export const RUN_LOG_FILE = 'log.jsonl';

/**
 * Open the run log of `outDir`: a fresh run starts it empty; a resumed run keeps the records up to
 * `resumeStep` (the steps past the checkpoint are redone, so their records would repeat).
 */
export async function openRunLog(outDir: string, resumeStep: number | null): Promise<TrainerObserver> {
  const file = path.join(outDir, RUN_LOG_FILE);
  if (resumeStep === null) rmSync(file, { force: true });
  else await trimRunLog(file, resumeStep);
  const record = (r: RunLogRecord) => {
    // a full disk names the log (a torn last line is dropped when a resumed run trims the log)
    try { appendFileSync(file, JSON.stringify(r) + '\n'); } catch (e) { throw nameTarget(e, file, file); }
  };
  const time = () => new Date().toISOString();
  return {
    onStart: (e) => record({ type: 'start', time: time(), config: e.config, workers: e.workers, backend: e.backend }),
    onStep: (e) => record({ type: 'step', time: time(), ...e }),
    onWorkerResult: (e) => record({ type: 'worker', time: time(), ...e }),
    onValidation: (e) => record({ type: 'val', time: time(), ...e }),
    onTest: (e) => record({ type: 'test', time: time(), step: e.step, loss: e.loss, ppl: e.ppl, bitsPerByte: e.bitsPerByte }),
  };
}

/** Keep only the records up to `step` (atomically: a crash leaves the old or the new log). */
async function trimRunLog(file: string, step: number): Promise<void> {
  if (!existsSync(file)) return;
  const keep = readFileSync(file, 'utf8').split('\n').filter((line) => {
    if (!line.trim()) return false;
    try {
      const r = JSON.parse(line) as { step?: number };
      return r.step === undefined || r.step <= step;
    } catch { return false; }
  });
  await writeFileAtomic(file, keep.map((l) => l + '\n').join(''));
}
