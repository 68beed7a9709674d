import test from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics, stepParts, BoundedLabels, OTHER_WORKER, STEP_PARTS, ETA_WINDOW } from '../src/metrics/index.ts';
import { spawn } from 'node:child_process';
import { startMetricsServer } from '../src/metrics/server.ts';
import { combineObservers, type StepEvent, type TrainerObserver } from '../src/events/index.ts';

function step(i: number): StepEvent {
  return {
    step: i, loss: 9 - i * 0.1, tokens: 1000 + i, paddedTokens: 1200 + i, bucket: 50, lr: 1e-3 * i, gradNorm: 0.5 + i,
    timing: { total: 0.4, compute: 0.3, waitStragglers: 0.05, reduce: 0.02, optimizer: 0.03, publish: 0.01 }, workers: 2,
  };
}

/** Parse the text exposition into `# TYPE` declarations and sample lines `name{labels} value`. */
function parseExposition(text: string): { types: Map<string, string>; samples: { name: string; labels: string; value: number }[] } {
  const types = new Map<string, string>();
  const samples: { name: string; labels: string; value: number }[] = [];
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) { types.set(t[1], t[2]); continue; }
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    assert.ok(m, `bad exposition line: ${line}`);
    samples.push({ name: m[1], labels: m[2] ?? '', value: Number(m[3]) });
  }
  return { types, samples };
}

function value(s: ReturnType<typeof parseExposition>['samples'], name: string, labels = ''): number {
  const hit = s.find((x) => x.name === name && x.labels === labels);
  assert.ok(hit, `no sample ${name}${labels}`);
  return hit.value;
}

test('observer events show up in the exposition with the right names, types and values', async () => {
  const m = createMetrics({ backend: 'wasm', version: '9.9.9' });
  const o = m.observer;
  // not measured yet: NaN (no point on a graph), not a misleading 0
  const before = parseExposition(await m.registry.metrics()).samples;
  for (const n of ['vilm_validation_loss', 'vilm_test_loss', 'vilm_test_perplexity', 'vilm_eta_seconds', 'vilm_global_step', 'vilm_planned_steps']) {
    assert.ok(Number.isNaN(value(before, n)), `${n} before it is measured`);
  }
  for (let i = 1; i <= 3; i++) o.onStep!(step(i));
  o.onValidation!({ step: 3, loss: 7.25, tokens: 500, lossSe: 0.01, bitsPerByte: 2.4, bitsPerByteSe: 0.004, sequences: 8, trainSeconds: 1, whole: false });
  o.onTest!({ step: 3, loss: 7.5, ppl: Math.exp(7.5), bitsPerByte: 2.5 });
  o.onWorkers!({ inprocess: 0, thread: 2, ws: 1 });
  o.onWorkerResult!({ step: 1, workerId: 'w1', transport: 'thread', microShards: 3, computeSeconds: 1.5, bytesSent: 100, bytesReceived: 4000 });
  o.onWorkerResult!({ step: 1, workerId: 'w1', transport: 'thread', microShards: 1, computeSeconds: 0.5, bytesSent: 50, bytesReceived: 2000 });
  o.onWorkerResult!({ step: 1, workerId: 'r1', transport: 'ws', microShards: 2, computeSeconds: 2, bytesSent: 70, bytesReceived: 3000 });
  o.onReassigned!({ count: 2, reason: 'deadline' });
  o.onRejected!({ workerId: 'r1', reason: 'nonfinite' });
  o.onCheckpoint!({ step: 3, seconds: 0.2, bytes: 123456 });

  const { types, samples } = parseExposition(await m.registry.metrics());
  const expectTypes: Record<string, string> = {
    vilm_tokens_total: 'counter', vilm_padded_tokens_total: 'counter', vilm_steps_total: 'counter',
    vilm_step_duration_seconds: 'histogram', vilm_step_part_duration_seconds: 'histogram',
    vilm_loss: 'gauge', vilm_validation_loss: 'gauge', vilm_test_loss: 'gauge', vilm_gradient_norm: 'gauge', vilm_learning_rate: 'gauge',
    vilm_workers_connected: 'gauge', vilm_worker_micro_shards_total: 'counter', vilm_worker_compute_seconds_total: 'counter',
    vilm_network_sent_bytes_total: 'counter', vilm_network_received_bytes_total: 'counter',
    vilm_micro_shards_reassigned_total: 'counter', vilm_results_rejected_total: 'counter',
    vilm_checkpoint_duration_seconds: 'histogram', vilm_build_info: 'gauge',
    vilm_global_step: 'gauge', vilm_planned_steps: 'gauge', vilm_eta_seconds: 'gauge',
    // the standard Node.js process metrics, under their usual names (no vilm_ prefix)
    process_cpu_seconds_total: 'counter', process_resident_memory_bytes: 'gauge', process_start_time_seconds: 'gauge',
    nodejs_eventloop_lag_seconds: 'gauge', nodejs_heap_size_used_bytes: 'gauge', nodejs_gc_duration_seconds: 'histogram',
  };
  for (const [name, type] of Object.entries(expectTypes)) assert.equal(types.get(name), type, name);
  // our own metrics carry one prefix, process metrics the standard names; counters end in _total
  for (const [name, type] of types) {
    assert.ok(/^(vilm|process|nodejs)_/.test(name), name);
    assert.ok(!/^vilm_(process|nodejs)_/.test(name), `${name}: process metrics keep their standard names`);
    if (type === 'counter') assert.ok(name.endsWith('_total'), name);
  }
  assert.ok(![...types.keys()].some((n) => /per_second|tokens_per/.test(n)), 'no throughput gauge: rate() derives it');

  assert.equal(value(samples, 'vilm_steps_total'), 3);
  assert.equal(value(samples, 'vilm_global_step'), 3);
  assert.equal(value(samples, 'vilm_tokens_total'), 1001 + 1002 + 1003);
  assert.equal(value(samples, 'vilm_padded_tokens_total'), 1201 + 1202 + 1203);
  assert.equal(value(samples, 'vilm_loss'), 9 - 0.3);
  assert.equal(value(samples, 'vilm_learning_rate'), 3e-3);
  assert.equal(value(samples, 'vilm_gradient_norm'), 3.5);
  assert.equal(value(samples, 'vilm_validation_loss'), 7.25);
  assert.ok(Math.abs(value(samples, 'vilm_test_perplexity') - Math.exp(7.5)) < 1e-6);
  assert.equal(value(samples, 'vilm_step_duration_seconds_count'), 3);
  assert.ok(Math.abs(value(samples, 'vilm_step_duration_seconds_sum') - 1.2) < 1e-9);
  assert.ok(Math.abs(value(samples, 'vilm_step_part_duration_seconds_sum', '{part="reduce"}') - 0.06) < 1e-9);
  assert.equal(value(samples, 'vilm_step_part_duration_seconds_count', '{part="wait_stragglers"}'), 3);
  assert.equal(value(samples, 'vilm_workers_connected', '{transport="thread"}'), 2);
  assert.equal(value(samples, 'vilm_workers_connected', '{transport="ws"}'), 1);
  assert.equal(value(samples, 'vilm_workers_connected', '{transport="inprocess"}'), 0);
  assert.equal(value(samples, 'vilm_worker_micro_shards_total', '{worker="w1"}'), 4);
  assert.equal(value(samples, 'vilm_worker_compute_seconds_total', '{worker="r1"}'), 2);
  assert.equal(value(samples, 'vilm_network_sent_bytes_total', '{transport="thread"}'), 150);
  assert.equal(value(samples, 'vilm_network_received_bytes_total', '{transport="ws"}'), 3000);
  assert.equal(value(samples, 'vilm_micro_shards_reassigned_total', '{reason="deadline"}'), 2);
  // reasons that never happened are exported as 0 (so panels show 0, not "no data")
  assert.equal(value(samples, 'vilm_micro_shards_reassigned_total', '{reason="died"}'), 0);
  assert.equal(value(samples, 'vilm_results_rejected_total', '{reason="nonfinite"}'), 1);
  assert.equal(value(samples, 'vilm_results_rejected_total', '{reason="auth"}'), 0);
  assert.equal(value(samples, 'vilm_checkpoint_duration_seconds_count'), 1);
  assert.equal(value(samples, 'vilm_checkpoint_size_bytes'), 123456);
  assert.equal(value(samples, 'vilm_build_info', `{version="9.9.9",backend="wasm",node="${process.version}"}`), 1);

  m.setBackend('tensorflow');
  const after = parseExposition(await m.registry.metrics()).samples.filter((s) => s.name === 'vilm_build_info');
  assert.equal(after.length, 1);
  assert.match(after[0].labels, /backend="tensorflow"/);
  // the trainer's start event carries the resolved backend ('auto' never reaches the metric)
  m.observer.onStart?.({ backend: 'cpu', workers: 2, config: {}, step: 3, steps: 10 });
  const started = parseExposition(await m.registry.metrics()).samples.filter((s) => s.name === 'vilm_build_info');
  assert.equal(started.length, 1);
  assert.match(started[0].labels, /backend="cpu"/);
});

test('global step, planned steps and ETA: the run\'s step (continues on resume), the plan, time left from the recent steps', async () => {
  let clock = 0;
  const m = createMetrics({ processMetrics: false, now: () => clock });
  const read = async () => parseExposition(await m.registry.metrics()).samples;
  // a resumed run: it starts at step 40 of 100
  m.observer.onStart!({ backend: 'wasm', workers: 2, config: {}, step: 40, steps: 100 });
  let s = await read();
  assert.equal(value(s, 'vilm_global_step'), 40);
  assert.equal(value(s, 'vilm_planned_steps'), 100);
  assert.ok(Number.isNaN(value(s, 'vilm_eta_seconds')), 'no ETA before a step');
  assert.equal(value(s, 'vilm_steps_total'), 0, 'steps_total counts this process\'s steps');
  // the first step took 1 s (from the start event): 59 steps left
  clock = 1000;
  m.observer.onStep!(step(41));
  s = await read();
  assert.equal(value(s, 'vilm_global_step'), 41);
  assert.equal(value(s, 'vilm_steps_total'), 1);
  assert.ok(Math.abs(value(s, 'vilm_eta_seconds') - 59) < 1e-9, String(value(s, 'vilm_eta_seconds')));
  // then steps of 3 s (an evaluation, say): after ETA_WINDOW of them the 1 s step is out of the window
  for (let i = 42; i < 42 + ETA_WINDOW; i++) { clock += 3000; m.observer.onStep!(step(i)); }
  const at = 41 + ETA_WINDOW;
  s = await read();
  assert.equal(value(s, 'vilm_global_step'), at);
  assert.ok(Math.abs(value(s, 'vilm_eta_seconds') - (100 - at) * 3) < 1e-9, String(value(s, 'vilm_eta_seconds')));
  // one step more inside the window mixes 1 s and 3 s steps: the mean of the last ETA_WINDOW
  clock += 1000;
  m.observer.onStep!(step(at + 1));
  s = await read();
  const mean = (3 * (ETA_WINDOW - 1) + 1) / ETA_WINDOW;
  assert.ok(Math.abs(value(s, 'vilm_eta_seconds') - (100 - at - 1) * mean) < 1e-9);
  // the test split scored: the run is done
  m.observer.onTest!({ step: 100, loss: 3, ppl: Math.exp(3), bitsPerByte: 1 });
  s = await read();
  assert.equal(value(s, 'vilm_eta_seconds'), 0);
  assert.equal(value(s, 'vilm_test_loss'), 3);
});

test('step parts are disjoint: per step and in the exposition they sum to the step duration', async () => {
  const timings = [
    { total: 0.4, compute: 0.3, waitStragglers: 0.05, reduce: 0.02, optimizer: 0.03, publish: 0.01 },
    { total: 1.25, compute: 1.1, waitStragglers: 0.9, reduce: 0.001, optimizer: 0.1, publish: 0.002 },
    { total: 0.010, compute: 0.004, waitStragglers: 0, reduce: 0.0005, optimizer: 0.003, publish: 0.0001 },
  ];
  for (const t of timings) {
    const p = stepParts(t);
    assert.deepEqual(Object.keys(p).sort(), [...STEP_PARTS].sort());
    for (const part of STEP_PARTS) assert.ok(p[part] >= 0, `${part} >= 0`);
    const sum = STEP_PARTS.reduce((a, part) => a + p[part], 0);
    assert.ok(Math.abs(sum - t.total) < 1e-12, `parts sum to ${sum}, step ${t.total}`);
    // compute no longer contains the wait for stragglers
    assert.ok(Math.abs(p.compute + p.wait_stragglers - t.compute) < 1e-12);
    assert.equal(p.wait_stragglers, t.waitStragglers);
  }
  const m = createMetrics({ processMetrics: false });
  timings.forEach((t, i) => m.observer.onStep!({ ...step(i + 1), timing: t }));
  const { samples } = parseExposition(await m.registry.metrics());
  const partSums = STEP_PARTS.map((part) => value(samples, 'vilm_step_part_duration_seconds_sum', `{part="${part}"}`));
  const total = value(samples, 'vilm_step_duration_seconds_sum');
  assert.ok(Math.abs(partSums.reduce((a, b) => a + b, 0) - total) < 1e-9, `${partSums.join(' + ')} vs ${total}`);
  assert.ok(value(samples, 'vilm_step_part_duration_seconds_sum', '{part="other"}') > 0, 'the rest of the step is a part of its own');
});

test('per-worker labels are capped: ids past the cap fold into "other"', async () => {
  const m = createMetrics({ maxWorkerLabels: 3, processMetrics: false });
  for (let i = 0; i < 10; i++) {
    m.observer.onWorkerResult!({ step: 1, workerId: `w${i}`, transport: 'ws', microShards: 1, computeSeconds: 1, bytesSent: 1, bytesReceived: 1 });
  }
  // an early id keeps its own label when it comes back
  m.observer.onWorkerResult!({ step: 1, workerId: 'w1', transport: 'ws', microShards: 5, computeSeconds: 1, bytesSent: 1, bytesReceived: 1 });
  const { samples } = parseExposition(await m.registry.metrics());
  const shards = samples.filter((s) => s.name === 'vilm_worker_micro_shards_total');
  assert.deepEqual(shards.map((s) => s.labels).sort(), ['{worker="other"}', '{worker="w0"}', '{worker="w1"}', '{worker="w2"}']);
  assert.equal(value(samples, 'vilm_worker_micro_shards_total', '{worker="other"}'), 7);
  assert.equal(value(samples, 'vilm_worker_micro_shards_total', '{worker="w1"}'), 6);
  assert.equal(m.workerLabel('w9'), OTHER_WORKER);
  // a worker literally named "other" cannot take a slot of its own
  const b = new BoundedLabels(2);
  assert.equal(b.label(OTHER_WORKER), OTHER_WORKER);
  assert.equal(b.size, 0);
  assert.throws(() => new BoundedLabels(0));
});

test('metrics server: /metrics, /healthz, /readyz (follows setReady), 404, 405; busy port is a one-line UserError', async () => {
  const m = createMetrics({ processMetrics: false });
  m.observer.onStep!(step(1));
  const srv = await startMetricsServer({ port: 0, host: '127.0.0.1', registry: m.registry, ready: false });
  try {
    const base = `http://127.0.0.1:${srv.port}`;
    const metrics = await fetch(`${base}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    assert.match(await metrics.text(), /^vilm_steps_total 1$/m);
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 503);
    srv.setReady(true);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);

    await assert.rejects(
      startMetricsServer({ port: srv.port, host: '127.0.0.1', registry: m.registry }),
      (e: Error) => e.name === 'UserError' && /metrics port 127\.0\.0\.1:\d+: cannot listen \(EADDRINUSE\)/.test(e.message) && !e.message.includes('\n'),
    );
  } finally {
    await srv.close();
  }
  await assert.rejects(fetch(`http://127.0.0.1:${srv.port}/healthz`));
});

/** Polls URL every 20 ms in a child process; on stdin's end prints [[received at (ms since epoch), status, body], …]. */
const POLLER = `
const seen = []; let stop = false;
process.stdin.on('data', () => {}); process.stdin.on('end', () => { stop = true; });
(async () => {
  while (!stop) {
    try { const r = await fetch(process.argv[1], { signal: AbortSignal.timeout(5000) }); seen.push([Date.now(), r.status, await r.text()]); } catch { seen.push([Date.now(), 0, '']); }
    await new Promise((r) => setTimeout(r, 20));
  }
  process.stdout.write(JSON.stringify(seen));
})();`;

test('metrics server: /healthz is answered while the main thread is blocked, and turns 503 once the block outlasts the stall limit', { timeout: 60_000 }, async () => {
  const m = createMetrics({ processMetrics: false });
  const srv = await startMetricsServer({ port: 0, host: '127.0.0.1', registry: m.registry, stallLimitMs: 600 });
  const child = spawn(process.execPath, ['-e', POLLER, `http://127.0.0.1:${srv.port}/healthz`], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  const exited = new Promise((r) => child.once('exit', r));
  try {
    // wait (≤ 20 s) for the poller's first answer, then block this thread for 2 s
    for (const end = Date.now() + 20_000; !child.exitCode && Date.now() < end;) {
      await new Promise((r) => setTimeout(r, 50));
      if (await fetch(`http://127.0.0.1:${srv.port}/healthz`).then((r) => r.ok, () => false)) break;
    }
    await new Promise((r) => setTimeout(r, 300));
    const blockedFrom = Date.now();
    while (Date.now() - blockedFrom < 2_000) { /* the main thread does nothing else */ }
    const blockedTo = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    child.stdin!.end();
    await Promise.race([exited, new Promise((_, rej) => setTimeout(() => rej(new Error('poller did not exit')), 10_000))]);
    const seen = JSON.parse(out) as [number, number, string][];
    const during = seen.filter(([t]) => t > blockedFrom + 50 && t < blockedTo - 50);
    // answered during the block (a server on the main thread could not answer before it ended),
    // first "ok", then 503 naming the block once it passed the 600 ms limit
    assert.ok(during.some(([t, st]) => st === 200 && t < blockedFrom + 500), JSON.stringify(during.slice(0, 5)));
    const late = during.filter(([t]) => t > blockedFrom + 800);
    assert.ok(late.length > 0 && late.every(([, st, body]) => st === 503 && /^main event loop blocked for \d+\.\d s\n$/.test(body)), JSON.stringify(late.slice(0, 5)));
    // live again after it
    assert.equal((await fetch(`http://127.0.0.1:${srv.port}/healthz`)).status, 200);
  } finally {
    child.kill();
    await srv.close();
  }
});

test('combineObservers fans each event out to every observer that handles it', () => {
  const seen: string[] = [];
  const a: TrainerObserver = { onStep: (e) => seen.push(`a${e.step}`) };
  const b: TrainerObserver = { onStep: (e) => seen.push(`b${e.step}`), onValidation: (e) => seen.push(`bv${e.step}`) };
  const c = combineObservers(a, b);
  c.onStep!(step(4));
  c.onValidation!({ step: 5, loss: 1, tokens: 1, lossSe: 0.01, bitsPerByte: 2.4, bitsPerByteSe: 0.004, sequences: 8, trainSeconds: 1, whole: false });
  assert.equal(c.onRejected, undefined);
  assert.deepEqual(seen, ['a4', 'b4', 'bv5']);
});

test('serveCoordinatorMetrics: one call gives the observer and a server that turns ready', async () => {
  const { serveCoordinatorMetrics } = await import('../src/metrics/coordinator.ts');
  const m = await serveCoordinatorMetrics({ port: 0, host: '127.0.0.1', backend: 'wasm' });
  try {
    const base = `http://127.0.0.1:${m.port}`;
    assert.equal((await fetch(`${base}/readyz`)).status, 503);
    m.observer.onStep!(step(1));
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const text = await (await fetch(`${base}/metrics`)).text();
    assert.match(text, /^vilm_steps_total 1$/m);
    assert.match(text, /^vilm_build_info\{[^}]*backend="wasm"/m);
  } finally { await m.close(); }
  const n = await serveCoordinatorMetrics({ port: 0, host: '127.0.0.1' });
  n.markReady();
  assert.equal((await fetch(`http://127.0.0.1:${n.port}/readyz`)).status, 200);
  await n.close();
});
