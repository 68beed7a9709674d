/**
 * The start event reaches the metrics. `combineObservers` once listed event names by hand and left
 * out `onStart`, so under `--metrics-port` `vilm_build_info` kept the requested backend (`auto`)
 * instead of the one in use. Events are now one table (src/events): every one is forwarded.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig, type RunConfig } from '../src/config/index.ts';
import { TRAINER_EVENTS, combineObservers, type TrainerObserver } from '../src/events/index.ts';
import { serveCoordinatorMetrics } from '../src/metrics/coordinator.ts';
import { runTrainingLoop } from '../src/train/loop.ts';
import { syntheticData } from './support/fixtures.ts';
import { TOY_REPLICA } from './support/toy-replica.ts';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-metrics-start-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

test('combineObservers forwards every trainer event to every observer', () => {
  assert.ok(TRAINER_EVENTS.includes('onStart') && TRAINER_EVENTS.length >= 9);
  const seen: string[] = [];
  const recorder = (tag: string): TrainerObserver =>
    Object.fromEntries(TRAINER_EVENTS.map((k) => [k, () => { seen.push(`${tag}:${k}`); }])) as TrainerObserver;
  const c = combineObservers(recorder('a'), {}, recorder('b'));
  for (const k of TRAINER_EVENTS) (c[k] as ((e: unknown) => void) | undefined)?.({});
  assert.deepEqual(seen, TRAINER_EVENTS.flatMap((k) => [`a:${k}`, `b:${k}`]));
});

test('under --metrics-port, vilm_build_info names the backend in use, not the requested "auto"', { timeout: 60_000 }, async () => {
  const base = loadConfig('configs/test.yaml');
  const config: RunConfig = { model: { ...base.model, vocab_size: 64, d_model: 8, n_heads: 2, n_layers: 1, ff_dim: 16 }, train: { ...base.train, steps: 2, eval_every: 0, checkpoint_every: 0 } };
  const data = syntheticData(path.join(root, 'data'), 64, 5, 6);
  const m = await serveCoordinatorMetrics({ port: 0, host: '127.0.0.1', backend: 'auto' });
  let text = '';
  try {
    const r = await runTrainingLoop({
      config, dataDir: data, outDir: path.join(root, 'run'), resume: false, backend: 'auto', replicaModule: TOY_REPLICA,
      inProcess: true, threads: 0, testSequences: 8, observers: [m.observer],
    });
    assert.equal(r.step, 2);
    text = await (await fetch(`http://127.0.0.1:${m.port}/metrics`)).text();
  } finally { await m.close(); }
  assert.match(text, /^vilm_steps_total 2$/m);
  // the toy replica module resolves the backend to 'toy'; the real one to wasm/tensorflow/cpu
  assert.match(text, /^vilm_build_info\{[^}]*backend="toy"/m);
  assert.doesNotMatch(text, /backend="auto"/);
});

/** Samples of a text exposition, by `name{labels}`. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}

test('a real run: the global step continues across resume, the plan and ETA follow, and the step parts sum to the step time', { timeout: 120_000 }, async () => {
  const base = loadConfig('configs/test.yaml');
  const config: RunConfig = { model: { ...base.model, vocab_size: 64, d_model: 8, n_heads: 2, n_layers: 1, ff_dim: 16 }, train: { ...base.train, steps: 6, eval_every: 2, checkpoint_every: 0 } };
  const data = syntheticData(path.join(root, 'data-resume'), 64, 7, 6);
  const out = path.join(root, 'run-resume');
  const runWith = async (stopAt: number | undefined) => {
    const m = await serveCoordinatorMetrics({ port: 0, host: '127.0.0.1', backend: 'auto' });
    try {
      const r = await runTrainingLoop({
        config, dataDir: data, outDir: out, resume: false, backend: 'auto', replicaModule: TOY_REPLICA,
        inProcess: true, threads: 0, testSequences: 4, stopAt, observers: [m.observer],
      });
      return { r, s: samples(await (await fetch(`http://127.0.0.1:${m.port}/metrics`)).text()) };
    } finally { await m.close(); }
  };
  const first = await runWith(4);
  assert.equal(first.r.step, 4);
  assert.equal(first.s.get('vilm_global_step'), 4);
  assert.equal(first.s.get('vilm_planned_steps'), 6);
  assert.ok((first.s.get('vilm_eta_seconds') ?? NaN) > 0, 'two steps left: a positive ETA');
  assert.ok(Number.isNaN(first.s.get('vilm_test_loss')), 'no test loss before the end');

  // the same command again continues the run: a new process (new metrics), the run's step numbers
  const second = await runWith(undefined);
  assert.equal(second.r.step, 6);
  assert.equal(second.s.get('vilm_global_step'), 6, 'the Steps figure does not restart at 0');
  assert.equal(second.s.get('vilm_steps_total'), 2, "steps_total counts this process's steps");
  assert.equal(second.s.get('vilm_planned_steps'), 6);
  assert.equal(second.s.get('vilm_eta_seconds'), 0);
  assert.equal(second.s.get('vilm_test_loss'), second.r.final?.testLoss);

  // real timings: the disjoint parts add up to the step duration (sum over the steps)
  for (const { s } of [first, second]) {
    const parts = [...s].filter(([k]) => k.startsWith('vilm_step_part_duration_seconds_sum{'));
    assert.equal(parts.length, 6, parts.map(([k]) => k).join(', '));
    const total = s.get('vilm_step_duration_seconds_sum')!;
    const sum = parts.reduce((a, [, v]) => a + v, 0);
    assert.ok(total > 0);
    assert.ok(Math.abs(sum - total) <= 1e-9 * Math.max(1, total), `parts ${sum} vs steps ${total}`);
    // the other figures count the same steps
    for (const [k] of parts) assert.equal(s.get(k.replace('_sum{', '_count{')), s.get('vilm_steps_total'));
  }
});
