/**
 * The 16-bit gradient codec (src/fleet/grad-codec.ts): its rounding against an independent
 * float64 reference (ties to even, the half's subnormal range, the scale rule), exact encode/decode,
 * refusal of bad peer input, and the tree property: with every node rounded, every task plan gives
 * the same step-gradient bytes (and not fp32's).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { f16round } from '@petamoriken/float16';
import { loadConfig } from '../src/config/index.ts';
import { buildLayout } from '../src/model/layout.ts';
import { Rng } from '../src/util/rng.ts';
import { decodeNode, E_MIN, encodeNode, restSegments, roundNode, roundRange, scaleExponent } from '../src/fleet/grad-codec.ts';
import type { ResultMsg } from '../src/fleet/contract.ts';
import type { GradCodecName } from '../src/fleet/grad-codec.ts';
import { toyStep } from './support/toy-step.ts';

const sha = (a: Float32Array) => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

/** The definition, s·f16(x/s) with s = 2^e, with an independent half rounding: @petamoriken/float16's f16round. */
function reference(x: number, e: number): number {
  return f16round(x / 2 ** e) * 2 ** e;
}

function wideRandom(rng: Rng, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const k = rng.int(10);
    x[i] = k === 0 ? 0 : k === 1 ? -0 : (rng.next() - 0.5) * 10 ** (rng.int(16) - 10);
  }
  return x;
}

test('rounding matches IEEE half rounding (f16round) at the tensor\'s scale bit for bit, ties to even, down to the half subnormals', () => {
  const rng = new Rng(7);
  for (let trial = 0; trial < 40; trial++) {
    const x = wideRandom(rng, 2000);
    // exact ties and subnormal-range values at this tensor's scale
    const e = scaleExponent(x, 0, x.length);
    x[0] = (1 + 2 ** -11) * 2 ** (e + 5);          // tie: rounds down to even (1.0)
    x[1] = (1 + 3 * 2 ** -11) * 2 ** (e + 5);      // tie: rounds up to even (1 + 2^-9)
    x[2] = 2.5 * 2 ** (e - 24);                    // subnormal tie → 2 units
    x[3] = -3.5 * 2 ** (e - 24);                   // subnormal tie → −4 units
    assert.equal(scaleExponent(x, 0, x.length), e, 'the planted values stay below the max');
    const want = Float32Array.from(x, (v) => reference(v, e));
    const got = x.slice();
    roundRange(got, 0, got.length, e);
    for (let i = 0; i < x.length; i++) assert.ok(Object.is(got[i], want[i]), `x=${x[i]} e=${e}: got ${got[i]}, want ${want[i]}`);
    assert.equal(got[0], 2 ** (e + 5));
    assert.equal(got[1], (1 + 2 ** -9) * 2 ** (e + 5));
    assert.equal(got[2], 2 * 2 ** (e - 24));
    assert.equal(got[3], -4 * 2 ** (e - 24));
  }
});

test('the scale keeps the largest value under 2^15 units (no overflow), with a floor for tiny tensors', () => {
  const x = Float32Array.of(0.75, -3, 1e-3);
  assert.equal(scaleExponent(x, 0, 3), 1 - 14);                 // 3 = 1.5·2^1
  const y = Float32Array.of(65504 * 2 ** 20, 1);
  const e = scaleExponent(y, 0, 2);
  roundRange(y, 0, 2, e);
  assert.ok(Number.isFinite(y[0]) && y[0] / 2 ** e <= 2 ** 15);
  assert.equal(scaleExponent(new Float32Array(4), 0, 4), E_MIN);
  assert.equal(scaleExponent(Float32Array.of(1e-40, NaN, Infinity), 0, 3), E_MIN);
  const z = Float32Array.of(NaN, -Infinity, 1);
  roundRange(z, 0, 3, scaleExponent(z, 0, 3));
  assert.ok(Number.isNaN(z[0]) && z[1] === -Infinity && z[2] === 1);
});

test('a rounded node encodes to half codes and decodes to the same float32 bits; bad input is refused', () => {
  const cfg = loadConfig('configs/test.yaml');
  const layout = buildLayout(cfg.model);
  const segments = restSegments(layout);
  assert.equal(segments[0], 0);
  assert.equal(segments[segments.length - 1], layout.total - layout.embedding.size);
  assert.equal(segments.length, layout.params.length, 'one boundary per rest tensor, plus the end');
  const rng = new Rng(3);
  const rest = wideRandom(rng, segments[segments.length - 1]);
  const emb = wideRandom(rng, 5 * cfg.model.d_model);
  rest[7] = NaN; rest[8] = -Infinity;
  const before = rest.slice();
  const exps = roundNode(emb, rest, segments);
  assert.notEqual(sha(rest), sha(before), 'rounding changed something');
  const n = encodeNode(emb, rest, exps, segments);
  assert.equal(n.restCodes.byteLength * 2, rest.byteLength);
  const back = decodeNode(n, segments);
  assert.ok(typeof back !== 'string');
  assert.equal(sha(back.rest), sha(rest));
  assert.equal(sha(back.embValues), sha(emb));
  // an unrounded value cannot be encoded (a bug, caught)
  const raw = Float32Array.of(1 + 2 ** -20, 1);
  assert.throws(() => encodeNode(new Float32Array(0), raw, Int32Array.of(0, scaleExponent(raw, 0, 2)), Int32Array.of(0, 2)), /not rounded/);
  // a peer's lies
  assert.match(String(decodeNode({ ...n, restCodes: n.restCodes.subarray(1) }, segments)), /rest has/);
  assert.match(String(decodeNode({ ...n, exps: n.exps.subarray(1) }, segments)), /scale exponents/);
  assert.match(String(decodeNode({ ...n, exps: Int32Array.from(n.exps, (e, i) => (i === 0 ? 500 : e)) }, segments)), /out of range/);
});

test('toy model, fp16: every task plan gives the same step-gradient bytes, rounded, and unlike fp32', () => {
  const step = toyStep(8, 10, 8);
  const L = step.layout;
  // what a WebSocket worker sends decodes to the same bits
  const wire = (res: ResultMsg) => {
    if (res.empty) return;
    const seg = restSegments(L);
    const back = decodeNode(encodeNode(res.embValues, res.rest, res.exps, seg), seg);
    assert.ok(typeof back !== 'string' && sha(back.rest) === sha(res.rest) && sha(back.embValues) === sha(res.embValues));
  };
  const stepGradient = (workers: number, codec: GradCodecName) => step.gradient(workers, codec, codec === 'fp16' ? wire : undefined);
  const fp16 = [1, 2, 3, 4, 8].map((n) => stepGradient(n, 'fp16'));
  assert.equal(new Set(fp16.map((g) => g.sha)).size, 1, fp16.map((g) => g.sha).join(' '));
  const fp32 = stepGradient(2, 'fp32');
  assert.notEqual(fp16[0].sha, fp32.sha, 'the codec really rounds');
  // the root is a rounded node: re-encoding it succeeds
  const seg = restSegments(L);
  assert.doesNotThrow(() => encodeNode(fp16[0].root.emb.values, fp16[0].root.rest, fp16[0].root.exps!, seg));
  // and it is close to fp32's: relative error of the whole gradient ~2^-11
  let num = 0, den = 0;
  for (let i = 0; i < fp32.root.rest.length; i++) { num += (fp16[0].root.rest[i] - fp32.root.rest[i]) ** 2; den += fp32.root.rest[i] ** 2; }
  assert.ok(den > 0 && Math.sqrt(num / den) < 2e-3, `relative error ${Math.sqrt(num / den)}`);
});
