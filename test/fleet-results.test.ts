/**
 * Results are checked against what the coordinator knows (issue 9, item 3), with fake workers
 * handed straight to the scheduler: a token count or emptiness the worker made up, implausible
 * magnitudes and results for tasks never given are strikes, the step still gives the reference
 * bytes; strikes follow the worker's identity across reconnects and end in a ban; the strike table
 * stays bounded. Each attack here was accepted by the scheduler before this check existed.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import type { RejectReason } from '../src/events/index.ts';
import type { ResultMsg } from '../src/fleet/contract.ts';
import { GRAD_NORM_BOUND_PER_TOKEN, LOSS_BOUND_PER_TOKEN, checkResult, taskFacts } from '../src/fleet/coordinator/result-check.ts';
import { StrikeBook } from '../src/fleet/coordinator/strikes.ts';
import { blockRows } from '../src/fleet/shard-tree.ts';
import { computeTask } from '../src/fleet/worker/compute.ts';
import { buildLayout } from '../src/model/layout.ts';
import { FakeLink, gradientSha, paddedBatch, referenceSum, toyConfig, toyScheduler, toyWeights, within, type Tamper } from './support/fake-link.ts';
import { createToyModel } from './support/toy-model.ts';

const cfg = toyConfig(4);
const weights = toyWeights(cfg);
const SHARDS = cfg.train.micro_shards;

test('the coordinator\'s token count and emptiness are the model\'s, for every block shape (pad rows, empty shards)', () => {
  const model = createToyModel(cfg.model);
  const L = buildLayout(cfg.model);
  const shape = { vocab: cfg.model.vocab_size, d: cfg.model.d_model, restSize: L.total - L.embedding.size };
  let blocks = 0, empty = 0;
  // 3 rows over 8 shards leaves shards (and whole blocks) without rows; 13 rows do not
  for (const [rows, shards] of [[13, 4], [3, 8], [7, 8]] as const) {
    const b = paddedBatch(rows, rows, 9);
    // a row of pad only: no target at all
    b.tokens.fill(0, 0, 9);
    // every block of the tree: levels 0..log2(P), indices k with k·2^level < shards
    for (let level = 0; 2 ** (level - 1) < shards; level++) {
      for (let index = 0; index * 2 ** level < shards; index++) {
        const block = { level, index };
        const [r0, r1] = blockRows(block, b.rows, shards);
        const task = {
          step: 0, version: 0, taskId: 1, level: block.level, index: block.index, shards, batchRows: b.rows, seqLen: b.seqLen, rowStart: r0,
          tokens: b.tokens.slice(r0 * b.seqLen, r1 * b.seqLen), maxTokens: 1024, codec: 'fp32' as const,
        };
        const facts = taskFacts(task.tokens, r1 - r0, b.seqLen);
        const r = computeTask(model, weights, task);
        assert.deepEqual(facts, { empty: r.empty, tokenCount: r.tokenCount }, `rows ${rows}, shards ${shards}, block ${level}:${index}`);
        assert.equal(checkResult(r, task, facts, shape), null);
        blocks++;
        if (facts.empty) empty++;
      }
    }
  }
  assert.ok(blocks > 10 && empty > 0, `${blocks} blocks, ${empty} empty`);
});

/** Attacks on a result: each is refused with `reason`; the honest worker's recomputation is taken. */
const ATTACKS: { name: string; reason: RejectReason; tamper: Tamper }[] = [
  { name: 'a token count of 2^53−1', reason: 'mismatch', tamper: (r) => { r.tokenCount = 2 ** 53 - 1; } },
  { name: 'a token count one too low', reason: 'mismatch', tamper: (r) => { r.tokenCount -= 1; } },
  { name: 'empty: true for a block with rows', reason: 'mismatch', tamper: (r) => { r.empty = true; } },
  { name: 'a huge finite gradient (1e37)', reason: 'implausible', tamper: (r) => { r.rest[3] = 1e37; } },
  { name: `a loss beyond ${LOSS_BOUND_PER_TOKEN} nats a token`, reason: 'implausible', tamper: (r) => { r.lossSum = (LOSS_BOUND_PER_TOKEN + 1) * r.tokenCount; } },
  { name: 'a negative loss', reason: 'implausible', tamper: (r) => { r.lossSum = -r.lossSum - 1; } },
  { name: 'a gradient norm just over the per-token bound', reason: 'implausible', tamper: (r) => { r.rest[0] = 1.01 * GRAD_NORM_BOUND_PER_TOKEN * r.tokenCount; } },
  { name: 'a NaN gradient value', reason: 'nonfinite', tamper: (r) => { r.embValues[0] = NaN; } },
];

for (const attack of ATTACKS) {
  test(`${attack.name} is refused ('${attack.reason}'), recomputed by another worker; the step gives the reference bytes`, async () => {
    const b = paddedBatch(11);
    const ref = referenceSum(cfg, weights, b);
    const { scheduler, ev } = toyScheduler(cfg);
    const liar = new FakeLink('liar', cfg, () => weights, { tamper: attack.tamper });
    const honest = new FakeLink('honest', cfg, () => weights);
    scheduler.addLink(liar);
    scheduler.addLink(honest);
    const out = await within(scheduler.runStep(0, 0, b, SHARDS, 1024), 30_000, attack.name);
    assert.equal(gradientSha(cfg, out.root), gradientSha(cfg, ref));
    assert.equal(out.root.tokenCount, ref.tokenCount);
    assert.equal(out.root.lossSum, ref.lossSum);
    // the attack really happened, and only the liar was blamed, for this reason
    assert.ok(liar.tasks.length > 0, 'the liar got no task');
    assert.ok(ev.rejected.length > 0, 'nothing was rejected');
    assert.deepEqual([...new Set(ev.rejected.map((e) => `${e.workerId}:${e.reason}`))], [`liar:${attack.reason}`]);
    assert.deepEqual(honest.kicked, []);
  });
}

test('workers that may hold 2 tasks (WorkerLink.depth) get a next one while they compute; one idle worker gets work first; same bytes', async () => {
  const b = paddedBatch(13);
  const want = gradientSha(cfg, referenceSum(cfg, weights, b));
  for (const depth of [undefined, 2]) {
    const { scheduler } = toyScheduler(cfg);
    const links = ['a', 'b'].map((id) => new FakeLink(id, cfg, () => weights, { depth }));
    for (const l of links) scheduler.addLink(l);
    for (let s = 0; s < 2; s++) assert.equal(gradientSha(cfg, (await within(scheduler.runStep(s, 0, b, SHARDS, 1024), 30_000, `depth ${depth} step ${s}`)).root), want);
    // 2 workers, SHARDS (4) shards: 4 one-shard tasks a step
    assert.deepEqual(links.map((l) => l.maxHeld), depth === 2 ? [2, 2] : [1, 1], `depth ${depth}`);
    assert.deepEqual(links.map((l) => l.tasks.length), [4, 4], `depth ${depth}: every worker computed`);
  }
  // a worker that holds 2 next to one that holds 1: each takes a task before the first takes a second
  const { scheduler } = toyScheduler(cfg);
  const deep = new FakeLink('deep', cfg, () => weights, { depth: 2 }), flat = new FakeLink('flat', cfg, () => weights);
  scheduler.addLink(deep);
  scheduler.addLink(flat);
  assert.equal(gradientSha(cfg, (await within(scheduler.runStep(0, 0, b, SHARDS, 1024), 30_000, 'mixed')).root), want);
  assert.equal(deep.maxHeld, 2);
  assert.equal(flat.maxHeld, 1);
  assert.ok(flat.tasks.length >= 1, 'the worker that holds one got none');
});

test('a worker that keeps lying reaches maxStrikes: disconnected, removed and its identity banned', async () => {
  const { scheduler, ev } = toyScheduler(cfg, { maxStrikes: 3, banMs: 60_000 });
  const liar = new FakeLink('ws-1-mallory', cfg, () => weights, { identity: 'mallory', tamper: (r) => { r.tokenCount += 7; } });
  const honest = new FakeLink('honest', cfg, () => weights);
  scheduler.addLink(liar);
  scheduler.addLink(honest);
  const b = paddedBatch(12);
  const want = gradientSha(cfg, referenceSum(cfg, weights, b));
  for (let s = 0; s < 3; s++) assert.equal(gradientSha(cfg, (await within(scheduler.runStep(s, 0, b, SHARDS, 1024), 30_000, `step ${s}`)).root), want);
  assert.equal(ev.rejected.filter((e) => e.workerId === 'ws-1-mallory').length, 3);
  assert.equal(liar.kicked.length, 1);
  assert.deepEqual(scheduler.ids(), ['honest']);
  assert.ok(scheduler.bannedFor('mallory') > 59_000);
  assert.equal(scheduler.bannedFor('honest'), 0);
});

test('a result for a task never given to the worker is a strike (strikeLink), up to a kick and a ban', () => {
  const { scheduler, ev } = toyScheduler(cfg, { maxStrikes: 3 });
  const w = new FakeLink('ws-3-eve', cfg, () => weights, { identity: 'eve' });
  assert.equal(scheduler.addLink(w), true);
  scheduler.strikeLink(w, 'unassigned');
  scheduler.strikeLink(w, 'unassigned');
  assert.equal(scheduler.strikesOf('eve'), 2);
  assert.deepEqual(w.kicked, []);
  scheduler.strikeLink(w, 'unassigned');
  assert.deepEqual(ev.rejected.map((e) => e.reason), ['unassigned', 'unassigned', 'unassigned']);
  assert.equal(w.kicked.length, 1);
  assert.deepEqual(scheduler.ids(), []);
  assert.ok(scheduler.bannedFor('eve') > 0);
});

test('strikes follow the identity across reconnects; a banned identity is refused until the ban is over', () => {
  let now = 1_000_000;
  const { scheduler } = toyScheduler(cfg, { maxStrikes: 3, banMs: 600_000, now: () => now });
  const first = new FakeLink('ws-1-mallory', cfg, () => weights, { identity: 'mallory' });
  scheduler.addLink(first);
  scheduler.strikeLink(first, 'mismatch');
  scheduler.strikeLink(first, 'mismatch');
  // the worker disconnects and comes back: a new connection, the same identity
  scheduler.removeLink(first.id);
  now += 60_000;
  const second = new FakeLink('ws-2-mallory', cfg, () => weights, { identity: 'mallory' });
  assert.equal(scheduler.addLink(second), true);
  assert.equal(scheduler.strikesOf('mallory'), 2);
  // another identity's strikes are its own
  const other = new FakeLink('ws-3-bob', cfg, () => weights, { identity: 'bob' });
  scheduler.addLink(other);
  scheduler.strikeLink(second, 'implausible');
  assert.equal(second.kicked.length, 1);
  assert.deepEqual(scheduler.ids(), ['ws-3-bob']);
  assert.equal(scheduler.bannedFor('mallory'), 600_000);
  assert.equal(scheduler.bannedFor('bob'), 0);
  // a third connection under the banned name is kicked at once
  const third = new FakeLink('ws-4-mallory', cfg, () => weights, { identity: 'mallory' });
  assert.equal(scheduler.addLink(third), false);
  assert.equal(third.kicked.length, 1);
  assert.match(third.kicked[0], /banned/);
  assert.deepEqual(scheduler.ids(), ['ws-3-bob']);
  // the ban ends: welcome back, with a clean slate
  now += 600_001;
  assert.equal(scheduler.bannedFor('mallory'), 0);
  const fourth = new FakeLink('ws-5-mallory', cfg, () => weights, { identity: 'mallory' });
  assert.equal(scheduler.addLink(fourth), true);
  assert.equal(scheduler.strikesOf('mallory'), 0);
});

test('the strike table is bounded: a capacity, and records expire', () => {
  let now = 0;
  const book = new StrikeBook({ maxStrikes: 3, banMs: 1000, memoryMs: 5000, capacity: 100, now: () => now });
  for (let i = 0; i < 10_000; i++) { book.strike(`name-${i}`); now += 1; }
  assert.equal(book.size, 100);
  // the most recent are the ones kept
  assert.equal(book.strikesOf('name-9999'), 1);
  assert.equal(book.strikesOf('name-0'), 0);
  // a ban outlives nothing it should: it is over before its record is forgotten
  book.strike('x', true);
  assert.equal(book.bannedFor('x'), 1000);
  now += 5001;
  assert.equal(book.size, 0);
  assert.equal(book.bannedFor('x'), 0);
});

test('a result for another task (a stale answer) is still refused as stale', async () => {
  const b = paddedBatch(13);
  const { scheduler, ev } = toyScheduler(cfg);
  const liar = new FakeLink('liar', cfg, () => weights, { tamper: (r: ResultMsg) => { r.taskId += 1000; } });
  const honest = new FakeLink('honest', cfg, () => weights);
  scheduler.addLink(liar);
  scheduler.addLink(honest);
  const out = await within(scheduler.runStep(0, 0, b, SHARDS, 1024), 30_000, 'stale');
  assert.equal(gradientSha(cfg, out.root), gradientSha(cfg, referenceSum(cfg, weights, b)));
  assert.ok(ev.rejected.length > 0 && ev.rejected.every((e) => e.workerId === 'liar' && e.reason === 'stale'));
});
