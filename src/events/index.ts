/**
 * What a training run reports while it runs: the `TrainerObserver` contract. The training loop
 * (src/train/loop.ts) and the fleet (src/fleet) call observers; Prometheus metrics (src/metrics),
 * the run log (./run-log.ts), the progress bar of `vilm start` are observers.
 *
 * This folder is the neutral ground between the loop, the fleet and the metrics: it imports
 * nothing of theirs, so every arrow points here and none points back.
 *
 * Families of names (transports, reasons, event names) are declared ONCE here as `as const`
 * tables; their types are derived from the tables, so adding a member is one line and every
 * `Record<…>` built over a family fails to compile until it covers the new member.
 */
import { log } from '../util/log.js';

/** How a worker is reached. A new transport is one line here plus its link class in src/fleet. */
export const TRANSPORTS = ['inprocess', 'thread', 'ws'] as const;
export type Transport = (typeof TRANSPORTS)[number];

/**
 * Why a worker's result was refused: 'mismatch' = its token count or emptiness is not what the
 * coordinator computed from the task; 'implausible' = loss or gradient beyond the per-token bounds
 * (src/fleet/coordinator/result-check.ts); 'disagree' = its bytes contradict the majority of
 * recomputations (verification); 'unassigned' = a result for a task never given to that worker.
 */
export const REJECT_REASONS = ['nonfinite', 'shape', 'stale', 'protocol', 'auth', 'mismatch', 'implausible', 'disagree', 'unassigned'] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Why a task went to another worker. */
export const REASSIGN_REASONS = ['died', 'disconnected', 'deadline', 'rejected'] as const;
export type ReassignReason = (typeof REASSIGN_REASONS)[number];

/** A zero count per transport (`Record<Transport, number>` over the one list). */
export function transportCounts(): Record<Transport, number> {
  return Object.fromEntries(TRANSPORTS.map((t) => [t, 0])) as Record<Transport, number>;
}

/** Wall-clock seconds of one optimizer step and its parts. */
export interface StepTiming {
  total: number;
  /** from publishing the task list until the last micro-shard result arrived */
  compute: number;
  /** after the first worker finished its share, waiting for the slowest (stragglers) */
  waitStragglers: number;
  /** tree reduction of results into one gradient */
  reduce: number;
  /** clipping + optimizer step */
  optimizer: number;
  /** publishing the new weights to workers */
  publish: number;
}

export interface StartEvent {
  /** the resolved backend of this process (`auto` resolved) */
  backend: string;
  workers: number;
  /** the run's configuration (model + train), as the run log records it */
  config: unknown;
  /** the step the run starts from: 0 for a fresh run, the checkpoint's step when it continues */
  step: number;
  /** the steps the run is planned to take (train.steps, after --steps) */
  steps: number;
}

export interface StepEvent {
  step: number;
  /** mean next-token loss of this batch */
  loss: number;
  /** non-pad target tokens in the batch */
  tokens: number;
  /** padded positions processed (rows × seqLen) */
  paddedTokens: number;
  bucket: number;
  lr: number;
  gradNorm: number;
  timing: StepTiming;
  workers: number;
}

/** One worker's share of step `step` (sent right after that step's onStep). */
export interface WorkerResultEvent {
  step: number;
  workerId: string;
  transport: Transport;
  microShards: number;
  computeSeconds: number;
  bytesSent: number;
  bytesReceived: number;
}

export interface TrainerObserver {
  /** training begins: the resolved backend of this process, the worker count, the config */
  onStart?(e: StartEvent): void;
  onStep?(e: StepEvent): void;
  onValidation?(e: ValidationEvent): void;
  onTest?(e: { step: number; loss: number; ppl: number; bitsPerByte: number }): void;
  onWorkerResult?(e: WorkerResultEvent): void;
  /** connected workers per transport, after any change */
  onWorkers?(counts: Record<Transport, number>): void;
  onReassigned?(e: { count: number; reason: ReassignReason }): void;
  onRejected?(e: { workerId: string; reason: RejectReason }): void;
  onCheckpoint?(e: { step: number; seconds: number; bytes: number }): void;
}

/**
 * Every event name, once. `satisfies Record<keyof TrainerObserver, true>` makes the compiler
 * reject this table when an event is added to the interface and not here (or the other way).
 */
const EVENT_NAMES = {
  onStart: true, onStep: true, onValidation: true, onTest: true, onWorkerResult: true,
  onWorkers: true, onReassigned: true, onRejected: true, onCheckpoint: true,
} as const satisfies Record<keyof TrainerObserver, true>;
export const TRAINER_EVENTS = Object.keys(EVENT_NAMES) as (keyof TrainerObserver)[];

type EventArg<K extends keyof TrainerObserver> = Parameters<NonNullable<TrainerObserver[K]>>[0];

/**
 * Send one event to every observer. An observer that throws is logged and skipped: a broken
 * metrics or log sink never stops training, nor the other observers.
 */
export function broadcast<K extends keyof TrainerObserver>(observers: readonly TrainerObserver[], event: K, arg: EventArg<K>): void {
  for (const o of observers) {
    const f = o[event] as ((e: EventArg<K>) => void) | undefined;
    if (!f) continue;
    try { f.call(o, arg); } catch (e) { log.warn(`observer ${event} failed: ${(e as Error).message}`); }
  }
}

/** One observer that forwards every event (all of TRAINER_EVENTS) to each of `observers`. */
export function combineObservers(...observers: TrainerObserver[]): TrainerObserver {
  const out: TrainerObserver = {};
  for (const k of TRAINER_EVENTS) {
    if (!observers.some((o) => o[k] !== undefined)) continue;
    (out as Record<string, (e: never) => void>)[k] = (e: never) => broadcast(observers, k, e);
  }
  return out;
}

/** One line of `RUN/log.jsonl` (written by ./run-log.ts, read by `vilm report`). */
/**
 * A validation estimate: the run's fixed random sample of validation sequences (or the whole split
 * when `whole`), with standard errors (src/train/validation.ts). Bits per byte are NaN → null in
 * the log when the run has no tokenizer to count bytes.
 */
export interface ValidationEvent {
  step: number;
  loss: number;
  lossSe: number;
  bitsPerByte: number | null;
  bitsPerByteSe: number | null;
  sequences: number;
  tokens: number;
  /** seconds of training (step time, evaluation excluded) up to this step */
  trainSeconds: number;
  /** the whole split, not the sample (the check of the last point) */
  whole: boolean;
}

export type RunLogRecord =
  | ({ type: 'step'; time: string } & StepEvent)
  | ({ type: 'val'; time: string } & ValidationEvent)
  | { type: 'test'; time: string; step: number; loss: number; ppl: number; bitsPerByte: number }
  | ({ type: 'worker'; time: string } & WorkerResultEvent)
  | { type: 'start'; time: string; config: unknown; workers: number; backend: string };
