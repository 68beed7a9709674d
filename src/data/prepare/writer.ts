import { openSync, writeSync, closeSync, fsyncSync, readSync, mkdirSync, rmSync, renameSync, existsSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import path from 'node:path';
import { UserError } from '../../util/errors.js';
import type { SplitName } from '../types.js';

const LITTLE_ENDIAN_HOST = endianness() === 'LE';
const CHUNK_TOKENS = 1 << 16;

/**
 * Sequences of one (split, bucket), padded to the bucket length and appended to a part file in
 * 128 KiB chunks (memory stays bounded whatever the corpus size). Uint16 little-endian.
 */
class PartWriter {
  private readonly fd: number;
  private readonly buf = new Uint16Array(CHUNK_TOKENS);
  private used = 0;
  count = 0;
  constructor(readonly file: string, readonly bucket: number) {
    this.fd = openSync(file, 'w');
  }
  /** seq: unpadded ids (length ≤ bucket); the rest of the row is `<pad>` = 0 */
  write(seq: readonly number[]): void {
    if (this.used + this.bucket > this.buf.length) this.flush();
    const row = this.buf.subarray(this.used, this.used + this.bucket);
    for (let i = 0; i < seq.length; i++) row[i] = seq[i];
    row.fill(0, seq.length);
    this.used += this.bucket;
    this.count++;
  }
  flush(): void {
    if (this.used === 0) return;
    const bytes = Buffer.from(this.buf.buffer, 0, this.used * 2);
    const out = LITTLE_ENDIAN_HOST ? bytes : Buffer.from(bytes).swap16();
    let off = 0;
    while (off < out.length) off += writeSync(this.fd, out, off, out.length - off);
    this.used = 0;
  }
  close(): void { this.flush(); closeSync(this.fd); }
}

/**
 * The output directory of `vilm data prepare`, built in a hidden temp directory next to DIR and
 * renamed into place by `commit()`, so an interrupted run never leaves a directory that looks
 * complete (the manifest is written last, inside the temp dir).
 * Layout: `<split>.bin` = the split's sequences grouped by bucket, buckets ascending, each row
 * `bucket` Uint16 LE tokens — a bucket's rows are one contiguous slice.
 */
export class DatasetWriter {
  readonly tmpDir: string;
  private readonly parts = new Map<string, PartWriter>();
  private constructor(readonly outDir: string, readonly buckets: readonly number[]) {
    this.tmpDir = path.join(path.dirname(outDir), `.${path.basename(outDir)}.tmp-${process.pid}-${Date.now().toString(36)}`);
  }

  static open(outDir: string, buckets: readonly number[]): DatasetWriter {
    if (existsSync(outDir) && !statSync(outDir).isDirectory()) throw new UserError(`--out ${outDir}: exists and is not a directory`);
    const w = new DatasetWriter(outDir, buckets);
    try {
      mkdirSync(path.join(w.tmpDir, 'parts'), { recursive: true });
    } catch (e) {
      throw new UserError(`--out ${outDir}: cannot create (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    return w;
  }

  static fileName(split: SplitName): string { return `${split}.bin`; }

  /** The held-out documents of a split as JSONL (`vilm eval --in`, compressor references). */
  static textFileName(split: SplitName): string { return `${split}.jsonl`; }

  private readonly textFds = new Map<SplitName, number>();
  /** Append one document line to DIR/<split>.jsonl (streamed: memory stays bounded). */
  writeText(split: SplitName, line: string): void {
    let fd = this.textFds.get(split);
    if (fd === undefined) {
      fd = openSync(path.join(this.tmpDir, DatasetWriter.textFileName(split)), 'w');
      this.textFds.set(split, fd);
    }
    writeSync(fd, line + '\n');
  }
  /** Make sure DIR/<split>.jsonl exists (empty when the split got no document). */
  ensureText(splits: readonly SplitName[]): void {
    for (const s of splits) {
      if (!this.textFds.has(s)) this.textFds.set(s, openSync(path.join(this.tmpDir, DatasetWriter.textFileName(s)), 'w'));
    }
  }

  write(split: SplitName, bucket: number, seq: readonly number[]): void {
    const key = `${split}-${bucket}`;
    let p = this.parts.get(key);
    if (!p) { p = new PartWriter(path.join(this.tmpDir, 'parts', `${key}.bin`), bucket); this.parts.set(key, p); }
    p.write(seq);
  }

  /** Concatenate the parts into `<split>.bin` (buckets ascending), write the extra files, rename into place. */
  commit(splits: readonly SplitName[], extraFiles: Record<string, string>): void {
    for (const p of this.parts.values()) p.close();
    for (const fd of this.textFds.values()) { fsyncSync(fd); closeSync(fd); }
    this.textFds.clear();
    const copyBuf = Buffer.allocUnsafe(4 << 20);
    for (const split of splits) {
      const fd = openSync(path.join(this.tmpDir, DatasetWriter.fileName(split)), 'w');
      for (const b of this.buckets) {
        const part = this.parts.get(`${split}-${b}`);
        if (!part) continue;
        const src = openSync(part.file, 'r');
        let n: number;
        while ((n = readSync(src, copyBuf, 0, copyBuf.length, null)) > 0) {
          let off = 0;
          while (off < n) off += writeSync(fd, copyBuf, off, n - off);
        }
        closeSync(src);
      }
      fsyncSync(fd);
      closeSync(fd);
    }
    rmSync(path.join(this.tmpDir, 'parts'), { recursive: true, force: true });
    for (const [name, text] of Object.entries(extraFiles)) {
      const fd = openSync(path.join(this.tmpDir, name), 'w');
      writeSync(fd, text);
      fsyncSync(fd);
      closeSync(fd);
    }
    // Swap into place. rename(2) cannot replace a non-empty directory, so an existing DIR is moved
    // aside first and removed after; at every moment DIR is either the old or the new dataset.
    let old: string | undefined;
    if (existsSync(this.outDir)) {
      old = `${this.tmpDir}-old`;
      renameSync(this.outDir, old);
    }
    renameSync(this.tmpDir, this.outDir);
    if (old) rmSync(old, { recursive: true, force: true });
  }

  abort(): void {
    for (const p of this.parts.values()) { try { p.close(); } catch { /* already closed */ } }
    for (const fd of this.textFds.values()) { try { closeSync(fd); } catch { /* already closed */ } }
    rmSync(this.tmpDir, { recursive: true, force: true });
  }
}
