/**
 * The WebSocket protocol's defences, against a coordinator fleet running the pure-JS toy model
 * (fast): version mismatch, bad authentication, NaN and stale results, oversize frames, a worker
 * that never answers (deadline). The step must still produce the reference bytes. (Hostile peers
 * in depth: ./fleet-hostile.test.ts.)
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { decodeFrame, encodeFrame } from '../src/fleet/codec.ts';
import { PROTOCOL_VERSION, type Frame } from '../src/fleet/contract.ts';
import { finalizeGradient } from '../src/fleet/reduce.ts';
import { TOKEN, batchOf, honest, rawWorker, reference, sha, smallConfig, startFleet, toyWorker } from './support/fleet-harness.ts';

test('a worker speaking another protocol version is refused with a clear message', async () => {
  const { fleet, ev, url } = await startFleet(smallConfig());
  try {
    await assert.rejects(toyWorker({ url, token: TOKEN, retryMs: 0, protocolVersion: 99 }), new RegExp(`refused: protocol version mismatch: the coordinator speaks version ${PROTOCOL_VERSION} \\(update`));
    assert.deepEqual(ev.rejected.map((r) => r.reason), ['protocol']);
    assert.equal(fleet.scheduler.size, 0);
  } finally { await fleet.close('test over'); }
});

test('a wrong token fails authentication in the upgrade; no token at all is refused the same way', async () => {
  const { fleet, ev, url } = await startFleet(smallConfig());
  try {
    await assert.rejects(toyWorker({ url, token: 'f'.repeat(64), retryMs: 0 }), /refused: authentication failed/);
    await assert.rejects(toyWorker({ url, retryMs: 0 }), /refused: authentication failed/);
    assert.deepEqual(ev.rejected.map((r) => r.reason), ['auth', 'auth']);
    assert.equal(fleet.scheduler.size, 0);
  } finally { await fleet.close('test over'); }
});

test('NaN, stale and wrong-shape results are rejected, counted and recomputed elsewhere; the offender is dropped', async () => {
  const cfg = smallConfig();
  const { fleet, ev, url } = await startFleet(cfg, { maxStrikes: 3 });
  try {
    const w = fleet.weights;
    const b = batchOf(4);
    const want = reference(cfg, w, b);
    const good = toyWorker({ url, token: TOKEN, name: 'good', retryMs: 0 });
    let n = 0;
    const bad = rawWorker(url, 'bad', (t) => honest(cfg, w, t, (r) => {
      const k = n++ % 3;
      if (k === 0) r.rest[5] = NaN;
      else if (k === 1) r.step = t.step + 7; // a result for another step
      else r.rest = r.rest.subarray(1); // wrong shape
    }));
    await fleet.scheduler.waitForWorkers(2);
    // several steps: the bad worker gets tasks until its third strike
    for (let s = 0; s < 3; s++) {
      const out = await fleet.runStep(0, b, cfg.train.micro_shards, 1024);
      assert.equal(sha(finalizeGradient(out.root, cfg.model.vocab_size, cfg.model.d_model)), want, `step ${s}`);
    }
    // a NaN is struck once another worker's recomputation contradicts it, so the bad worker may
    // get more tasks in between: every kind of rejection appears, all against it
    assert.deepEqual([...new Set(ev.rejected.map((r) => r.reason))].sort(), ['nonfinite', 'shape', 'stale']);
    assert.ok(ev.rejected.every((r) => r.workerId.includes('bad')));
    assert.ok(ev.reassigned.length >= 3, ev.reassigned.join(','));
    assert.equal(await bad.closed, 4002);
    assert.equal(fleet.scheduler.size, 1);
    await fleet.close('test over');
    await good;
  } finally { await fleet.close('test over'); }
});

test('an oversize frame closes the connection (ws maxPayload) and is counted', async () => {
  const { fleet, ev, url } = await startFleet(smallConfig());
  try {
    const c = rawWorker(url, 'big', () => null);
    await c.opened;
    c.ws.send(new Uint8Array(64 << 20));
    assert.equal(await c.closed, 1009);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(ev.rejected.some((r) => r.reason === 'protocol'));
    assert.equal(fleet.scheduler.size, 0);
  } finally { await fleet.close('test over'); }
});

test('a task never answered misses its deadline and is recomputed by another worker, same bytes', async () => {
  const cfg = smallConfig();
  const { fleet, ev, url } = await startFleet(cfg, { taskDeadlineMs: 300 });
  try {
    const b = batchOf(5);
    const want = reference(cfg, fleet.weights, b);
    const silent = rawWorker(url, 'silent', () => null);
    await fleet.scheduler.waitForWorkers(1);
    const good = toyWorker({ url, token: TOKEN, name: 'good', retryMs: 0 });
    await fleet.scheduler.waitForWorkers(2);
    const out = await fleet.runStep(0, b, cfg.train.micro_shards, 1024);
    assert.equal(sha(finalizeGradient(out.root, cfg.model.vocab_size, cfg.model.d_model)), want);
    assert.ok(ev.reassigned.includes('deadline'));
    silent.ws.terminate();
    await fleet.close('test over');
    await good;
  } finally { await fleet.close('test over'); }
});

test('frame types are looked up as own keys: constructor, __proto__ and toString are unknown types', () => {
  for (const t of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    assert.throws(() => decodeFrame(encodeFrame({ v: PROTOCOL_VERSION, t } as unknown as Frame)), (e: unknown) => e instanceof Error && /unknown frame type/.test(e.message), t);
  }
});

test('the run\'s gradient codec decides the result frame: the other kind disconnects its sender, result16 gives the fp16 reference bytes', async () => {
  const cfg = smallConfig();
  const { fleet, ev, url } = await startFleet(cfg, { gradCodec: 'fp16' });
  try {
    const w = fleet.weights;
    const b = batchOf(4);
    const want = reference(cfg, w, b, 'fp16');
    assert.notEqual(want, reference(cfg, w, b, 'fp32'));
    // a peer answering with fp32 'result' frames (the honest values, the wrong frame)
    const plain = rawWorker(url, 'plain', (t) => honest(cfg, w, t, () => undefined));
    await plain.opened;
    const good = toyWorker({ url, token: TOKEN, name: 'good', retryMs: 0 });
    await fleet.scheduler.waitForWorkers(2);
    const out = await fleet.runStep(0, b, cfg.train.micro_shards, 1024);
    assert.equal(sha(finalizeGradient(out.root, cfg.model.vocab_size, cfg.model.d_model)), want);
    assert.equal(await plain.closed, 4000);
    assert.ok(plain.frames.some((f) => f.t === 'task' && f.codec === 'fp16'), 'tasks name the codec');
    assert.deepEqual(ev.rejected.map((r) => r.reason), ['protocol']);
    assert.equal(fleet.scheduler.size, 1);
    await fleet.close('test over');
    await good;
  } finally { await fleet.close('test over'); }
});

