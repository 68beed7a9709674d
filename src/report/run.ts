import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { RunLogRecord, StepEvent, Transport } from '../events/index.js';
import { UserError } from '../util/errors.js';

/**
 * Reading a run folder for `vilm report`: RUN/log.jsonl (RunLogRecord lines, src/events/index.ts;
 * written by src/events/run-log.ts) and RUN/final.json (src/train/loop.ts FinalReport), checked and
 * normalised. Older logs are accepted: a validation record with only {step, loss, tokens} leaves the
 * fields it lacks unknown (null), never an error.
 */
export type StepRecord = Extract<RunLogRecord, { type: 'step' }>;
export type ValRecord = Extract<RunLogRecord, { type: 'val' }>;
export type TestRecord = Extract<RunLogRecord, { type: 'test' }>;
export type WorkerRecord = Extract<RunLogRecord, { type: 'worker' }>;
export type StartRecord = Extract<RunLogRecord, { type: 'start' }>;

/**
 * A validation record, normalised: the fields an older log lacks are null (unknown). `tokens` is
 * the count of validation tokens scored, not the tokens trained on (see `ValPoint` in `valCurve`).
 */
export interface ValEstimate {
  step: number;
  loss: number;
  lossSe: number | null;
  bitsPerByte: number | null;
  bitsPerByteSe: number | null;
  sequences: number | null;
  tokens: number | null;
  /** seconds of training steps up to this step, as the run logged it */
  trainSeconds: number | null;
  /** the whole validation split, not the run's sample */
  whole: boolean;
}

export interface RunData {
  dir: string;
  steps: StepRecord[];
  /** validation estimates on the run's sample (the validation curve), by step */
  val: ValEstimate[];
  /** checks on the whole validation split (normally one: the last point of the curve) */
  valWhole: ValEstimate[];
  test: TestRecord[];
  workers: WorkerRecord[];
  /** the last start record (a resumed run has several) */
  start: StartRecord | null;
  /** final.json, or null while the run is unfinished */
  final: Record<string, unknown> | null;
  /** a trailing partial line was skipped (the run is still writing) */
  truncatedTail: boolean;
  /** the latest `time` of the log's records (the report names it instead of the time it was made) */
  lastTime: string | null;
}

export interface WorkerSummary {
  workerId: string;
  transport: Transport;
  microShards: number;
  computeSeconds: number;
  /** compute seconds / wall seconds of the steps it took part in */
  utilisation: number;
  bytesSent: number;
  bytesReceived: number;
}

const isNum = (v: unknown): v is number => typeof v === 'number';
const numOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function valEstimate(r: Record<string, unknown>): ValEstimate {
  return {
    step: r.step as number, loss: r.loss as number,
    lossSe: numOrNull(r.lossSe), bitsPerByte: numOrNull(r.bitsPerByte), bitsPerByteSe: numOrNull(r.bitsPerByteSe),
    sequences: numOrNull(r.sequences), tokens: numOrNull(r.tokens), trainSeconds: numOrNull(r.trainSeconds),
    whole: r.whole === true,
  };
}

function checkRecord(file: string, line: number, o: Record<string, unknown>): RunLogRecord {
  const need = (fields: string[]) => {
    for (const f of fields) if (!isNum(o[f])) throw new UserError(`${file}:${line}: ${String(o.type)} record needs a number '${f}'`);
  };
  switch (o.type) {
    case 'step': {
      need(['step', 'loss', 'tokens', 'paddedTokens', 'lr', 'gradNorm', 'workers']);
      const t = o.timing as Record<string, unknown> | undefined;
      for (const f of ['total', 'compute', 'waitStragglers', 'reduce', 'optimizer', 'publish']) {
        if (!t || !isNum(t[f])) throw new UserError(`${file}:${line}: step record needs a number 'timing.${f}'`);
      }
      break;
    }
    case 'val': need(['step', 'loss']); break;
    case 'test': need(['step', 'loss', 'ppl']); break;
    case 'worker':
      need(['step', 'microShards', 'computeSeconds', 'bytesSent', 'bytesReceived']);
      if (typeof o.workerId !== 'string') throw new UserError(`${file}:${line}: worker record needs a string 'workerId'`);
      break;
    case 'start': break;
    default: throw new UserError(`${file}:${line}: unknown record type ${JSON.stringify(o.type)}`);
  }
  return o as unknown as RunLogRecord;
}

/** Read and check RUN/log.jsonl and RUN/final.json. Bad input → UserError naming file and line. */
export function loadRun(dir: string): RunData {
  let st;
  try { st = statSync(dir); } catch { throw new UserError(`${dir}: no such run folder`); }
  if (!st.isDirectory()) throw new UserError(`${dir}: not a folder (expected a run folder with log.jsonl)`);
  const logFile = path.join(dir, 'log.jsonl');
  let text: string;
  try { text = readFileSync(logFile, 'utf8'); } catch (e) {
    throw new UserError(`${logFile}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)}); is ${dir} a run folder?`);
  }
  const data: RunData = { dir, steps: [], val: [], valWhole: [], test: [], workers: [], start: null, final: null, truncatedTail: false, lastTime: null };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (raw.trim() === '') continue;
    let v: unknown;
    try { v = JSON.parse(raw); } catch (e) {
      // the run appends whole lines; a last line without its newline is a write in progress
      if (i === lines.length - 1) { data.truncatedTail = true; continue; }
      throw new UserError(`${logFile}:${i + 1}: invalid JSON: ${(e as Error).message}`);
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new UserError(`${logFile}:${i + 1}: expected a JSON object`);
    const rec = checkRecord(logFile, i + 1, v as Record<string, unknown>);
    if (typeof rec.time === 'string' && (data.lastTime === null || rec.time > data.lastTime)) data.lastTime = rec.time;
    switch (rec.type) {
      case 'step': data.steps.push(rec); break;
      case 'val': (rec.whole === true ? data.valWhole : data.val).push(valEstimate(v as Record<string, unknown>)); break;
      case 'test': data.test.push(rec); break;
      case 'worker': data.workers.push(rec); break;
      case 'start': data.start = rec; break;
    }
  }
  if (data.steps.length === 0) throw new UserError(`${logFile}: no step records yet (nothing to report)`);
  data.steps.sort((a, b) => a.step - b.step);
  data.val.sort((a, b) => a.step - b.step);
  data.valWhole.sort((a, b) => a.step - b.step);

  const finalFile = path.join(dir, 'final.json');
  let finalText: string | null = null;
  try { finalText = readFileSync(finalFile, 'utf8'); } catch { /* unfinished run: report without it */ }
  if (finalText !== null) {
    let f: unknown;
    try { f = JSON.parse(finalText); } catch (e) { throw new UserError(`${finalFile}: invalid JSON: ${(e as Error).message}`); }
    if (f === null || typeof f !== 'object' || Array.isArray(f)) throw new UserError(`${finalFile}: expected a JSON object`);
    data.final = f as Record<string, unknown>;
  }
  return data;
}

/** Per-worker totals; utilisation = compute seconds / wall seconds of the steps it worked in. */
export function summarizeWorkers(d: RunData): WorkerSummary[] {
  const stepTime = new Map(d.steps.map((s) => [s.step, s.timing.total]));
  const by = new Map<string, WorkerSummary & { steps: Set<number> }>();
  for (const w of d.workers) {
    let s = by.get(w.workerId);
    if (!s) {
      s = { workerId: w.workerId, transport: w.transport, microShards: 0, computeSeconds: 0, utilisation: 0, bytesSent: 0, bytesReceived: 0, steps: new Set() };
      by.set(w.workerId, s);
    }
    s.microShards += w.microShards;
    s.computeSeconds += w.computeSeconds;
    s.bytesSent += w.bytesSent;
    s.bytesReceived += w.bytesReceived;
    s.steps.add(w.step);
  }
  return [...by.values()].map(({ steps, ...s }) => {
    let wall = 0;
    for (const st of steps) wall += stepTime.get(st) ?? 0;
    return { ...s, utilisation: wall > 0 ? s.computeSeconds / wall : 0 };
  }).sort((a, b) => a.workerId.localeCompare(b.workerId, 'en', { numeric: true }));
}

/** The parts of a step's time that add up to its total (compute's own part excludes stragglers). */
export function stepParts(t: StepEvent['timing']): Record<string, number> {
  const compute = Math.max(0, t.compute - t.waitStragglers);
  const known = compute + t.waitStragglers + t.reduce + t.optimizer + t.publish;
  return {
    compute, 'wait for stragglers': t.waitStragglers, reduce: t.reduce, optimizer: t.optimizer, publish: t.publish,
    other: Math.max(0, t.total - known),
  };
}


/** A point of the validation curve with where it lies in training. */
export interface ValPoint extends ValEstimate {
  /** real tokens trained on up to this step (sum of the step records' `tokens`) */
  tokensSeen: number;
  /** training minutes up to this step: the logged `trainSeconds`, else the sum of step times */
  minutes: number;
  /** `minutes` came from the step times (an older log without `trainSeconds`) */
  minutesDerived: boolean;
}

/**
 * The validation estimates placed on the three x axes (step, tokens seen, training minutes).
 * Tokens seen and (for older logs) minutes are sums over the step records up to the point's step;
 * `trainSeconds` is the same sum as the run counts it (step time, evaluation excluded).
 */
export function placeVal(d: RunData, points: ValEstimate[]): ValPoint[] {
  const cumTokens: number[] = [], cumSeconds: number[] = [];
  let t = 0, sec = 0;
  for (const s of d.steps) { t += s.tokens; sec += s.timing.total; cumTokens.push(t); cumSeconds.push(sec); }
  const upTo = (step: number): number => {
    // index of the last step record with step <= `step`, or -1
    let lo = 0, hi = d.steps.length - 1, k = -1;
    while (lo <= hi) {
      const m = (lo + hi) >> 1;
      if (d.steps[m].step <= step) { k = m; lo = m + 1; } else hi = m - 1;
    }
    return k;
  };
  return points.map((p) => {
    const k = upTo(p.step);
    const derived = k >= 0 ? cumSeconds[k] : 0;
    return {
      ...p,
      tokensSeen: k >= 0 ? cumTokens[k] : 0,
      minutes: (p.trainSeconds ?? derived) / 60,
      minutesDerived: p.trainSeconds === null,
    };
  });
}
