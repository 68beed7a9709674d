import test from 'node:test';
import assert from 'node:assert/strict';
import { argmax, filterLogits, sampleToken, checkSampleOptions, type SampleOptions } from '../src/train/generate.ts';
import { Rng } from '../src/util/rng.ts';
import { UserError } from '../src/util/errors.ts';

function close(a: number[], b: number[], tol = 1e-12): void {
  assert.equal(a.length, b.length, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `[${i}] ${a[i]} vs ${b[i]}`);
}

test('greedy: argmax with lowest id on ties, excluded id skipped; temperature 0 uses it', { timeout: 60_000 }, () => {
  assert.equal(argmax([0, 5, 5, 1]), 1);
  assert.equal(argmax([9, 1, 2], 0), 2);
  const rng = new Rng(1);
  assert.equal(sampleToken(Float32Array.from([0.1, 0.7, 0.3]), { temperature: 0 }, rng), 1);
  assert.equal(sampleToken(Float32Array.from([9, 0.7, 0.3]), { temperature: 0 }, rng, 0), 1);
});

test('temperature scales logits before the softmax', { timeout: 60_000 }, () => {
  const logits = [1, 3, 2, 0];
  const e = (x: number) => Math.exp(x);
  const z1 = e(1) + e(3) + e(2) + e(0);
  const c1 = filterLogits(logits, { temperature: 1 });
  assert.deepEqual(c1.ids, [1, 2, 0, 3]);
  close(c1.probs, [e(3) / z1, e(2) / z1, e(1) / z1, e(0) / z1]);
  const z2 = e(2) + e(6) + e(4) + e(0);
  close(filterLogits(logits, { temperature: 0.5 }).probs, [e(6) / z2, e(4) / z2, e(2) / z2, e(0) / z2]);
});

test('top-k keeps the k largest and renormalises', { timeout: 60_000 }, () => {
  const c = filterLogits([1, 3, 2, 0], { temperature: 1, topK: 2 });
  assert.deepEqual(c.ids, [1, 2]);
  const z = Math.exp(3) + Math.exp(2);
  close(c.probs, [Math.exp(3) / z, Math.exp(2) / z]);
  assert.deepEqual(filterLogits([1, 3, 2, 0], { topK: 0 }).ids.length, 4);
  assert.deepEqual(filterLogits([1, 3, 2, 0], { topK: 10 }).ids.length, 4);
});

test('top-p keeps the smallest most-likely set reaching p', { timeout: 60_000 }, () => {
  const logits = [0.5, 0.3, 0.15, 0.05].map(Math.log);
  const a = filterLogits(logits, { topP: 0.75 });
  assert.deepEqual(a.ids, [0, 1]);
  close(a.probs, [0.625, 0.375], 1e-12);
  const b = filterLogits(logits, { topP: 0.9 });
  assert.deepEqual(b.ids, [0, 1, 2]);
  close(b.probs, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95], 1e-12);
  assert.deepEqual(filterLogits(logits, { topP: 0.1 }).ids, [0]);
  // top-k applies first, then top-p on the renormalised top-k
  const c = filterLogits(logits, { topK: 2, topP: 0.6 });
  assert.deepEqual(c.ids, [0]);
  close(c.probs, [1]);
  // the excluded id (<pad>) never appears
  assert.ok(!filterLogits([5, 1, 0], {}, 0).ids.includes(0));
});

test('sampling is seeded: same seed, same draws; frequencies follow the filtered distribution', { timeout: 60_000 }, () => {
  const logits = Float32Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log));
  const draw = (seed: number, n: number, opts: SampleOptions = { temperature: 1 }) => {
    const rng = new Rng(seed);
    return Array.from({ length: n }, () => sampleToken(logits, opts, rng));
  };
  assert.deepEqual(draw(1, 200), draw(1, 200));
  assert.notDeepEqual(draw(1, 200), draw(2, 200));
  const n = 20000;
  const counts = [0, 0, 0, 0];
  for (const id of draw(3, n)) counts[id]++;
  close(counts.map((c) => c / n), [0.5, 0.3, 0.15, 0.05], 0.015);
  const kept = [0, 0, 0, 0];
  for (const id of draw(4, n, { temperature: 1, topP: 0.75 })) kept[id]++;
  assert.equal(kept[2] + kept[3], 0);
  close([kept[0] / n, kept[1] / n], [0.625, 0.375], 0.015);
});

test('bad sampling flags are user errors naming the flag', { timeout: 60_000 }, () => {
  assert.throws(() => checkSampleOptions({ temperature: -1 }), (e: unknown) => e instanceof UserError && /--temperature/.test(e.message));
  assert.throws(() => checkSampleOptions({ topP: 0 }), /--top-p/);
  assert.throws(() => checkSampleOptions({ topK: 1.5 }), /--top-k/);
  assert.throws(() => checkSampleOptions({ maxTokens: -2 }), /--max-tokens/);
  checkSampleOptions({ temperature: 0, topK: 40, topP: 0.95, maxTokens: 64 });
});

test('top-k selection matches the first k of a full sort, ties by lower id', { timeout: 60_000 }, () => {
  const rng = new Rng(9);
  // rounded values make many ties
  const logits = Float32Array.from({ length: 3000 }, () => Math.round(rng.normal() * 4) / 2);
  const full = filterLogits(logits, { topK: 0 }, 5);
  for (const k of [1, 7, 40, 500, 2999]) {
    const c = filterLogits(logits, { topK: k }, 5);
    assert.deepEqual(c.ids, full.ids.slice(0, k), `k=${k}`);
    assert.ok(!c.ids.includes(5));
  }
});
