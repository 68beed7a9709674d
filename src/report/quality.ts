import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { placeVal, type RunData, type ValPoint } from './run.js';

/**
 * The numbers of `vilm report`'s comparison and time-to-quality sections, apart from their
 * drawing: per-run summaries, reference levels (a references file) and when each run's validation
 * curve first reaches each level.
 */

/** A compression level to beat, in bits per byte (e.g. `gzip -9` on the same text). */
export interface Reference {
  name: string;
  bitsPerByte: number;
}

/** A references file: `{"references": [{"name", "bitsPerByte"}, …], "text": "…"}`. */
export interface References {
  file: string;
  references: Reference[];
  /** a description of how the levels were measured, shown with them */
  text: string | null;
}

/** Read and check a references file; any problem → one-line UserError naming the file. */
export function loadReferences(file: string): References {
  let raw: string;
  try { raw = readFileSync(file, 'utf8'); } catch (e) {
    throw new UserError(`${file}: cannot read references file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let v: unknown;
  try { v = JSON.parse(raw); } catch (e) {
    throw new UserError(`${file}: invalid JSON: ${oneLine((e as Error).message)}`);
  }
  const shape = 'expected {"references": [{"name": "…", "bitsPerByte": N}, …], "text": "…"}';
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new UserError(`${file}: ${shape}`);
  const o = v as Record<string, unknown>;
  if (!Array.isArray(o.references)) throw new UserError(`${file}: 'references' must be an array; ${shape}`);
  if (o.references.length === 0) throw new UserError(`${file}: 'references' is empty`);
  if (o.text !== undefined && o.text !== null && typeof o.text !== 'string') throw new UserError(`${file}: 'text' must be a string`);
  const refs = o.references.map((r: unknown, i: number): Reference => {
    const e = r as Record<string, unknown> | null;
    if (e === null || typeof e !== 'object' || Array.isArray(e)) throw new UserError(`${file}: references[${i}] must be an object {"name", "bitsPerByte"}`);
    if (typeof e.name !== 'string' || e.name.trim() === '') throw new UserError(`${file}: references[${i}].name must be a non-empty string`);
    if (typeof e.bitsPerByte !== 'number' || !Number.isFinite(e.bitsPerByte) || e.bitsPerByte <= 0) {
      throw new UserError(`${file}: references[${i}].bitsPerByte must be a positive number`);
    }
    return { name: e.name, bitsPerByte: e.bitsPerByte };
  });
  return { file, references: refs, text: typeof o.text === 'string' ? o.text : null };
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/** A run with its label and its validation curve placed on the step / tokens / minutes axes. */
export interface LabelledRun {
  label: string;
  data: RunData;
  /** validation curve (the run's sample), by step */
  curve: ValPoint[];
  /** whole-split checks (normally one: the last point of the curve) */
  whole: ValPoint[];
}

export function labelRun(label: string, data: RunData): LabelledRun {
  return { label, data, curve: placeVal(data, data.val), whole: placeVal(data, data.valWhole) };
}

/** When a run's validation curve first reaches a reference. */
export interface Crossing {
  reference: string;
  referenceBitsPerByte: number;
  run: string;
  /** 'no data': the run logged no validation bits per byte (no tokenizer, or an older log) */
  status: 'reached' | 'not reached' | 'no data';
  /** step of the first validation point at or below the reference */
  step: number | null;
  /** training minutes at the crossing, linearly interpolated between the bracketing points */
  minutes: number | null;
  /** tokens seen at the crossing, linearly interpolated (rounded to a whole token) */
  tokens: number | null;
  /** false when the first point is already at or below (nothing before it to interpolate from) */
  interpolated: boolean;
  /** the first point's own minutes, tokens seen and bits per byte */
  point: { minutes: number; tokens: number; bitsPerByte: number } | null;
}

/**
 * The first validation point at or below `level` bits per byte; minutes and tokens where the
 * straight line between the point before it and it crosses `level`.
 */
export function crossing(curve: ValPoint[], level: number): Pick<Crossing, 'status' | 'step' | 'minutes' | 'tokens' | 'interpolated' | 'point'> {
  const pts = curve.filter((p): p is ValPoint & { bitsPerByte: number } => p.bitsPerByte !== null);
  if (pts.length === 0) return { status: 'no data', step: null, minutes: null, tokens: null, interpolated: false, point: null };
  const i = pts.findIndex((p) => p.bitsPerByte <= level);
  if (i < 0) return { status: 'not reached', step: null, minutes: null, tokens: null, interpolated: false, point: null };
  const b = pts[i];
  const point = { minutes: b.minutes, tokens: b.tokensSeen, bitsPerByte: b.bitsPerByte };
  if (i === 0) return { status: 'reached', step: b.step, minutes: b.minutes, tokens: b.tokensSeen, interpolated: false, point };
  const a = pts[i - 1];
  // a.bitsPerByte > level >= b.bitsPerByte, so the fraction lies in (0, 1]
  const f = (a.bitsPerByte - level) / (a.bitsPerByte - b.bitsPerByte);
  return {
    status: 'reached', step: b.step,
    minutes: a.minutes + f * (b.minutes - a.minutes),
    tokens: Math.round(a.tokensSeen + f * (b.tokensSeen - a.tokensSeen)),
    interpolated: true, point,
  };
}

/** Every reference × every run, references in the file's order, runs in the command line's. */
export function crossings(runs: LabelledRun[], refs: Reference[]): Crossing[] {
  return refs.flatMap((ref) => runs.map((r) => ({
    reference: ref.name, referenceBitsPerByte: ref.bitsPerByte, run: r.label, ...crossing(r.curve, ref.bitsPerByte),
  })));
}

/** One row of the runs table (and of the JSON file). Unknown values are null. */
export interface RunSummary {
  label: string;
  dir: string;
  finished: boolean;
  optimizer: string | null;
  lr: number | null;
  /** the last logged step */
  steps: number;
  /** real tokens trained on */
  tokens: number;
  /** training minutes: final.json's trainSeconds, else the sum of step times */
  trainMinutes: number;
  /** the last point of the validation curve */
  val: { step: number; loss: number; lossSe: number | null; bitsPerByte: number | null; bitsPerByteSe: number | null } | null;
  /** the whole validation split at the end: final.json (valWholeLoss, valWholeBitsPerByte), else the whole-split record */
  valWhole: { loss: number | null; bitsPerByte: number | null } | null;
  /** the test split at the end: final.json, else the last test record */
  test: { loss: number | null; bitsPerByte: number | null; sequences: number | null } | null;
}

const num = (o: Record<string, unknown> | null | undefined, k: string): number | null => {
  const v = o?.[k];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
};

function trainConfig(d: RunData): Record<string, unknown> | null {
  const c = d.start?.config;
  if (c === null || typeof c !== 'object') return null;
  const t = (c as Record<string, unknown>).train;
  return t !== null && typeof t === 'object' && !Array.isArray(t) ? t as Record<string, unknown> : null;
}

export function summarizeRun(r: LabelledRun): RunSummary {
  const d = r.data, f = d.final;
  const train = trainConfig(d);
  const stepSeconds = d.steps.reduce((a, s) => a + s.timing.total, 0);
  const lastVal = d.val.length ? d.val[d.val.length - 1] : null;
  const lastWhole = d.valWhole.length ? d.valWhole[d.valWhole.length - 1] : null;
  const lastTest = d.test.length ? d.test[d.test.length - 1] : null;
  let valWhole: RunSummary['valWhole'] = null;
  if (f && (num(f, 'valWholeLoss') !== null || num(f, 'valWholeBitsPerByte') !== null)) valWhole = { loss: num(f, 'valWholeLoss'), bitsPerByte: num(f, 'valWholeBitsPerByte') };
  else if (lastWhole) valWhole = { loss: lastWhole.loss, bitsPerByte: lastWhole.bitsPerByte };
  let test: RunSummary['test'] = null;
  if (f && num(f, 'testLoss') !== null) test = { loss: num(f, 'testLoss'), bitsPerByte: num(f, 'testBitsPerByte'), sequences: num(f, 'testSequences') };
  else if (lastTest) test = { loss: num(lastTest as unknown as Record<string, unknown>, 'loss'), bitsPerByte: num(lastTest as unknown as Record<string, unknown>, 'bitsPerByte'), sequences: null };
  return {
    label: r.label,
    dir: d.dir,
    finished: f !== null,
    optimizer: typeof train?.optimizer === 'string' ? train.optimizer : null,
    lr: num(train, 'lr'),
    steps: d.steps[d.steps.length - 1].step,
    tokens: d.steps.reduce((a, s) => a + s.tokens, 0),
    trainMinutes: (num(f, 'trainSeconds') ?? stepSeconds) / 60,
    val: lastVal ? { step: lastVal.step, loss: lastVal.loss, lossSe: lastVal.lossSe, bitsPerByte: lastVal.bitsPerByte, bitsPerByteSe: lastVal.bitsPerByteSe } : null,
    valWhole,
    test,
  };
}

/** The machine-readable twin of the report's tables (written as *.json beside the HTML). */
export interface ReportTables {
  format: 'vilm-report/1';
  runs: RunSummary[];
  references: Reference[];
  referencesText: string | null;
  /** how `crossings` were computed, in words */
  crossingMethod: string;
  crossings: Crossing[];
}

export const CROSSING_METHOD = 'first point of the validation curve (the run\'s fixed validation sample) at or below the reference; '
  + 'minutes and tokens are linearly interpolated between that point and the one before it (the point itself when it is the first); '
  + 'step is that first point\'s step';

export function reportTables(runs: LabelledRun[], refs: References | null): ReportTables {
  return {
    format: 'vilm-report/1',
    runs: runs.map(summarizeRun),
    references: refs?.references ?? [],
    referencesText: refs?.text ?? null,
    crossingMethod: CROSSING_METHOD,
    crossings: refs ? crossings(runs, refs.references) : [],
  };
}
