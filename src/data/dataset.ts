import { readFileSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import type { Manifest, SplitName, SplitStats } from './types.js';

/**
 * Loader for a directory written by `vilm data prepare`:
 *   DIR/manifest.json   the `Manifest` (src/data/types.ts)
 *   DIR/<split>.bin     Uint16 little-endian tokens, sequences grouped by bucket (buckets ascending),
 *                       each row exactly `bucket` tokens, `<pad>` = 0 after the text.
 * The offset of a bucket inside a file follows from `buckets` and `bucketHistogram`. Each split's
 * file is read once (on first use) into one Uint16Array; buckets and sequences are views into it.
 */

const SPLIT_NAMES: readonly SplitName[] = ['train', 'validation', 'test'];

/** The sequences of one bucket of one split: `tokens` is [count, length], row-major. */
export interface BucketSlice {
  readonly length: number;
  readonly count: number;
  readonly tokens: Uint16Array;
}

export class PreparedSplit {
  /** non-empty buckets, ascending length */
  readonly buckets: readonly BucketSlice[];
  readonly sequences: number;
  constructor(readonly name: SplitName, readonly stats: SplitStats, buckets: readonly BucketSlice[]) {
    for (const b of buckets) {
      if (b.tokens.length !== b.count * b.length) throw new Error(`bucket ${b.length}: ${b.tokens.length} tokens for ${b.count} rows`);
    }
    this.buckets = buckets.filter((b) => b.count > 0).sort((a, b) => a.length - b.length);
    this.sequences = this.buckets.reduce((a, b) => a + b.count, 0);
  }
  /** The slice of bucket `length`, or undefined when the split has no sequence of that length. */
  bucket(length: number): BucketSlice | undefined {
    return this.buckets.find((b) => b.length === length);
  }
  /** Row `i` of a bucket (a view, do not modify). */
  sequence(length: number, i: number): Uint16Array {
    const b = this.bucket(length);
    if (!b || i < 0 || i >= b.count) throw new RangeError(`split ${this.name}: no sequence ${i} in bucket ${length}`);
    return b.tokens.subarray(i * length, (i + 1) * length);
  }

  /** A split built from in-memory rows (tests, tools): rows of each bucket concatenated. */
  static fromArrays(name: SplitName, rows: ReadonlyMap<number, Uint16Array> | Record<number, Uint16Array>): PreparedSplit {
    const entries = rows instanceof Map ? [...rows.entries()] : Object.entries(rows).map(([k, v]) => [Number(k), v] as [number, Uint16Array]);
    const slices = entries.map(([length, tokens]) => ({ length, count: tokens.length / length, tokens }));
    let tokens = 0;
    for (const s of slices) for (let i = 0; i < s.tokens.length; i++) if (s.tokens[i] !== 0) tokens++;
    return new PreparedSplit(name, { docs: 0, sequences: slices.reduce((a, s) => a + s.count, 0), tokens }, slices);
  }
}

export interface LoadOptions {
  /** when given, the dataset must have been prepared with this tokenizer (sha256 of tokenizer.json) */
  tokenizerSha256?: string;
}

export class PreparedDataset {
  private readonly cache = new Map<SplitName, PreparedSplit>();
  constructor(readonly dir: string, readonly manifest: Manifest) {}

  /** Load (once) and return a split; file problems are UserErrors naming the file. */
  split(name: SplitName): PreparedSplit {
    const hit = this.cache.get(name);
    if (hit) return hit;
    const s = readSplit(this.dir, this.manifest, name);
    this.cache.set(name, s);
    return s;
  }

  /** Throws a UserError when the dataset was prepared with another tokenizer. */
  checkTokenizer(sha256: string, what = 'tokenizer'): void {
    if (sha256 !== this.manifest.tokenizerSha256) {
      throw new UserError(`${path.join(this.dir, 'manifest.json')}: tokenizerSha256 ${this.manifest.tokenizerSha256.slice(0, 12)}… does not match ${what} (${sha256.slice(0, 12)}…); prepare the data again with this tokenizer`);
    }
  }
}

/** Open a prepared directory: validates the manifest and the token files' sizes (data is read lazily per split). */
export function loadDataset(dir: string, opts: LoadOptions = {}): PreparedDataset {
  const mf = path.join(dir, 'manifest.json');
  let raw: string;
  try {
    raw = readFileSync(mf, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? `${mf}: not found (is ${dir} the output of vilm data prepare?)` : `${mf}: cannot read (${code ?? String(e)})`);
  }
  let json: unknown;
  try { json = JSON.parse(raw); } catch (e) { throw new UserError(`${mf}: invalid JSON (${(e as Error).message})`); }
  const manifest = validateManifest(json, mf);
  for (const s of SPLIT_NAMES) {
    const file = path.join(dir, manifest.files[s]);
    let size: number;
    try { size = statSync(file).size; } catch (e) {
      throw new UserError(`${file}: token file of split '${s}' is missing (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    const want = expectedTokens(manifest, s) * 2;
    if (size !== want) throw new UserError(`${file}: ${size} bytes, manifest says ${want} (truncated or wrong file)`);
  }
  const ds = new PreparedDataset(dir, manifest);
  if (opts.tokenizerSha256 !== undefined) ds.checkTokenizer(opts.tokenizerSha256);
  return ds;
}

function expectedTokens(m: Manifest, s: SplitName): number {
  let n = 0;
  for (const b of m.buckets) n += (m.bucketHistogram[s][String(b)] ?? 0) * b;
  return n;
}

function readSplit(dir: string, m: Manifest, name: SplitName): PreparedSplit {
  const file = path.join(dir, m.files[name]);
  let buf: Buffer;
  try { buf = readFileSync(file); } catch (e) {
    throw new UserError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const want = expectedTokens(m, name);
  if (buf.length !== want * 2) throw new UserError(`${file}: ${buf.length} bytes, manifest says ${want * 2} (truncated or wrong file)`);
  // one aligned copy-free view when possible (Buffers from readFileSync may share an unaligned pool)
  let all: Uint16Array;
  if (buf.byteOffset % 2 === 0) all = new Uint16Array(buf.buffer, buf.byteOffset, want);
  else { all = new Uint16Array(want); new Uint8Array(all.buffer).set(buf); }
  if (endianness() !== 'LE') {
    const b = Buffer.from(all.buffer, all.byteOffset, all.byteLength); b.swap16();
  }
  const slices: BucketSlice[] = [];
  let off = 0, nonPad = 0;
  for (const b of m.buckets) {
    const count = m.bucketHistogram[name][String(b)] ?? 0;
    const tokens = all.subarray(off, off + count * b);
    for (let r = 0; r < count; r++) {
      if (tokens[r * b] === 0) throw new UserError(`${file}: sequence ${r} of bucket ${b} starts with <pad> (corrupt token file)`);
    }
    for (let i = 0; i < tokens.length; i++) if (tokens[i] !== 0) nonPad++;
    slices.push({ length: b, count, tokens });
    off += count * b;
  }
  if (nonPad !== m.splits[name].tokens) throw new UserError(`${file}: ${nonPad} non-pad tokens, manifest splits.${name}.tokens says ${m.splits[name].tokens}`);
  return new PreparedSplit(name, m.splits[name], slices);
}

/** Check every Manifest field; errors name the file and the field. */
export function validateManifest(v: unknown, file: string): Manifest {
  const bad = (field: string, why: string): never => { throw new UserError(`${file}: field '${field}' ${why}`); };
  if (v === null || typeof v !== 'object' || Array.isArray(v)) bad('(root)', 'must be a JSON object');
  const o = v as Record<string, unknown>;
  const nonNegInt = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (!nonNegInt(o.seed)) bad('seed', 'must be a non-negative integer');
  if (typeof o.tokenizerSha256 !== 'string' || !/^[0-9a-f]{64}$/.test(o.tokenizerSha256)) bad('tokenizerSha256', 'must be 64 hex digits');
  if (!nonNegInt(o.maxLen) || o.maxLen < 3) bad('maxLen', 'must be an integer ≥ 3');
  if (!Array.isArray(o.buckets) || o.buckets.length === 0) bad('buckets', 'must be a non-empty array');
  const buckets = o.buckets as unknown[];
  buckets.forEach((b, i) => {
    if (!nonNegInt(b) || b < 3 || b > 65535) bad(`buckets[${i}]`, 'must be an integer in 3..65535');
    if (i > 0 && (b as number) <= (buckets[i - 1] as number)) bad(`buckets[${i}]`, 'must be strictly ascending');
    if ((b as number) > (o.maxLen as number)) bad(`buckets[${i}]`, `exceeds maxLen ${o.maxLen as number}`);
  });
  if (typeof o.paddingWaste !== 'number' || !(o.paddingWaste >= 0 && o.paddingWaste < 1)) bad('paddingWaste', 'must be a number in [0, 1)');
  for (const key of ['splits', 'bucketHistogram', 'files'] as const) {
    if (o[key] === null || typeof o[key] !== 'object' || Array.isArray(o[key])) bad(key, 'must be an object');
  }
  const splits = o.splits as Record<string, unknown>, hist = o.bucketHistogram as Record<string, unknown>, files = o.files as Record<string, unknown>;
  for (const s of SPLIT_NAMES) {
    const st = splits[s] as Record<string, unknown> | undefined;
    if (!st || typeof st !== 'object') bad(`splits.${s}`, 'is missing');
    for (const f of ['docs', 'sequences', 'tokens']) if (!nonNegInt(st![f])) bad(`splits.${s}.${f}`, 'must be a non-negative integer');
    const h = hist[s] as Record<string, unknown> | undefined;
    if (!h || typeof h !== 'object' || Array.isArray(h)) bad(`bucketHistogram.${s}`, 'is missing');
    let seqs = 0;
    for (const [k, n] of Object.entries(h!)) {
      if (!buckets.includes(Number(k))) bad(`bucketHistogram.${s}.${k}`, 'is not one of buckets');
      if (!nonNegInt(n)) bad(`bucketHistogram.${s}.${k}`, 'must be a non-negative integer');
      seqs += n as number;
    }
    if (seqs !== st!.sequences) bad(`bucketHistogram.${s}`, `sums to ${seqs} sequences, splits.${s}.sequences is ${st!.sequences as number}`);
    const f = files[s];
    if (typeof f !== 'string' || f === '' || f !== path.basename(f) || f.startsWith('.')) bad(`files.${s}`, 'must be a plain file name inside the directory');
  }
  return o as unknown as Manifest;
}
