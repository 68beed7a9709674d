import { promises as fs, writeFileSync, renameSync, mkdirSync, openSync, fsyncSync, closeSync, rmSync } from 'node:fs';
import path from 'node:path';

/**
 * A write error names the file the user asked for, not our temp name: set `path` of a Node fs
 * error on `tmp` to `target` (the CLI prints `target: cannot write: no space left on device`).
 */
export function nameTarget(e: unknown, tmp: string, target: string): unknown {
  const err = e as NodeJS.ErrnoException;
  if (err instanceof Error && (err.path === tmp || err.path === undefined)) err.path = target;
  return e;
}

/** A temp name in the same directory as `target`, so rename(2) is atomic on the same filesystem. */
export function tempPathFor(target: string): string {
  const dir = path.dirname(target);
  return path.join(dir, `.${path.basename(target)}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`);
}

/** Write a whole file atomically: temp file, fsync, rename. Readers see the old or the new file, never half. */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await fs.mkdir(path.dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  const fh = await fs.open(tmp, 'w').catch((e: unknown) => { throw nameTarget(e, tmp, target); });
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, target);
  } catch (e) {
    // a full disk or a lost permission: no half-written temp left behind, the old file untouched
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw nameTarget(e, tmp, target);
  }
}

export function writeFileAtomicSync(target: string, data: string | Uint8Array): void {
  mkdirSync(path.dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  try {
    writeFileSync(tmp, data);
    const fd = openSync(tmp, 'r+');
    try { fsyncSync(fd); } finally { closeSync(fd); }
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw nameTarget(e, tmp, target);
  }
}

/**
 * Streamed output that only becomes visible under its final name when `commit()` is called.
 * Used by crawl/clean/prepare so an interrupted run never leaves a file that looks complete.
 */
export class AtomicWriteStream {
  readonly tmp: string;
  private handle: fs.FileHandle | undefined;
  private constructor(readonly target: string, tmp?: string) {
    this.tmp = tmp ?? tempPathFor(target);
  }
  /** Bytes in the temp file so far (including a resumed prefix). */
  bytes = 0;
  /**
   * `opts.tmp` names the temp file (default: a unique hidden name); `opts.resumeAt` keeps the first
   * `resumeAt` bytes of an existing `opts.tmp` and appends after them (resumable crawls).
   */
  static async open(target: string, opts: { tmp?: string; resumeAt?: number } = {}): Promise<AtomicWriteStream> {
    await fs.mkdir(path.dirname(target), { recursive: true });
    const s = new AtomicWriteStream(target, opts.tmp);
    try {
      if (opts.resumeAt !== undefined) {
        await fs.truncate(s.tmp, opts.resumeAt);
        s.handle = await fs.open(s.tmp, 'a');
        s.bytes = opts.resumeAt;
      } else {
        s.handle = await fs.open(s.tmp, 'w');
      }
    } catch (e) {
      throw nameTarget(e, s.tmp, target);
    }
    return s;
  }
  async write(data: string | Uint8Array): Promise<void> {
    if (!this.handle) throw new Error(`write after close: ${this.target}`);
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    try {
      await this.handle.write(buf);
    } catch (e) {
      throw nameTarget(e, this.tmp, this.target);
    }
    this.bytes += buf.length;
  }
  /** Close without committing and keep the temp file (a resumable crawl continues it later). */
  async close(): Promise<void> {
    if (this.handle) { await this.handle.close().catch(() => undefined); this.handle = undefined; }
  }
  async commit(): Promise<void> {
    if (!this.handle) throw new Error(`commit after close: ${this.target}`);
    try {
      await this.handle.sync();
      await this.handle.close();
      this.handle = undefined;
      await fs.rename(this.tmp, this.target);
    } catch (e) {
      throw nameTarget(e, this.tmp, this.target);
    }
  }
  async abort(): Promise<void> {
    if (this.handle) { await this.handle.close().catch(() => undefined); this.handle = undefined; }
    await fs.rm(this.tmp, { force: true });
  }
}
