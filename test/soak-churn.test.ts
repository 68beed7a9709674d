/**
 * The short version of the churn soak (scripts/soak-churn.ts, issue 10): 2 worker threads and 2
 * WebSocket worker processes killed and replaced at random for 45 s while the real model trains.
 * Asserted: the weights equal a fault-free run stopped at the same step, the run trained (loss
 * fell), workers really were killed, and /healthz never failed to answer. The time and memory
 * figures (/healthz within 100 ms, RSS within 10 %) are the full soak's, read from its table —
 * timings are not asserted in tests.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-soak-test-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

interface SoakJson {
  steps: number; kills: { thread: number; ws: number }; weightsSha256: string; faultFreeSha256: string;
  lossFirst10: number; lossLast10: number; healthzMs: { polls: number; failed: number };
  checks: { sameBytes: boolean; trained: boolean; churned: boolean };
}

test('churn soak, short: random kills of threads and worker processes leave the bytes of a fault-free run', { timeout: 600_000 }, () => {
  const json = path.join(root, 'soak.json');
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/soak-churn.ts', '--threads', '2', '--ws', '2', '--minutes', '0.75',
    '--rss-after', '10', '--kill-every', '1.5', '--json', json], { encoding: 'utf8', timeout: 540_000 });
  assert.ok(r.status === 0 || r.status === 1, `soak script crashed (status ${r.status}): ${r.stderr.slice(-2000)}`);
  const s = JSON.parse(readFileSync(json, 'utf8')) as SoakJson;
  assert.ok(s.kills.thread > 0 && s.kills.ws > 0, `kills: ${JSON.stringify(s.kills)}`);
  assert.ok(s.checks.churned);
  assert.ok(s.steps >= 20, `only ${s.steps} steps`);
  assert.equal(s.weightsSha256, s.faultFreeSha256);
  assert.ok(s.checks.sameBytes && s.checks.trained);
  assert.ok(s.lossLast10 < s.lossFirst10, `loss ${s.lossFirst10} → ${s.lossLast10}`);
  assert.ok(s.healthzMs.polls > 100, `${s.healthzMs.polls} polls`);
  assert.equal(s.healthzMs.failed, 0);
});
