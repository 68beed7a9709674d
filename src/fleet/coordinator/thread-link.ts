/**
 * The coordinator's local worker threads as scheduler slots. More tasks at once than cores only
 * time-slice the cores (and thrash their caches): N threads hold N replicas, but at most `cores`
 * of them compute at the same time — one slot per core, piscina picks the thread.
 */
import { availableParallelism } from 'node:os';
import { log } from '../../util/log.js';
import type { ResultMsg, TaskMsg } from '../contract.js';
import type { ThreadPool } from '../thread-pool.js';
import { LinkError, type WorkerLink } from './worker-link.js';

/** One slot per core (at most one per thread) over the pool. */
export function threadLinks(pool: ThreadPool): WorkerLink[] {
  const slots = Math.min(pool.size, Math.max(1, availableParallelism()));
  if (slots < pool.size) log.info(`${pool.size} worker threads on ${slots} cores: at most ${slots} tasks run at once`);
  return Array.from({ length: slots }, (_, i) => new ThreadLink(`thread-${i}`, pool));
}

/**
 * One slot of the pool. With as many slots as threads (or fewer) and one task per slot at a time,
 * every running task has a thread of its own.
 */
class ThreadLink implements WorkerLink {
  readonly transport = 'thread' as const;
  constructor(readonly id: string, private readonly pool: ThreadPool) {}
  get identity(): string { return this.id; }
  async run(task: TaskMsg): Promise<ResultMsg> {
    let reply;
    try {
      reply = await this.pool.run(task);
    } catch (e) {
      throw new LinkError('died', `thread failed: ${(e as Error).message}`);
    }
    if (reply.stale) throw new LinkError('stale', `thread saw weights version ${reply.version}, task needs ${task.version}`, 'stale');
    return reply.result;
  }
  bytes() { return { sent: 0, received: 0 }; }
  kick(): void { /* threads are not kicked; a crash is handled by piscina */ }
}
