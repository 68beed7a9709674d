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
 * or pull in tfjs/onnx glue, and the format is these 30 lines. Only F32 is needed.
 */
export interface F32Tensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export function encodeSafetensors(tensors: F32Tensor[], metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`safetensors: ${t.name} has ${t.data.length} values, shape ${JSON.stringify(t.shape)} needs ${count}`);
    if (t.name in header) throw new Error(`safetensors: duplicate tensor ${t.name}`);
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = ((8 + json.length + 7) & ~7) - 8 - json.length;
  if (pad > 0) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = Buffer.alloc(8 + json.length + off);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let pos = 8 + json.length;
  for (const t of tensors) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}
