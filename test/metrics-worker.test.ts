import test from 'node:test';
import assert from 'node:assert/strict';
import { createWorkerMetrics } from '../src/metrics/worker.ts';
import { createMetrics } from '../src/metrics/index.ts';
import { startMetricsServer } from '../src/metrics/server.ts';

test('a remote worker\'s own metrics: tasks, shards, bytes, connection; names never clash with the coordinator\'s', async () => {
  const w = createWorkerMetrics({ name: 'gpu-box-1', backend: 'wasm', version: '1.2.3' });
  w.setConnected(true);
  w.recordTask({ microShards: 2, computeSeconds: 0.4, bytesSent: 1000, bytesReceived: 50 });
  w.recordTask({ microShards: 1, computeSeconds: 0.2, bytesSent: 500, bytesReceived: 25 });
  w.recordReconnect();
  const srv = await startMetricsServer({ port: 0, host: '127.0.0.1', registry: w.registry });
  try {
    const text = await (await fetch(`http://127.0.0.1:${srv.port}/metrics`)).text();
    const val = (line: string) => { const m = new RegExp(`^${line.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text); assert.ok(m, line); return Number(m[1]); };
    assert.equal(val('vilm_remote_tasks_total'), 2);
    assert.equal(val('vilm_remote_micro_shards_total'), 3);
    assert.equal(val('vilm_remote_sent_bytes_total'), 1500);
    assert.equal(val('vilm_remote_received_bytes_total'), 75);
    assert.equal(val('vilm_remote_connected'), 1);
    assert.equal(val('vilm_remote_reconnects_total'), 1);
    assert.equal(val('vilm_remote_task_duration_seconds_count'), 2);
    assert.ok(Math.abs(val('vilm_remote_task_duration_seconds_sum') - 0.6) < 1e-9);
    assert.match(text, /^vilm_build_info\{version="1\.2\.3",backend="wasm",node="[^"]+",worker="gpu-box-1"\} 1$/m);
    // the standard Node.js process metrics, under their standard names (no vilm_ prefix)
    assert.match(text, /^process_cpu_seconds_total \S+$/m);
    assert.match(text, /^nodejs_eventloop_lag_seconds \S+$/m);
    assert.doesNotMatch(text, /^vilm_(process|nodejs)_/m);
  } finally { await srv.close(); }
  w.setConnected(false);
  assert.match(await w.registry.metrics(), /^vilm_remote_connected 0$/m);

  // apart from build info and the process metrics, no name is shared with the coordinator registry
  const names = async (r: { getMetricsAsJSON(): Promise<{ name: string }[]> }) => new Set((await r.getMetricsAsJSON()).map((m) => m.name));
  const coord = await names(createMetrics({ processMetrics: false }).registry);
  const worker = await names(createWorkerMetrics({ name: 'x', processMetrics: false }).registry);
  assert.deepEqual([...worker].filter((n) => coord.has(n)), ['vilm_build_info']);
});
