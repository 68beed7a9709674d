import { promises as fs } from 'node:fs';
import { JsonlWriter } from '../jsonl.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { UserError } from '../../util/errors.js';
import { log } from '../../util/log.js';
import type { CorpusDoc } from '../types.js';

/** One output line of every crawler. */
export type CrawlDoc = Required<Pick<CorpusDoc, 'id' | 'title' | 'text' | 'source' | 'url'>>;

/**
 * Resumable, atomic crawl output.
 *
 * Lines go to `OUT.part` (a JsonlWriter with a fixed temp name); every so often the crawler's cursor
 * is saved with the part file's byte length to `OUT.part.state.json` (atomically). `commit()`
 * renames the part file to OUT and deletes the state, so OUT only ever appears complete.
 * On `--resume`, the part file is cut back to the saved length (lines written after the last
 * checkpoint are dropped) and the crawler continues from the saved cursor, so the final file is
 * byte-identical to an uninterrupted run.
 */
export interface CrawlState<C> {
  version: 1;
  /** what was being crawled (source, options); a resume with other inputs is refused */
  fingerprint: string;
  bytes: number;
  count: number;
  cursor: C;
}

export class CrawlOutput<C> {
  private lastSave = 0;
  private constructor(
    readonly out: string,
    private readonly writer: JsonlWriter,
    private readonly fingerprint: string,
    private readonly saveEveryMs: number,
  ) {}

  static partPath(out: string): string { return `${out}.part`; }
  static statePath(out: string): string { return `${out}.part.state.json`; }

  /**
   * Open OUT for writing. With `resume`, continue a previous run's part file and return its cursor
   * (undefined when there is nothing to resume: a fresh start).
   */
  static async open<C>(out: string, opts: { resume: boolean; fingerprint: string; saveEveryMs?: number }): Promise<{ output: CrawlOutput<C>; cursor: C | undefined; resumedCount: number }> {
    const part = CrawlOutput.partPath(out);
    const statePath = CrawlOutput.statePath(out);
    const state = await readState<C>(statePath);
    const every = opts.saveEveryMs ?? 1000;
    if (opts.resume && state) {
      if (state.fingerprint !== opts.fingerprint) {
        throw new UserError(`${statePath}: the partial crawl was made from ${state.fingerprint}, not ${opts.fingerprint}; delete it or rerun with the same inputs`);
      }
      const size = await fs.stat(part).then((s) => s.size, () => -1);
      if (size < state.bytes) throw new UserError(`${part}: shorter (${size} bytes) than its state file says (${state.bytes}); delete both and start again`);
      const writer = await JsonlWriter.open(out, { tmp: part, resumeAt: state.bytes, count: state.count });
      log.info(`resuming ${out}: ${state.count} docs already written`);
      return { output: new CrawlOutput<C>(out, writer, opts.fingerprint, every), cursor: state.cursor, resumedCount: state.count };
    }
    if (opts.resume) log.info(`nothing to resume for ${out}: starting from the beginning`);
    else if (state) log.warn(`discarding the partial crawl in ${part} (pass --resume to continue it)`);
    const writer = await JsonlWriter.open(out, { tmp: part });
    const output = new CrawlOutput<C>(out, writer, opts.fingerprint, every);
    await fs.rm(statePath, { force: true });
    return { output, cursor: undefined, resumedCount: 0 };
  }

  get count(): number { return this.writer.count; }

  write(doc: CrawlDoc): Promise<void> {
    return this.writer.write({ id: doc.id, title: doc.title, text: doc.text, source: doc.source, url: doc.url });
  }

  /**
   * Record that everything written so far corresponds to `cursor`. Saved at most every
   * `saveEveryMs` unless `force`; a lagging state is still consistent (resume redoes a little).
   */
  async checkpoint(cursor: C, force = false): Promise<void> {
    const now = Date.now();
    if (!force && now - this.lastSave < this.saveEveryMs) return;
    this.lastSave = now;
    const state: CrawlState<C> = { version: 1, fingerprint: this.fingerprint, bytes: this.writer.bytes, count: this.writer.count, cursor };
    await writeFileAtomic(CrawlOutput.statePath(this.out), JSON.stringify(state) + '\n');
  }

  /** Publish OUT (rename the part file) and drop the state. */
  async commit(): Promise<void> {
    await this.writer.commit();
    await fs.rm(CrawlOutput.statePath(this.out), { force: true });
  }

  /** Stop after a failure or Ctrl-C: save `cursor` if given, keep the part file for `--resume`. */
  async suspend(cursor: C | undefined): Promise<void> {
    if (cursor !== undefined) await this.checkpoint(cursor, true);
    await this.writer.close();
  }

  /** Stop and delete everything (a failure that a resume cannot fix, e.g. no articles at all). */
  async discard(): Promise<void> {
    await this.writer.abort();
    await fs.rm(CrawlOutput.statePath(this.out), { force: true });
  }
}

async function readState<C>(file: string): Promise<CrawlState<C> | undefined> {
  let text: string;
  try { text = await fs.readFile(file, 'utf8'); } catch { return undefined; }
  try {
    const s = JSON.parse(text) as CrawlState<C>;
    if (s.version !== 1 || typeof s.bytes !== 'number' || typeof s.count !== 'number') throw new Error('bad fields');
    return s;
  } catch (e) {
    throw new UserError(`${file}: unreadable crawl state (${(e as Error).message}); delete it to start again`);
  }
}
