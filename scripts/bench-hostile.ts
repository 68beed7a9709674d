/**
 * Hostile peers against a training run (issue 9). The same run four times, one after the other: a
 * real `vilm coordinator` (child process, token file, the seed model of configs/tiny.yaml on the
 * sample corpus: real step times, ~1–2 s on this machine) with one real `vilm worker` — alone, with
 * an outsider (no token) in this process hitting the worker port with every hostile kind,
 * continuously, alone again (the outsider is compared with the mean of the quiet runs around it: this
 * VM's speed drifts), and with an insider (the token, misbehaving). The targets apply to the
 * outsider; the insider's cost is reported. The coordinator's CPU and its door process's CPU (the
 * worker port's listener, src/fleet/coordinator/door.ts) are reported apart:
 *
 * The attacker connects from 127.0.0.2 and the insider from 127.0.0.3 (other machines, as far as
 * the coordinator can tell), the honest worker from 127.0.0.1.
 *
 *  - unauthenticated upgrades with a wrong MAC (a flood, 4 at a time), and replays of a captured good
 *    upgrade request;
 *  - slowloris: idle TCP connections kept at the unauthenticated cap, and HTTP requests with
 *    headers past the 8 KiB limit;
 *  - an insider that holds the token and, under a new name each time (so no ban applies), sends
 *    a pointer bomb, a heartbeat padded with a million empty maps, a frame with an altered MAC,
 *    a result for a task it was never given, and stops reading.
 *
 * This process runs at nice 19 while it attacks (see runPhase), so the figures measure what the
 * coordinator spends turning the attacks away, not the attacker's own CPU.
 *
 * Also the per-frame MAC's cost per step against the quiet run's step time (target ≤ 2 %).
 *
 * Printed (table + JSON, default bench-results/hostile.json): training tokens/s with and without the
 * attacker (target ≥ 90 %), /healthz p99 while training (polled every 50 ms from a separate process;
 * target < 100 ms), the coordinator's RSS growth over the run (target < 100 MB), and the bytes the
 * coordinator logged. Exit 1 when a target is missed.
 *
 * `--rate N` caps the outsider at N connection attempts a second in all (default 1000; 0: as fast as
 * this process can): on one 2-core machine an unlimited attacker mostly measures the kernel's and
 * the attacker's own share of the cores (loopback TCP set-up and tear-down is not niced), not the
 * coordinator's cost, which the CPU column shows.
 *
 *   npx tsx scripts/bench-hostile.ts [--steps 20] [--rate 1000] [--config configs/tiny.yaml] [--json PATH]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { setPriority, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Packr } from 'msgpackr';
import { WebSocket } from 'ws';
import { FrameSeal, HEADER, newNonce, sessionKeys, upgradeHeaders } from '../src/fleet/auth.ts';
import { encodeFrame } from '../src/fleet/codec.ts';
import { PROTOCOL_VERSION, type Frame } from '../src/fleet/contract.ts';
import { loadConfig } from '../src/config/index.ts';
import { buildLayout } from '../src/model/layout.ts';
import { writeFileAtomic } from '../src/util/atomic.ts';
import { preparedData } from '../test/support/fixtures.ts';
import { cpuSeconds, doorProcesses } from '../test/support/proc.ts';

const { values: args } = parseArgs({ options: { steps: { type: 'string', default: '20' }, rate: { type: 'string', default: '1000' }, config: { type: 'string', default: 'configs/tiny.yaml' }, json: { type: 'string', default: 'bench-results/hostile.json' } } });
const steps = Number(args.steps);
const dir = mkdtempSync(path.join(tmpdir(), 'vilm-hostile-'));
const token = Buffer.from(Array.from({ length: 32 }, () => Math.floor(Math.random() * 256))).toString('hex');
const tokenFile = path.join(dir, 'token.txt');
writeFileSync(tokenFile, token);
chmodSync(tokenFile, 0o600);
const VILM = ['--import', 'tsx', 'src/cli/main.ts'];

function freePort(): Promise<number> {
  return new Promise((res) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => res(p)); }); });
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** A separate process polling /healthz every 50 ms; prints `sentAtMs answerMs` a line (5000: no answer). */
function poller(port: number): ChildProcess {
  const code = `const http=require('http');setInterval(()=>{const at=Date.now(),t=performance.now();const r=http.get({host:'127.0.0.1',port:${port},path:'/healthz',timeout:5000},(s)=>{s.resume();s.on('end',()=>console.log(at,(performance.now()-t).toFixed(2)))});r.on('error',()=>console.log(at,5000));r.on('timeout',()=>r.destroy())},50)`;
  return spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'ignore'] });
}

interface Phase { tokensPerSecond: number; coordinatorCpuSeconds: number; doorCpuSeconds: number; trainSeconds: number; healthzP99: number; healthzMax: number; rssStartMiB: number; rssEndMiB: number; logBytes: number; attacks: Record<string, number> }

type Attack = 'none' | 'outsider' | 'insider';

async function runPhase(data: string, attack: Attack): Promise<Phase> {
  const out = path.join(dir, attack);
  const metricsPort = await freePort();
  const coord = spawn(process.execPath, [...VILM, 'coordinator', '--workers', '0', '--port', '0', '--token-file', tokenFile, '--metrics-port', String(metricsPort),
    '--config', args.config!, '--set', `train.steps=${steps}`, '--set', 'train.eval_every=1000', '--set', 'train.checkpoint_every=1000', '--data', data, '--out', out, '--fresh'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let logBytes = 0;
  let stderr = '';
  const port = await new Promise<number>((resolve, reject) => {
    coord.stderr!.on('data', (b: Buffer) => {
      logBytes += b.length;
      if (stderr.length < 1e6) stderr += b.toString();
      const m = /vilm-coordinator-port (\d+)/.exec(stderr);
      if (m) resolve(Number(m[1]));
    });
    coord.once('exit', (c) => reject(new Error(`coordinator exited ${c}: ${stderr.slice(-2000)}`)));
  });
  const url = `ws://127.0.0.1:${port}`;
  const worker = spawn(process.execPath, [...VILM, 'worker', '--connect', url, '--token-file', tokenFile, '--name', 'honest'], { stdio: ['ignore', 'ignore', 'ignore'] });
  const polls: [number, number][] = [];
  let poll: ChildProcess | undefined;
  let rssStart: number;
  const attacks: Record<string, number> = {};
  let stopAttack = () => undefined as void;
  // training starts with the first step line of the run log
  const logFile = path.join(out, 'log.jsonl');
  const t0 = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    let text = '';
    try { text = readFileSync(logFile, 'utf8'); } catch { /* not yet */ }
    if (text.includes('"type":"step"')) break;
    if (Date.now() - t0 > 180_000) throw new Error('no training step within 180 s');
  }
  rssStart = rssMiB(coord.pid!);
  const cpu0 = cpuSeconds(coord.pid!);
  let cpuEnd = cpu0;
  const door = [...doorProcesses(coord.pid!).keys()][0];
  const doorCpu0 = door ? cpuSeconds(door) : 0;
  let doorCpuEnd = doorCpu0;
  // the RSS at the end: the last reading while the coordinator still trains
  let rssEnd = rssStart;
  const rssTimer = setInterval(() => { try { const r = rssMiB(coord.pid!); if (Number.isFinite(r)) { rssEnd = r; cpuEnd = cpuSeconds(coord.pid!); if (door) doorCpuEnd = cpuSeconds(door); } } catch { /* exited */ } }, 250);
  poll = poller(metricsPort);
  poll.stdout!.on('data', (b: Buffer) => { for (const l of b.toString().split('\n')) if (l) { const [at, ms] = l.split(' ').map(Number); polls.push([at, ms]); } });
  if (attack !== 'none') {
    // the attacker stands for other machines: at nice 19 it takes only the CPU the run leaves idle
    // on this 2-core machine (unniced, it halves the run by competing for the cores, whatever the
    // coordinator does); what it sends, the coordinator still has to turn away
    setPriority(19);
    stopAttack = startAttacker(url, port, attack, attacks);
  }
  // a deadline: a coordinator that does not finish (a stuck step, a connection keeping it alive) fails the benchmark
  const limitMs = 120_000 + steps * 20_000;
  let killed = false;
  const limit = setTimeout(() => { killed = true; coord.kill('SIGKILL'); }, limitMs);
  const code = await new Promise<number>((r) => coord.once('exit', (c) => r(c ?? 1)));
  clearTimeout(limit);
  if (killed) { stopAttack(); clearInterval(rssTimer); poll.kill(); worker.kill(); throw new Error(`${attack}: the coordinator did not exit within ${limitMs / 1000} s of its first step`); }
  stopAttack();
  clearInterval(rssTimer);
  poll.kill();
  worker.kill();
  if (code !== 0) throw new Error(`coordinator exited ${code}: ${stderr.slice(-2000)}`);
  const recs = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; time: string; tokens?: number });
  const stepRecs = recs.filter((r) => r.type === 'step');
  const span = (Date.parse(stepRecs.at(-1)!.time) - Date.parse(stepRecs[0].time)) / 1000;
  const tokens = stepRecs.slice(1).reduce((a, r) => a + (r.tokens ?? 0), 0);
  // polls sent while training (first to last step): the run's own start and end are not the attacker's doing
  const from = Date.parse(stepRecs[0].time), to = Date.parse(stepRecs.at(-1)!.time);
  const sorted = polls.filter(([at]) => at >= from && at <= to).map(([, ms]) => ms).sort((a, b) => a - b);
  return {
    tokensPerSecond: tokens / span, coordinatorCpuSeconds: cpuEnd - cpu0, doorCpuSeconds: doorCpuEnd - doorCpu0, trainSeconds: span, healthzP99: sorted[Math.floor(0.99 * (sorted.length - 1))] ?? NaN, healthzMax: sorted.at(-1) ?? NaN,
    rssStartMiB: rssStart, rssEndMiB: rssEnd, logBytes, attacks,
  };
}

/** Every hostile kind in loops until stopped; counts what was sent. */
function startAttacker(url: string, port: number, who: 'outsider' | 'insider', count: Record<string, number>): () => void {
  let on = true;
  if (who === 'insider') { startInsider(url, () => on, count); return () => { on = false; }; }
  const bump = (k: string) => { count[k] = (count[k] ?? 0) + 1; };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  // every connection attempt waits its turn: at most `rate` a second in all (0: as fast as it can)
  const rate = Number(args.rate);
  let next = performance.now();
  const gate = async () => {
    if (!(rate > 0)) return;
    const now = performance.now();
    next = Math.max(next, now - 100) + 1000 / rate;
    if (next > now) await sleep(next - now);
  };
  const loops: Promise<void>[] = [];
  // a flood of wrong-MAC upgrades, and replays of one good request
  const good = upgradeHeaders(token, 'replayed', newNonce(), PROTOCOL_VERSION);
  const tryUpgrade = (headers: Record<string, string>) => new Promise<void>((res) => {
    const ws = new WebSocket(url, { headers, localAddress: '127.0.0.2' });
    ws.on('unexpected-response', (_q, r) => { r.resume(); ws.terminate(); res(); });
    ws.on('upgrade', () => { ws.terminate(); res(); });
    ws.on('error', () => res());
  });
  for (let i = 0; i < 4; i++) loops.push((async () => { while (on) { await gate(); await tryUpgrade(upgradeHeaders('0'.repeat(64), 'intruder', newNonce(), PROTOCOL_VERSION)); bump('bad-mac upgrade'); } })());
  loops.push((async () => { while (on) { await gate(); await tryUpgrade(good); bump('replayed upgrade'); await sleep(10); } })());
  // slowloris at the cap, and oversized headers
  const idle = new Set<net.Socket>();
  loops.push((async () => {
    while (on) {
      while (idle.size < 70 && on) { await gate(); const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' }); s.on('error', () => undefined); s.on('close', () => idle.delete(s)); idle.add(s); bump('idle connection'); }
      await sleep(50);
    }
  })());
  loops.push((async () => {
    while (on) {
      await gate();
      await new Promise<void>((res) => { const r = http.get({ host: '127.0.0.1', port, path: '/', localAddress: '127.0.0.2', headers: { 'x-pad': 'a'.repeat(16_000) } }, (s) => { s.resume(); res(); }); r.on('error', () => res()); });
      bump('oversized headers');
    }
  })());
  return () => { on = false; for (const s of idle) s.destroy(); };
}

/**
 * The insider: holds the token and joins under a fresh name each time (so no ban applies), sends
 * one hostile frame kind three times, and leaves 300 ms later — until stopped.
 */
function startInsider(url: string, on: () => boolean, count: Record<string, number>): void {
  const bump = (k: string) => { count[k] = (count[k] ?? 0) + 1; };
  let laugh: unknown = 'ha';
  for (let i = 0; i < 40; i++) laugh = [laugh, laugh];
  const kinds: [string, (send: (b: Uint8Array) => void, seal: (b: Uint8Array) => Uint8Array, raw: WebSocket) => void][] = [
    ['pointer bomb', (send) => send(new Packr({ structuredClone: true }).pack({ t: 'heartbeat', v: laugh, time: 0 }))],
    ['padded heartbeat', (send) => send(new Packr({ useRecords: false }).pack({ t: 'heartbeat', v: PROTOCOL_VERSION, time: 0, pad: Array.from({ length: 1 << 17 }, () => ({})) }))],
    ['altered MAC', (_send, seal, raw) => { const b = Uint8Array.from(seal(encodeFrame({ t: 'heartbeat', v: PROTOCOL_VERSION, time: 0 }))); b[2] ^= 1; raw.send(b); }],
    ['unknown-task result', (send) => send(encodeFrame({ t: 'result', v: PROTOCOL_VERSION, step: 0, version: 0, taskId: 1e9, level: 0, index: 0, empty: true, lossSum: 0, tokenCount: 0, rest: new Float32Array(0), embRows: new Int32Array(0), embValues: new Float32Array(0), computeSeconds: 0 } as Frame))],
    ['not reading', (_send, _seal, raw) => { (raw as unknown as { _socket: net.Socket })._socket?.pause(); }],
  ];
  let n = 0;
  void (async () => {
    while (on()) {
      const [kind, act] = kinds[n % kinds.length];
      const nonce = newNonce();
      const ws = new WebSocket(url, { headers: upgradeHeaders(token, `insider-${n++}`, nonce, PROTOCOL_VERSION), localAddress: '127.0.0.3' });
      ws.on('error', () => undefined);
      await new Promise<void>((res) => {
        ws.on('upgrade', (r) => {
          const seal = new FrameSeal(sessionKeys(token, 'worker', nonce, String(r.headers[HEADER.nonce])).send);
          ws.once('open', () => { for (let i = 0; i < 3; i++) act((b) => ws.send(seal.seal(b)), (b) => seal.seal(b), ws); bump(kind); setTimeout(res, 300); });
        });
        ws.on('close', () => res());
        ws.on('unexpected-response', (_q, r) => { r.resume(); res(); });
      });
      ws.terminate();
    }
  })();
}

/**
 * The per-frame MAC's cost on the coordinator per step, for this config with one remote worker:
 * the weights frame hashed once (shared by every worker) and the trailer, plus opening one result
 * of a full dense gradient (the largest a worker sends). Best of 10.
 */
function macCostMs(): number {
  const cfg = loadConfig(args.config!);
  const total = buildLayout(cfg.model).total;
  const keys = sessionKeys(token, 'coordinator', newNonce(), newNonce());
  const send = new FrameSeal(keys.send), recvSeal = new FrameSeal(keys.send), recv = new FrameSeal(keys.send);
  let best = Infinity;
  for (let i = 0; i < 10; i++) {
    const weights = encodeFrame({ t: 'weights', v: PROTOCOL_VERSION, version: i, weights: new Float32Array(total) });
    const result = recvSeal.seal(encodeFrame({ t: 'weights', v: PROTOCOL_VERSION, version: i, weights: new Float32Array(total) }));
    const t0 = performance.now();
    send.trailer(weights);
    recv.open(result);
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

const data = preparedData(dir);
const rows: [string, Phase][] = [];
try {
  // quiet runs before and after the outsider: this VM's speed drifts by tens of % within minutes,
  // so the outsider is compared with the mean of the two runs around it
  for (const [name, attack] of [['quiet', 'none'], ['outsider', 'outsider'], ['quiet again', 'none'], ['insider', 'insider']] as const) rows.push([name, await runPhase(data, attack)]);
} finally { rmSync(dir, { recursive: true, force: true }); }

const [quiet1, attacked, quiet2, insider] = rows.map(([, p]) => p);
const quietTokensPerSecond = (quiet1.tokensPerSecond + quiet2.tokensPerSecond) / 2;
const ratio = attacked.tokensPerSecond / quietTokensPerSecond;
const growth = attacked.rssEndMiB - attacked.rssStartMiB;
const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
console.log(`attacker rate: ${Number(args.rate) > 0 ? `${args.rate} connection attempts/s` : 'unlimited'}`);
console.log('| run | tokens/s | coordinator CPU s / train s | door process CPU s | /healthz p99 ms | max ms | RSS start → end MiB | log bytes |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |');
for (const [name, p] of rows) console.log(`| ${name} | ${fmt(p.tokensPerSecond, 0)} | ${fmt(p.coordinatorCpuSeconds)} / ${fmt(p.trainSeconds)} | ${fmt(p.doorCpuSeconds)} | ${fmt(p.healthzP99)} | ${fmt(p.healthzMax)} | ${fmt(p.rssStartMiB, 0)} → ${fmt(p.rssEndMiB, 0)} | ${p.logBytes} |`);
console.log(`\noutsider / mean of the quiet runs, tokens/s: ${fmt(ratio * 100)} % (target ≥ 90 %); RSS growth under attack ${fmt(growth)} MiB (target < 100); /healthz p99 under attack ${fmt(attacked.healthzP99)} ms (target < 100)`);
console.log('outsider sent:', JSON.stringify(attacked.attacks));
console.log(`insider / mean of the quiet runs, tokens/s: ${fmt(insider.tokensPerSecond / quietTokensPerSecond * 100)} % (no target: a token holder that joins, takes a task and goes costs that task's time); sent: ${JSON.stringify(insider.attacks)}`);
const mac = macCostMs();
const stepMs = quiet1.trainSeconds * 1000 / (steps - 1);
console.log(`per-frame MAC per step (one remote worker, ${args.config}): ${fmt(mac, 2)} ms = ${fmt(mac / stepMs * 100, 2)} % of the quiet run's ${fmt(stepMs, 0)} ms step (target ≤ 2 %)`);
const pass = ratio >= 0.9 && growth < 100 && attacked.healthzP99 < 100 && mac / stepMs <= 0.02;
writeFileAtomic(args.json!, JSON.stringify({ steps, rate: Number(args.rate), macMsPerStep: mac, stepMs, quiet: quiet1, quietAgain: quiet2, outsider: attacked, insider, ratio, rssGrowthMiB: growth, pass }, null, 2) + '\n');
console.log(`wrote ${args.json}`);
process.exit(pass ? 0 : 1);
