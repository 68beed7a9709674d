/**
 * Checkpoints: everything needed to resume a run exactly, or to evaluate / sample / export it.
 *
 *   import { saveCheckpoint, loadCheckpoint, weightsSha256 } from '../train/checkpoint.js';
 *   await saveCheckpoint(runDir, { config, step, weights, optimizer: opt.getState(),
 *                                  sampler: sampler.cursor(), rng: rng.getState(),
 *                                  tokenizerJson, meta: { bestValLoss, backend } });
 *   const ck = loadCheckpoint(runDir);     // or a path to a .vilm file
 *
 * Files in RUN/: `checkpoint.vilm` (the latest) and `checkpoint.prev.vilm` (the one before, kept
 * as a fallback in case the latest turns out bad). Writing is atomic: the new file is written
 * to a temp name in RUN/, fsync'ed, the old latest is hard-linked to `checkpoint.prev.vilm`, then
 * the temp file is renamed over `checkpoint.vilm` — at every instant `checkpoint.vilm` is a
 * complete file (old or new). Temp files (`.checkpoint.vilm.*.tmp`) left by a crash are never read
 * and are removed by the next save.
 *
 * File format (one self-describing binary file, the safetensors idea plus a magic and a checksum):
 *
 *   bytes 0..7    magic "VILMCKP1"
 *   bytes 8..15   N = header length, uint64 little-endian
 *   bytes 16..    N bytes of UTF-8 JSON header, padded with spaces so the data starts 8-aligned
 *   then          the data section: raw little-endian buffers, each starting 8-byte aligned
 *
 *   header = { format: "vilm-checkpoint", version: 2, step, config, sampler, rng, meta,
 *              optimizer: { name, step }, dataBytes, dataSha256,
 *              tensors: { <name>: { dtype: "F32"|"U8", shape: [n], data_offsets: [begin, end] } },
 *              headerSha256 }
 *   headerSha256 = sha256 of the header's JSON without that field: with dataSha256 inside it, it
 *   covers the whole file, so an edited step, learning-rate state or config is refused like a
 *   flipped weight bit. (Version 1 files, without it, are still read.)
 *   tensors: "weights" [total], "optimizer.<buffer>" [total] (e.g. optimizer.m, optimizer.v),
 *            "tokenizer.json" [bytes] (U8, the tokenizer.json text exactly as trained)
 *   data_offsets are relative to the start of the data section (as in safetensors).
 *
 * Why not a library: no maintained npm package writes several typed arrays plus a JSON header
 * atomically with these checks; the format is ~60 lines and keeps weights bit-exact.
 */
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp, readFileSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import path from 'node:path';
import { validateConfig, type RunConfig } from '../config/index.js';
import type { SamplerCursor } from '../data/types.js';
import { buildLayout } from '../model/layout.js';
import { isOptimizerName, optimizerBufferNames } from '../optim/index.js';
import type { OptimizerState } from '../optim/types.js';
import { nameTarget, tempPathFor } from '../util/atomic.js';
import { DivergedError, UserError } from '../util/errors.js';
import type { RngState } from '../util/rng.js';

export const CHECKPOINT_FILE = 'checkpoint.vilm';
export const PREVIOUS_CHECKPOINT_FILE = 'checkpoint.prev.vilm';
const MAGIC = 'VILMCKP1';
const VERSION = 2;
/** versions this code reads: 1 had no headerSha256 */
const READABLE_VERSIONS: readonly number[] = [1, 2];

/** JSON values allowed in `meta`. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

export interface Checkpoint {
  config: RunConfig;
  /** optimizer steps completed */
  step: number;
  /** the flat parameter vector, `buildLayout(config.model).total` floats */
  weights: Float32Array;
  optimizer: OptimizerState;
  /** data sampler position (null for checkpoints not made by a training run) */
  sampler: SamplerCursor | null;
  /** trainer RNG state, if the trainer keeps one beyond the sampler's */
  rng: RngState | null;
  /** the tokenizer.json text the data was prepared with */
  tokenizerJson: string;
  /** free-form: best val loss, backend, timings, … */
  meta: Record<string, JsonValue>;
}

export interface SaveResult {
  file: string;
  bytes: number;
  seconds: number;
}

/** sha256 (hex) of the raw little-endian float32 bytes — the `weightsSha256` of final.json. */
export function weightsSha256(weights: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength)).digest('hex');
}

interface TensorEntry { dtype: 'F32' | 'U8'; shape: number[]; data_offsets: [number, number] }
interface Header {
  format: 'vilm-checkpoint';
  version: number;
  step: number;
  config: RunConfig;
  sampler: SamplerCursor | null;
  rng: RngState | null;
  meta: Record<string, JsonValue>;
  optimizer: { name: string; step: number };
  dataBytes: number;
  dataSha256: string;
  tensors: Record<string, TensorEntry>;
  /** version ≥ 2 (see the file comment) */
  headerSha256?: string;
}

function assertLittleEndian(): void {
  if (endianness() !== 'LE') throw new Error('vilm checkpoints need a little-endian machine');
}

const align8 = (n: number): number => (n + 7) & ~7;

/** sha256 of the header's JSON without its headerSha256 field (JSON.parse/stringify keep key order). */
function headerDigest(h: Header): string {
  const { headerSha256: _omit, ...rest } = h;
  void _omit;
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex');
}

/** Serialise a checkpoint to the bytes of one `.vilm` file. */
export function encodeCheckpoint(ck: Checkpoint): Buffer {
  assertLittleEndian();
  const total = buildLayout(ck.config.model).total;
  if (ck.weights.length !== total) throw new Error(`checkpoint: weights have ${ck.weights.length} floats, layout needs ${total}`);
  const blobs: { name: string; dtype: 'F32' | 'U8'; bytes: Uint8Array }[] = [
    { name: 'weights', dtype: 'F32', bytes: new Uint8Array(ck.weights.buffer, ck.weights.byteOffset, ck.weights.byteLength) },
  ];
  for (const [k, b] of Object.entries(ck.optimizer.buffers)) {
    if (b.length !== total) throw new Error(`checkpoint: optimizer buffer '${k}' has ${b.length} floats, expected ${total}`);
    blobs.push({ name: `optimizer.${k}`, dtype: 'F32', bytes: new Uint8Array(b.buffer, b.byteOffset, b.byteLength) });
  }
  blobs.push({ name: 'tokenizer.json', dtype: 'U8', bytes: Buffer.from(ck.tokenizerJson, 'utf8') });

  const tensors: Record<string, TensorEntry> = {};
  let off = 0;
  for (const b of blobs) {
    off = align8(off);
    const count = b.dtype === 'F32' ? b.bytes.byteLength / 4 : b.bytes.byteLength;
    tensors[b.name] = { dtype: b.dtype, shape: [count], data_offsets: [off, off + b.bytes.byteLength] };
    off += b.bytes.byteLength;
  }
  const dataBytes = align8(off);
  const data = Buffer.alloc(dataBytes);
  for (const b of blobs) data.set(b.bytes, tensors[b.name].data_offsets[0]);
  const header: Header = {
    format: 'vilm-checkpoint', version: VERSION, step: ck.step, config: ck.config,
    sampler: ck.sampler, rng: ck.rng, meta: ck.meta,
    optimizer: { name: ck.optimizer.name, step: ck.optimizer.step },
    dataBytes, dataSha256: createHash('sha256').update(data).digest('hex'), tensors,
  };
  header.headerSha256 = headerDigest(header);
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = align8(16 + json.length) - 16;
  if (padded > json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const pre = Buffer.alloc(16);
  pre.write(MAGIC, 0, 'latin1');
  pre.writeBigUInt64LE(BigInt(json.length), 8);
  return Buffer.concat([pre, json, data]);
}

/** Parse and validate the bytes of a `.vilm` file. `where` names the file in errors. */
export function decodeCheckpoint(buf: Buffer, where: string): Checkpoint {
  assertLittleEndian();
  if (buf.length < 16) throw new UserError(`${where}: truncated checkpoint (${buf.length} bytes, no header)`);
  if (buf.toString('latin1', 0, 8) !== MAGIC) throw new UserError(`${where}: not a vilm checkpoint (bad magic)`);
  const n = Number(buf.readBigUInt64LE(8));
  if (16 + n > buf.length) throw new UserError(`${where}: truncated checkpoint (header says ${n} bytes, file has ${buf.length - 16} after the prefix)`);
  let h: Header;
  try { h = JSON.parse(buf.toString('utf8', 16, 16 + n)) as Header; } catch (e) {
    throw new UserError(`${where}: corrupt checkpoint header (${(e as Error).message})`);
  }
  if (h === null || typeof h !== 'object' || h.format !== 'vilm-checkpoint') throw new UserError(`${where}: corrupt checkpoint header (format is not vilm-checkpoint)`);
  if (!READABLE_VERSIONS.includes(h.version)) throw new UserError(`${where}: checkpoint version ${String(h.version)} is not supported (this vilm reads versions ${READABLE_VERSIONS.join(', ')})`);
  if (h.version >= 2 && (typeof h.headerSha256 !== 'string' || headerDigest(h) !== h.headerSha256)) {
    throw new UserError(`${where}: corrupt checkpoint (header checksum mismatch)`);
  }
  const dataStart = 16 + n;
  const have = buf.length - dataStart;
  if (typeof h.dataBytes !== 'number' || have < h.dataBytes) {
    throw new UserError(`${where}: truncated checkpoint (data section ${have} of ${String(h.dataBytes)} bytes)`);
  }
  if (have > h.dataBytes) throw new UserError(`${where}: corrupt checkpoint (${have - h.dataBytes} unexpected bytes after the data)`);
  const data = buf.subarray(dataStart, dataStart + h.dataBytes);
  if (createHash('sha256').update(data).digest('hex') !== h.dataSha256) {
    throw new UserError(`${where}: corrupt checkpoint (data checksum mismatch)`);
  }
  const config = validateConfig(h.config, `${where}: config`);
  const total = buildLayout(config.model).total;
  const tensor = (name: string, dtype: 'F32' | 'U8', count?: number): Uint8Array => {
    const t = h.tensors?.[name];
    if (!t) throw new UserError(`${where}: corrupt checkpoint (no tensor '${name}')`);
    const [a, b] = t.data_offsets;
    const elem = dtype === 'F32' ? 4 : 1;
    if (t.dtype !== dtype || !(a >= 0 && b >= a && b <= h.dataBytes) || (b - a) !== t.shape[0] * elem || (dtype === 'F32' && a % 4 !== 0)) {
      throw new UserError(`${where}: corrupt checkpoint (tensor '${name}' has bad dtype/shape/offsets)`);
    }
    if (count !== undefined && t.shape[0] !== count) {
      throw new UserError(`${where}: tensor '${name}' has ${t.shape[0]} values, the checkpoint's config needs ${count}`);
    }
    return data.subarray(a, b);
  };
  // copy into fresh, aligned arrays (the file buffer may sit at any offset)
  const f32 = (bytes: Uint8Array): Float32Array => {
    const out = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  };
  const weights = f32(tensor('weights', 'F32', total));
  const optName = h.optimizer?.name;
  if (!isOptimizerName(optName)) {
    throw new UserError(`${where}: corrupt checkpoint (unknown optimizer '${String(optName)}')`);
  }
  const buffers: Record<string, Float32Array> = {};
  for (const k of optimizerBufferNames(optName)) buffers[k] = f32(tensor(`optimizer.${k}`, 'F32', total));
  const tokenizerJson = Buffer.from(tensor('tokenizer.json', 'U8')).toString('utf8');
  if (!Number.isInteger(h.step) || h.step < 0) throw new UserError(`${where}: corrupt checkpoint (bad step ${String(h.step)})`);
  return {
    config, step: h.step, weights,
    optimizer: { name: optName, step: h.optimizer.step, buffers },
    sampler: h.sampler ?? null, rng: h.rng ?? null, tokenizerJson, meta: h.meta ?? {},
  };
}

/** RUN/checkpoint.vilm for a run directory; a file path is returned unchanged. */
export function checkpointPath(pathOrRunDir: string): string {
  let isDir = false;
  try { isDir = statSync(pathOrRunDir).isDirectory(); } catch (e) {
    throw new UserError(`${pathOrRunDir}: no such checkpoint or run directory (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (!isDir) return pathOrRunDir;
  const file = path.join(pathOrRunDir, CHECKPOINT_FILE);
  if (!existsSync(file)) throw new UserError(`${pathOrRunDir}: run directory has no ${CHECKPOINT_FILE}`);
  return file;
}

/**
 * Load and validate a checkpoint: `pathOrRunDir` is a `.vilm` file or a run directory (reads
 * RUN/checkpoint.vilm). Truncated or corrupt files, or tensors that do not match the layout of the
 * checkpoint's own config, throw a one-line `UserError` naming the file.
 */
export function loadCheckpoint(pathOrRunDir: string): Checkpoint {
  const file = checkpointPath(pathOrRunDir);
  let buf: Buffer;
  try { buf = readFileSync(file); } catch (e) {
    throw new UserError(`${file}: cannot read checkpoint (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return decodeCheckpoint(buf, file);
}

/**
 * Write RUN/checkpoint.vilm atomically, keeping the previous one as RUN/checkpoint.prev.vilm.
 * Returns the file, its size and the seconds taken (encode + write + fsync + rename, excluding
 * any wait for an earlier save to the same directory). The
 * checkpoint is encoded before this returns, so the caller may keep training on its arrays.
 */
export function saveCheckpoint(runDir: string, ck: Checkpoint): Promise<SaveResult> {
  // a diverged run must never replace its last good checkpoint with NaN/Inf weights
  const bad = firstNonFinite(ck.weights) >= 0 ? 'weights' : Object.keys(ck.optimizer.buffers).find((k) => firstNonFinite(ck.optimizer.buffers[k]) >= 0);
  if (bad !== undefined) {
    const what = bad === 'weights' ? 'non-finite weights' : `non-finite optimizer state (${bad})`;
    return Promise.reject(new DivergedError(what, `diverged at step ${ck.step}: ${what}; not written over ${path.join(runDir, CHECKPOINT_FILE)}`));
  }
  // encode now (the caller may change its arrays after this call returns), write in turn: saves
  // to one directory run one after another, so a later save never removes an earlier one's temp
  const t0 = performance.now();
  let bytes: Buffer;
  try { bytes = encodeCheckpoint(ck); } catch (e) { return Promise.reject(e); }
  const encodeMs = performance.now() - t0;
  const key = path.resolve(runDir);
  const prevSave = saving.get(key) ?? Promise.resolve();
  const done = prevSave.catch(() => undefined).then(() => writeCheckpoint(runDir, bytes, encodeMs));
  saving.set(key, done);
  void done.finally(() => { if (saving.get(key) === done) saving.delete(key); }).catch(() => undefined);
  return done;
}

/** Index of the first NaN/±Inf in `a`, or −1 (one pass: x − x is 0 for finite x, NaN otherwise). */
export function firstNonFinite(a: Float32Array): number {
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc += a[i] - a[i];
  if (acc === 0) return -1;
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return i;
  return -1;
}

/** In-flight saves per run directory (resolved path). */
const saving = new Map<string, Promise<SaveResult>>();

async function writeCheckpoint(runDir: string, bytes: Buffer, encodeMs: number): Promise<SaveResult> {
  const t0 = performance.now() - encodeMs; // seconds reported: encode + write, not the wait in the queue
  await fsp.mkdir(runDir, { recursive: true });
  const target = path.join(runDir, CHECKPOINT_FILE);
  const prev = path.join(runDir, PREVIOUS_CHECKPOINT_FILE);
  await removeStaleTemps(runDir);
  const tmp = tempPathFor(target);
  const fh = await fsp.open(tmp, 'w').catch((e: unknown) => { throw nameTarget(e, tmp, target); });
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } catch (e) {
    // a full disk: the temp goes, checkpoint.vilm (the previous save) stays as it was
    await fh.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true });
    throw nameTarget(e, tmp, target);
  }
  await fh.close();
  // keep the old latest as .prev: link it under a temp name, rename that over .prev (atomic)
  if (existsSync(target)) {
    const prevTmp = tempPathFor(prev);
    try { await fsp.link(target, prevTmp); } catch { await fsp.copyFile(target, prevTmp); }
    await fsp.rename(prevTmp, prev);
  }
  await fsp.rename(tmp, target);
  await fsyncDir(runDir);
  return { file: target, bytes: bytes.length, seconds: (performance.now() - t0) / 1000 };
}

/** Remove `.checkpoint*.tmp` files a crashed save left behind (only ours, by name). */
async function removeStaleTemps(runDir: string): Promise<void> {
  for (const f of await fsp.readdir(runDir)) {
    if ((f.startsWith(`.${CHECKPOINT_FILE}.`) || f.startsWith(`.${PREVIOUS_CHECKPOINT_FILE}.`)) && f.endsWith('.tmp')) {
      await fsp.rm(path.join(runDir, f), { force: true });
    }
  }
}

/** fsync the directory so the renames survive a power loss (best effort: not all platforms allow it). */
async function fsyncDir(dir: string): Promise<void> {
  try {
    const fh = await fsp.open(dir, 'r');
    try { await fh.sync(); } finally { await fh.close(); }
  } catch { /* not supported here (e.g. Windows) */ }
}

/**
 * The run's latest checkpoint, or — when RUN/checkpoint.vilm is unreadable or corrupt (a disk
 * fault, a bad copy) — the previous one, RUN/checkpoint.prev.vilm, with a warning. Throws the
 * latest's error when there is no usable previous one.
 */
export function loadRunCheckpoint(runDir: string, warn: (message: string) => void): Checkpoint {
  const latest = path.join(runDir, CHECKPOINT_FILE);
  try {
    return loadCheckpoint(latest);
  } catch (e) {
    const prev = path.join(runDir, PREVIOUS_CHECKPOINT_FILE);
    if (!(e instanceof UserError) || !existsSync(prev)) throw e;
    let ck: Checkpoint;
    try { ck = loadCheckpoint(prev); } catch { throw e; }
    warn(`${e.message}; falling back to the previous checkpoint ${prev} (step ${ck.step})`);
    return ck;
  }
}
