/** The single-process worker of `vilm train`: the model replica runs in the coordinator's thread. */
import type { LanguageModel } from '../../model/api.js';
import type { ResultMsg, TaskMsg } from '../contract.js';
import { computeTask } from '../worker/compute.js';
import type { WorkerLink } from './worker-link.js';

export class InProcessLink implements WorkerLink {
  readonly id = 'inprocess';
  readonly identity = 'inprocess';
  readonly transport = 'inprocess' as const;
  constructor(readonly model: LanguageModel, private readonly weights: () => Float32Array) {}
  async run(task: TaskMsg): Promise<ResultMsg> {
    // let timers/sockets run between tasks
    await new Promise<void>((r) => setImmediate(r));
    return computeTask(this.model, this.weights(), task);
  }
  bytes() { return { sent: 0, received: 0 }; }
  kick(): void { /* never */ }
}
