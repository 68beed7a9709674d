/**
 * What the trainer reports while it runs. The training loop / coordinator (src/dist, src/train)
 * calls a `TrainerObserver`; Prometheus metrics (src/metrics) and the run log are observers.
 *
 * The run log `RUN/log.jsonl` holds one `RunLogRecord` a line; `vilm report RUN` reads it.
 */
export type Transport = 'inprocess' | 'thread' | 'ws';

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

export interface WorkerResultEvent {
  workerId: string;
  transport: Transport;
  microShards: number;
  computeSeconds: number;
  bytesSent: number;
  bytesReceived: number;
}

export type RejectReason = 'nonfinite' | 'shape' | 'stale' | 'protocol' | 'auth';
export type ReassignReason = 'died' | 'disconnected' | 'deadline' | 'rejected';

export interface TrainerObserver {
  /** training begins: the resolved backend of this process (`auto` resolved) and the worker count */
  onStart?(e: { backend: string; workers: number }): void;
  onStep?(e: StepEvent): void;
  onValidation?(e: { step: number; loss: number; tokens: number }): void;
  onTest?(e: { step: number; loss: number; ppl: number; bitsPerByte: number }): void;
  onWorkerResult?(e: WorkerResultEvent): void;
  /** connected workers per transport, after any change */
  onWorkers?(counts: Record<Transport, number>): void;
  onReassigned?(e: { count: number; reason: ReassignReason }): void;
  onRejected?(e: { workerId: string; reason: RejectReason }): void;
  onCheckpoint?(e: { step: number; seconds: number; bytes: number }): void;
}

export type RunLogRecord =
  | ({ type: 'step'; time: string } & StepEvent)
  | { type: 'val'; time: string; step: number; loss: number; tokens: number }
  | { type: 'test'; time: string; step: number; loss: number; ppl: number; bitsPerByte: number }
  | ({ type: 'worker'; time: string; step: number } & WorkerResultEvent)
  | { type: 'start'; time: string; config: unknown; workers: number; backend: string };
