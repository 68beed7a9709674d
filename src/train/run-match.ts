/**
 * Does the checkpoint in OUT belong to the run being asked for? One command both starts and
 * restarts a run (a Kubernetes Job, a systemd unit, a shell loop re-run the same command): when
 * OUT/checkpoint.vilm exists and matches, the run continues from it; when it does not match, the
 * run stops with one line naming the field, rather than silently training something else.
 *
 * Matching: every model field; every train field except the ones that only change what is
 * reported or how often (eval_every, eval_sequences, checkpoint_every, log_every), and `steps`,
 * which may be extended (the cosine schedule is then stretched from the checkpoint on: a warning);
 * the prepared data (sha256 of its manifest.json, recorded in the checkpoint) and the tokenizer.
 */
import type { RunConfig } from '../config/index.js';
import { UserError } from '../util/errors.js';
import { log } from '../util/log.js';
import type { Checkpoint } from './checkpoint.js';

/** Train fields that may differ on resume without changing the bytes of the weights. */
const REPORTING_FIELDS: ReadonlySet<string> = new Set(['eval_every', 'eval_sequences', 'checkpoint_every', 'log_every']);

export interface RunIdentity {
  /** sha256 of DATA/manifest.json */
  dataManifestSha256: string;
}

/** Throws a one-line UserError naming the first field in which `ck` differs from the requested run. */
export function checkResumeMatches(where: string, ck: Checkpoint, want: RunConfig, identity: RunIdentity): void {
  const hint = '(pass --fresh to start over, or choose another --out)';
  for (const [k, v] of Object.entries(want.model)) {
    const had = (ck.config.model as unknown as Record<string, unknown>)[k];
    if (had !== v) throw new UserError(`${where}: model.${k} is ${JSON.stringify(had)} in the checkpoint, the run asks for ${JSON.stringify(v)} ${hint}`);
  }
  for (const [k, v] of Object.entries(want.train)) {
    if (REPORTING_FIELDS.has(k)) continue;
    const had = (ck.config.train as unknown as Record<string, unknown>)[k];
    if (k === 'steps') {
      if (typeof had === 'number' && typeof v === 'number' && v < ck.step) {
        throw new UserError(`${where}: the checkpoint is at step ${ck.step}, past the requested train.steps ${v} ${hint}`);
      }
      continue;
    }
    if (had !== v) throw new UserError(`${where}: train.${k} is ${JSON.stringify(had)} in the checkpoint, the run asks for ${JSON.stringify(v)} ${hint}`);
  }
  const data = ck.meta.dataManifestSha256;
  if (typeof data === 'string' && data !== identity.dataManifestSha256) {
    throw new UserError(`${where}: the checkpoint was trained on another data set (manifest sha256 ${data.slice(0, 12)}…, --data has ${identity.dataManifestSha256.slice(0, 12)}…) ${hint}`);
  }
  if (typeof data !== 'string') log.warn(`${where}: written before checkpoints recorded their data set; not checked`);
}
