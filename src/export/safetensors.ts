/**
 * A minimal safetensors writer (https://github.com/huggingface/safetensors, "Format"):
 *
 *   8 bytes   N, uint64 little-endian
 *   N bytes   UTF-8 JSON: { "__metadata__": {str: str}, name: { dtype, shape, data_offsets: [b, e] } }
 *             (padded with spaces so the data starts 8-byte aligned, as the reference writer does)
 *   rest      the byte buffer: every tensor row-major little-endian, back to back, no holes;
 *             data_offsets are relative to the start of this buffer
 *
 * Written here rather than taken from a package: the only npm implementations are unmaintained
 * or pull in tfjs/onnx glue, and the format is these few lines. F32 and F16 (IEEE half, rounded
 * to nearest even by @petamoriken/float16) are written and read.
 */
import { Float16Array } from '@petamoriken/float16';
import { UserError } from '../util/errors.js';

export type StDtype = 'F32' | 'F16';

export interface F32Tensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Bytes of `data` stored as `dtype`, little-endian (the byte order of every platform Node supports in practice). */
function storedBytes(data: Float32Array, dtype: StDtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const h = new Float16Array(data); // round to nearest even, ±65504 then ±Infinity
  return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
}

export function encodeSafetensors(tensors: F32Tensor[], metadata: Record<string, string> = {}, dtype: StDtype = 'F32'): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`safetensors: ${t.name} has ${t.data.length} values, shape ${JSON.stringify(t.shape)} needs ${count}`);
    if (t.name in header) throw new Error(`safetensors: duplicate tensor ${t.name}`);
    const bytes = t.data.length * (dtype === 'F32' ? 4 : 2);
    header[t.name] = { dtype, shape: t.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = ((8 + json.length + 7) & ~7) - 8 - json.length;
  if (pad > 0) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = Buffer.alloc(8 + json.length + off);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let pos = 8 + json.length;
  for (const t of tensors) {
    const b = storedBytes(t.data, dtype);
    out.set(b, pos);
    pos += b.byteLength;
  }
  return out;
}

/** Header bytes accepted when reading (the reference implementation's limit is 100 MB). */
const MAX_HEADER = 100_000_000;

/**
 * Read a safetensors buffer: every F32/F16 tensor as float32, plus the metadata. Every problem is
 * a one-line UserError naming `file` (truncated file, bad header, offsets out of range or
 * overlapping, a dtype other than F32/F16, a shape that does not match the bytes).
 */
export function decodeSafetensors(buf: Uint8Array, file: string): { tensors: Map<string, F32Tensor>; metadata: Record<string, string>; dtypes: Set<StDtype> } {
  const bad = (what: string) => new UserError(`${file}: not a valid safetensors file (${what})`);
  if (buf.length < 8) throw bad('shorter than its 8-byte header length');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (n < 2 || n > MAX_HEADER || 8 + n > buf.length) throw bad(`header length ${n} for a ${buf.length}-byte file`);
  let header: unknown;
  try { header = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + 8, n).toString('utf8')); } catch { throw bad('header is not JSON'); }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw bad('header is not a JSON object');
  const dataStart = 8 + n, dataLen = buf.length - dataStart;
  const tensors = new Map<string, F32Tensor>();
  let metadata: Record<string, string> = {};
  const spans: [number, number][] = [];
  const dtypes = new Set<StDtype>();
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || !Object.values(raw).every((v) => typeof v === 'string')) throw bad('__metadata__ must map strings to strings');
      metadata = { ...(raw as Record<string, string>) };
      continue;
    }
    const t = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    const label = JSON.stringify(name.slice(0, 80));
    if (t === null || typeof t !== 'object') throw bad(`tensor ${label} is not an object`);
    if (t.dtype !== 'F32' && t.dtype !== 'F16') throw bad(`tensor ${label}: dtype must be F32 or F16`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`tensor ${label}: bad shape`);
    const o = t.data_offsets;
    if (!Array.isArray(o) || o.length !== 2 || !o.every((x) => Number.isSafeInteger(x)) || o[0] < 0 || o[1] < o[0] || o[1] > dataLen) throw bad(`tensor ${label}: data_offsets out of range`);
    const width = t.dtype === 'F32' ? 4 : 2;
    const count = (t.shape as number[]).reduce((a, b) => a * b, 1);
    if ((o[1] - o[0]) !== count * width) throw bad(`tensor ${label}: ${o[1] - o[0]} bytes for shape ${JSON.stringify(t.shape)}`);
    spans.push([o[0], o[1]]);
    dtypes.add(t.dtype);
    // a fresh, aligned copy (Buffer#slice would be a view into a shared pool)
    const bytes = new Uint8Array(o[1] - o[0]);
    bytes.set(buf.subarray(dataStart + o[0], dataStart + o[1]));
    const data = t.dtype === 'F32' ? new Float32Array(bytes.buffer, 0, count) : Float32Array.from(new Float16Array(bytes.buffer, 0, count));
    tensors.set(name, { name, shape: [...(t.shape as number[])], data });
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) if (spans[i][0] < spans[i - 1][1]) throw bad('tensors overlap');
  return { tensors, metadata, dtypes };
}
