import { promises as fs, writeFileSync, renameSync, mkdirSync, openSync, fsyncSync, closeSync } from 'node:fs';
import path from 'node:path';

/** A temp name in the same directory as `target`, so rename(2) is atomic on the same filesystem. */
export function tempPathFor(target: string): string {
  const dir = path.dirname(target);
  return path.join(dir, `.${path.basename(target)}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`);
}

/** Write a whole file atomically: temp file, fsync, rename. Readers see the old or the new file, never half. */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await fs.mkdir(path.dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  const fh = await fs.open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, target);
}

export function writeFileAtomicSync(target: string, data: string | Uint8Array): void {
  mkdirSync(path.dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  writeFileSync(tmp, data);
  const fd = openSync(tmp, 'r+');
  try { fsyncSync(fd); } finally { closeSync(fd); }
  renameSync(tmp, target);
}

/**
 * Streamed output that only becomes visible under its final name when `commit()` is called.
 * Used by crawl/clean/prepare so an interrupted run never leaves a file that looks complete.
 */
export class AtomicWriteStream {
  readonly tmp: string;
  private handle: fs.FileHandle | undefined;
  private constructor(readonly target: string) {
    this.tmp = tempPathFor(target);
  }
  static async open(target: string): Promise<AtomicWriteStream> {
    await fs.mkdir(path.dirname(target), { recursive: true });
    const s = new AtomicWriteStream(target);
    s.handle = await fs.open(s.tmp, 'w');
    return s;
  }
  async write(data: string | Uint8Array): Promise<void> {
    if (!this.handle) throw new Error(`write after close: ${this.target}`);
    if (typeof data === 'string') await this.handle.write(data); else await this.handle.write(data);
  }
  async commit(): Promise<void> {
    if (!this.handle) throw new Error(`commit after close: ${this.target}`);
    await this.handle.sync();
    await this.handle.close();
    this.handle = undefined;
    await fs.rename(this.tmp, this.target);
  }
  async abort(): Promise<void> {
    if (this.handle) { await this.handle.close().catch(() => undefined); this.handle = undefined; }
    await fs.rm(this.tmp, { force: true });
  }
}
