/**
 * The progress bar of a training run (`vilm train`, `vilm coordinator`, `vilm start`): a
 * TrainerObserver that shows the steps done of the planned steps, from the step the run starts at
 * (a resumed run's bar starts at its checkpoint's step, and its rate and ETA count only this
 * run's steps), with the recent steps/s, elapsed time, ETA, the latest loss, validation loss and
 * tokens/s. On a terminal the run's log lines print above the bar; elsewhere plain lines every
 * ~10 s (JSON records with --log-format json) — see src/util/progress.ts.
 *
 * The final line: `train: done N/N steps in …` after the last planned step, or, from `close()`,
 * `train: stopped at K/N steps after …` when the run ended early (a signal, --stop-at, no workers,
 * an error after training began). A run that never took a step prints no progress line at all.
 */
import type { StepEvent, TrainerObserver } from '../events/index.js';
import { progress, type Progress, type ProgressOptions } from '../util/progress.js';

export interface TrainProgress {
  readonly observer: TrainerObserver;
  /** end the bar (idempotent): the `stopped at` line when the run ended before its planned steps */
  close(): void;
}

/** tokens/s over the last steps: step tokens over step seconds (the steps' own timing, no clock) */
const TOKEN_RATE_STEPS = 10;

export function trainProgress(label = 'train', opts: ProgressOptions = {}): TrainProgress {
  let bar: Progress | null = null;
  let planned = 0;
  let ended = false;
  let stepped = false;
  const recent: { tokens: number; seconds: number }[] = [];

  const open = (from: number, steps: number): Progress => {
    planned = steps;
    bar = progress(label, steps, 'steps', { ...opts, start: from });
    return bar;
  };

  const onStep = (e: StepEvent): void => {
    if (ended) return;
    // onStart comes first; without it the bar starts at the step before this one
    const b = bar ?? open(e.step - 1, 0);
    stepped = true;
    recent.push({ tokens: e.tokens, seconds: e.timing.total });
    if (recent.length > TOKEN_RATE_STEPS) recent.shift();
    const seconds = recent.reduce((a, r) => a + r.seconds, 0);
    const tokensPerS = seconds > 0 ? Math.round(recent.reduce((a, r) => a + r.tokens, 0) / seconds) : 0;
    b.update(e.step, { loss: e.loss, 'tok/s': tokensPerS });
    if (planned > 0 && e.step >= planned) {
      ended = true;
      // after the loop's own `step` log line for this step, which follows this event in the same tick
      queueMicrotask(() => b.done(`loss ${e.loss.toFixed(3)}`));
    }
  };

  return {
    observer: {
      onStart: (e) => { if (!bar && !ended) open(e.step, e.steps); },
      onStep,
      onValidation: (e) => {
        if (!ended && bar && !e.whole) bar.update(e.step, { val: e.loss });
      },
    },
    close() {
      if (ended) return;
      ended = true;
      if (stepped) bar?.stopped(); else bar?.abort();
    },
  };
}
