/**
 * The optional 16-bit gradient codec (`train.grad_codec: fp16`), exact by construction.
 *
 * Rounding is part of the tree. With the codec on, every node of the reduction tree (./reduce.ts)
 * — each micro-shard's sum and each sum of two nodes — is rounded, tensor by tensor, to SCALED
 * FLOAT16: a tensor whose largest finite magnitude m has float32 exponent E (2^E ≤ m < 2^(E+1))
 * gets the scale s = 2^e, e = max(E − 14, E_MIN), and every x becomes s·f16(x / s), f16 being
 * IEEE half precision with round-to-nearest-even (11 significant bits; granularity s·2^−24 below
 * s·2^−14). Since m / s < 2^15, nothing overflows the half range. Dividing by a power of two is
 * exact, so the rounded tensor is exactly (e, one 16-bit code per value): that pair is what a
 * WebSocket worker sends (the `result16` frame), and decoding it gives back the same float32 bits.
 * E_MIN keeps every decoded value a normal float32 (≥ 2^(E_MIN−24)), so the codes are exact too.
 *
 * Both a worker pre-adding its block and the coordinator adding the upper levels round every node
 * they form, so a node's value still depends only on its leaves and the fixed tree: the same bytes
 * whoever computes what, as with fp32. It is a different gradient from fp32's (rounded), so a
 * run's bytes depend on the codec — it is a config field, part of the run's math, not a transport
 * option. Non-finite values are kept as they are (half Inf/NaN on the wire); the result checks and
 * the divergence rule deal with them.
 *
 * The half rounding itself is IEEE's, the same as @petamoriken/float16's `f16round` (the tests
 * check it bit for bit against it). Written out here because this is on every step's hot path:
 * on 1.4 M values, rounding in place on the float32 bits took 5–10 ms against 27–133 ms for a loop
 * of `f16round`, and encoding 7–22 ms against ~720 ms through its Float16Array (measured
 * side by side, 2026-12-02); Node 20 has no native Float16Array.
 */
import type { Layout } from '../model/layout.js';

export { GRAD_CODECS, type GradCodecName } from '../config/index.js';

/** Smallest scale exponent: decoded values then stay ≥ 2^(E_MIN − 24) = 2^−124, normal float32. */
export const E_MIN = -100;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Bits of a float32 value. */
function bitsOf(x: number): number { f32[0] = x; return u32[0]; }

/**
 * Round-to-nearest-even to integers of a float64 |v| < 2^51 (the classic magic-number trick: adding
 * 1.5·2^52 pushes the fraction out of the mantissa, and the FPU rounds to even).
 */
const MAGIC = 6755399441055744;
function rint(v: number): number { return (v + MAGIC) - MAGIC; }

/** The scale exponent e of the values x[a..b) (finite ones; 0 when all are zero or non-finite). */
export function scaleExponent(x: Float32Array, a: number, b: number): number {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  let mx = 0;
  for (let i = a; i < b; i++) {
    const m = bits[i] & 0x7fffffff;
    if (m > mx && m < 0x7f800000) mx = m;
  }
  if (mx === 0) return E_MIN;
  const E = mx < 0x00800000 ? -127 : (mx >>> 23) - 127; // a subnormal max: below 2^−126
  return Math.max(E - 14, E_MIN);
}

/**
 * Round x[a..b) in place to scale 2^e (see the file comment). Normal half range (|x| ≥ 2^(e−14)):
 * round the float32 mantissa to 10 bits (ties to even) on the bits; below it: to multiples of
 * 2^(e−24) in float64 (both steps exact but the one rounding).
 */
export function roundRange(x: Float32Array, a: number, b: number, e: number): void {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const small = bitsOf(2 ** (e - 14));            // |x| below this: the half's subnormal range
  const up = 2 ** (24 - e), down = 2 ** (e - 24);
  for (let i = a; i < b; i++) {
    const w = bits[i], m = w & 0x7fffffff;
    if (m >= 0x7f800000) continue;                 // Inf/NaN kept
    if (m >= small) bits[i] = (w + 0x0fff + ((w >>> 13) & 1)) & 0xffffe000;
    else {
      const r = rint(x[i] * up) * down;
      x[i] = r === 0 && w >= 0x80000000 ? -0 : r;     // a negative value (or −0) rounding to zero is −0, as in IEEE
    }
  }
}

/** Tensor boundaries of a gradient's non-embedding part ("rest"): offsets relative to its start, [0, …, restLength]. */
export function restSegments(layout: Layout): Int32Array {
  const E = layout.embedding.size;
  const cuts = new Set<number>([0, layout.total - E]);
  for (const s of layout.params) if (s.offset >= E) cuts.add(s.offset - E);
  return Int32Array.from([...cuts].sort((p, q) => p - q));
}

/** Round a node in place: the embedding rows as one tensor, every rest tensor apart. Returns the scale exponents [emb, rest…]. */
export function roundNode(embValues: Float32Array, rest: Float32Array, segments: Int32Array): Int32Array {
  const exps = new Int32Array(segments.length);
  exps[0] = scaleExponent(embValues, 0, embValues.length);
  roundRange(embValues, 0, embValues.length, exps[0]);
  for (let k = 0; k + 1 < segments.length; k++) {
    const a = segments[k], b = segments[k + 1];
    const e = scaleExponent(rest, a, b);
    roundRange(rest, a, b, e);
    exps[k + 1] = e;
  }
  return exps;
}

/** Half-precision codes of x[a..b), which must already be rounded at scale 2^e (throws otherwise: a bug, not a peer). */
export function encodeRange(x: Float32Array, a: number, b: number, e: number, out: Uint16Array): void {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const small = bitsOf(2 ** (e - 14));
  const up = 2 ** (24 - e);
  for (let i = a; i < b; i++) {
    const w = bits[i], m = w & 0x7fffffff, sign = (w >>> 16) & 0x8000;
    let code: number;
    if (m > 0x7f800000) code = 0x7e00;                                   // NaN
    else if (m === 0x7f800000) code = sign | 0x7c00;                     // ±Inf
    else if (m >= small) {
      const he = (m >>> 23) - 127 - e + 15;                              // the half's biased exponent, 1..30
      code = sign | (he << 10) | ((m >>> 13) & 0x3ff);
      if (he < 1 || he > 30 || (m & 0x1fff) !== 0) throw new Error(`grad codec: value ${i} is not rounded at scale 2^${e}`);
    } else {
      const k = Math.abs(x[i]) * up;                                      // an integer 0..1023
      if (k !== Math.floor(k) || k > 1023) throw new Error(`grad codec: value ${i} is not rounded at scale 2^${e}`);
      code = sign | k;
    }
    out[i] = code;
  }
}

/** Decode half-precision codes at scale 2^e into out[a..b). */
export function decodeRange(codes: Uint16Array, a: number, b: number, e: number, out: Float32Array): void {
  const step = new Float64Array(32);               // value of one mantissa unit per half exponent
  step[0] = 2 ** (e - 24);
  for (let he = 1; he < 31; he++) step[he] = 2 ** (he - 25 + e);
  for (let i = a; i < b; i++) {
    const c = codes[i], he = (c >>> 10) & 0x1f, mant = c & 0x3ff, neg = (c & 0x8000) !== 0;
    let v: number;
    if (he === 0) v = mant * step[0];
    else if (he === 31) v = mant === 0 ? Infinity : NaN;
    else v = (1024 + mant) * step[he];
    out[i] = neg ? -v : v;
  }
}

/** A rounded node on the wire: codes of the embedding values and of the rest, and the exponents [emb, rest…]. */
export interface EncodedNode { embCodes: Uint16Array; restCodes: Uint16Array; exps: Int32Array }

export function encodeNode(embValues: Float32Array, rest: Float32Array, exps: Int32Array, segments: Int32Array): EncodedNode {
  if (exps.length !== segments.length) throw new Error(`grad codec: ${exps.length} exponents for ${segments.length - 1} rest tensors + the embedding`);
  const embCodes = new Uint16Array(embValues.length), restCodes = new Uint16Array(rest.length);
  encodeRange(embValues, 0, embValues.length, exps[0], embCodes);
  for (let k = 0; k + 1 < segments.length; k++) encodeRange(rest, segments[k], segments[k + 1], exps[k + 1], restCodes);
  return { embCodes, restCodes, exps };
}

/**
 * Decode a peer's node. Checks what decoding needs (lengths, exponents in [E_MIN, 127]) and returns
 * a one-line reason instead of values when they do not hold.
 */
export function decodeNode(n: EncodedNode, segments: Int32Array): { embValues: Float32Array; rest: Float32Array } | string {
  const restLength = segments[segments.length - 1];
  if (n.restCodes.length !== restLength) return `rest has ${n.restCodes.length} values, expected ${restLength}`;
  if (n.exps.length !== segments.length) return `${n.exps.length} scale exponents, expected ${segments.length}`;
  for (const e of n.exps) if (e < E_MIN || e > 127) return 'scale exponent out of range';
  const embValues = new Float32Array(n.embCodes.length), rest = new Float32Array(restLength);
  decodeRange(n.embCodes, 0, n.embCodes.length, n.exps[0], embValues);
  for (let k = 0; k + 1 < segments.length; k++) decodeRange(n.restCodes, segments[k], segments[k + 1], n.exps[k + 1], rest);
  return { embValues, rest };
}
