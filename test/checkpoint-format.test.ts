import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { loadConfig } from '../src/config/index.ts';
import { buildLayout, initParams } from '../src/model/layout.ts';
import { createOptimizer } from '../src/optim/index.ts';
import { Rng } from '../src/util/rng.ts';
import { UserError } from '../src/util/errors.ts';
import {
  saveCheckpoint, loadCheckpoint, weightsSha256, encodeCheckpoint, decodeCheckpoint,
  CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE, loadRunCheckpoint, type Checkpoint,
} from '../src/train/checkpoint.ts';

const cfg = loadConfig('configs/test.yaml');
const layout = buildLayout(cfg.model);

function makeCheckpoint(step: number): Checkpoint {
  const weights = initParams(layout, cfg.model, step);
  const opt = createOptimizer(cfg.train, layout.total);
  const g = initParams(layout, cfg.model, 100 + step);
  for (let i = 0; i < step; i++) opt.step(weights, g, 1e-3);
  const rng = new Rng(step);
  rng.next();
  return {
    config: cfg, step, weights, optimizer: opt.getState(),
    sampler: { epoch: 1, position: 17 * step, rng: new Rng(99).getState() },
    rng: rng.getState(),
    tokenizerJson: JSON.stringify({ model: { type: 'BPE', vocab: { 'Việt': 5, 'Nam': 6 } }, note: 'tiếng Việt ✓' }),
    meta: { bestValLoss: 3.25, backend: 'wasm', nested: { a: [1, 2, null] } },
  };
}

const tmp = () => mkdtempSync(path.join(tmpdir(), 'vilm-ckpt-'));

test('save → load round trip is bit-exact for weights, optimizer state, cursors, config, tokenizer, meta', async () => {
  const dir = tmp();
  const ck = makeCheckpoint(3);
  const r = await saveCheckpoint(dir, ck);
  assert.equal(r.file, path.join(dir, CHECKPOINT_FILE));
  assert.equal(r.bytes, readFileSync(r.file).length);
  for (const src of [dir, r.file]) {
    const back = loadCheckpoint(src);
    assert.equal(weightsSha256(back.weights), weightsSha256(ck.weights));
    assert.deepEqual(new Uint8Array(back.weights.buffer), new Uint8Array(ck.weights.buffer));
    assert.equal(back.optimizer.name, 'adam');
    assert.equal(back.optimizer.step, 3);
    assert.deepEqual(Object.keys(back.optimizer.buffers).sort(), ['m', 'v']);
    assert.deepEqual(back.optimizer.buffers.m, ck.optimizer.buffers.m);
    assert.deepEqual(back.optimizer.buffers.v, ck.optimizer.buffers.v);
    assert.deepEqual(back.config, ck.config);
    assert.deepEqual(back.sampler, ck.sampler);
    assert.deepEqual(back.rng, ck.rng);
    assert.equal(back.tokenizerJson, ck.tokenizerJson);
    assert.deepEqual(back.meta, ck.meta);
    assert.equal(back.step, 3);
  }
  // a restored optimizer continues exactly like the original
  const orig = createOptimizer(cfg.train, layout.total); orig.setState(ck.optimizer);
  const rest = createOptimizer(cfg.train, layout.total); rest.setState(loadCheckpoint(dir).optimizer);
  const w1 = ck.weights.slice(), w2 = ck.weights.slice(), g = initParams(layout, cfg.model, 5);
  orig.step(w1, g, 1e-3); rest.step(w2, g, 1e-3);
  assert.equal(weightsSha256(w1), weightsSha256(w2));
  rmSync(dir, { recursive: true });
});

test('weightsSha256 hashes the raw little-endian float32 bytes', () => {
  const w = Float32Array.from([1, -2]);
  // 1.0f = 00 00 80 3f, -2.0f = 00 00 00 c0
  assert.equal(weightsSha256(w), createHash('sha256').update(Buffer.from([0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0])).digest('hex'));
  assert.equal(weightsSha256(w.subarray(1)), createHash('sha256').update(Buffer.from([0, 0, 0, 0xc0])).digest('hex'));
});

test('the previous checkpoint is kept as checkpoint.prev.vilm', async () => {
  const dir = tmp();
  await saveCheckpoint(dir, makeCheckpoint(1));
  await saveCheckpoint(dir, makeCheckpoint(2));
  assert.equal(loadCheckpoint(dir).step, 2);
  assert.equal(loadCheckpoint(path.join(dir, PREVIOUS_CHECKPOINT_FILE)).step, 1);
  await saveCheckpoint(dir, makeCheckpoint(3));
  assert.equal(loadCheckpoint(dir).step, 3);
  assert.equal(loadCheckpoint(path.join(dir, PREVIOUS_CHECKPOINT_FILE)).step, 2);
  assert.deepEqual(readdirSync(dir).sort(), [CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE].sort());
  rmSync(dir, { recursive: true });
});

test('a temp file left by a crashed save is never picked up, and the next save removes it', async () => {
  const dir = tmp();
  await saveCheckpoint(dir, makeCheckpoint(1));
  // a crash mid-write leaves a partial temp file with a newer step
  const partial = encodeCheckpoint(makeCheckpoint(2)).subarray(0, 5000);
  const stale = path.join(dir, `.${CHECKPOINT_FILE}.4242.abc123.tmp`);
  writeFileSync(stale, partial);
  assert.equal(loadCheckpoint(dir).step, 1);
  await saveCheckpoint(dir, makeCheckpoint(3));
  assert.equal(loadCheckpoint(dir).step, 3);
  assert.ok(!readdirSync(dir).includes(path.basename(stale)));
  rmSync(dir, { recursive: true });
});

function expectUserError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected UserError, got ${String(e)}`);
    assert.match(e.message, re);
    assert.equal(e.message.split('\n').length, 1);
    return true;
  });
}

test('truncated and corrupt files give named one-line errors', async () => {
  const dir = tmp();
  const { file } = await saveCheckpoint(dir, makeCheckpoint(2));
  const good = readFileSync(file);
  const bad = path.join(dir, 'bad.vilm');
  const headerLen = Number(good.readBigUInt64LE(8));
  for (const cut of [0, 10, 16 + Math.floor(headerLen / 2), 16 + headerLen + 100, good.length - 1]) {
    writeFileSync(bad, good.subarray(0, cut));
    expectUserError(() => loadCheckpoint(bad), /bad\.vilm: truncated checkpoint/);
  }
  // a flipped data byte
  const flipped = Buffer.from(good); flipped[good.length - 100] ^= 0xff;
  writeFileSync(bad, flipped);
  expectUserError(() => loadCheckpoint(bad), /bad\.vilm: corrupt checkpoint \(data checksum mismatch\)/);
  // not a checkpoint at all
  writeFileSync(bad, Buffer.from('{"not":"a checkpoint"}\n'.repeat(4)));
  expectUserError(() => loadCheckpoint(bad), /not a vilm checkpoint/);
  // extra bytes at the end
  writeFileSync(bad, Buffer.concat([good, Buffer.alloc(8)]));
  expectUserError(() => loadCheckpoint(bad), /corrupt checkpoint \(8 unexpected bytes/);
  // missing path / run dir without a checkpoint
  expectUserError(() => loadCheckpoint(path.join(dir, 'nope')), /no such checkpoint or run directory/);
  const empty = tmp();
  expectUserError(() => loadCheckpoint(empty), /has no checkpoint\.vilm/);
  truncateSync(file, 0);
  expectUserError(() => loadCheckpoint(dir), /truncated checkpoint/);
  rmSync(dir, { recursive: true }); rmSync(empty, { recursive: true });
});

test('tensor sizes are checked against the layout of the checkpoint\'s own config', () => {
  const good = encodeCheckpoint(makeCheckpoint(1));
  const n = Number(good.readBigUInt64LE(8));
  const header = JSON.parse(good.toString('utf8', 16, 16 + n)) as { config: { model: { vocab_size: number } }; headerSha256?: string };
  header.config.model.vocab_size = 256; // same data, but the config now implies a smaller layout
  // a consistent forgery (the header checksum recomputed), so the size check itself is what refuses it
  delete header.headerSha256;
  header.headerSha256 = createHash('sha256').update(JSON.stringify(header)).digest('hex');
  const json = Buffer.from(JSON.stringify(header));
  const pad = ((16 + json.length + 7) & ~7) - 16 - json.length;
  const pre = Buffer.alloc(16); pre.write('VILMCKP1', 0, 'latin1'); pre.writeBigUInt64LE(BigInt(json.length + pad), 8);
  const forged = Buffer.concat([pre, json, Buffer.alloc(pad, 0x20), good.subarray(16 + n)]);
  expectUserError(() => decodeCheckpoint(forged, 'x.vilm'), /x\.vilm: tensor 'weights' has \d+ values, the checkpoint's config needs \d+/);
  // and encoding refuses weights that do not fit the config
  assert.throws(() => encodeCheckpoint({ ...makeCheckpoint(1), weights: new Float32Array(10) }), /layout needs/);
});

test('saves started back to back (not awaited) all land, in order, and the caller may reuse its arrays at once', async () => {
  const dir = tmp();
  const ck = makeCheckpoint(1);
  const sha1 = weightsSha256(ck.weights);
  const p1 = saveCheckpoint(dir, ck);
  ck.weights.fill(0); // encoded already: must not affect the first save
  const p2 = saveCheckpoint(dir, { ...makeCheckpoint(2) });
  const [r1, r2] = await Promise.all([p1, p2]);
  assert.equal(r1.file, r2.file);
  assert.equal(loadCheckpoint(dir).step, 2);
  const prev = loadCheckpoint(path.join(dir, PREVIOUS_CHECKPOINT_FILE));
  assert.equal(prev.step, 1);
  assert.equal(weightsSha256(prev.weights), sha1);
  assert.deepEqual(readdirSync(dir).sort(), [CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE].sort());
  rmSync(dir, { recursive: true });
});

/** Rewrite the JSON header of an encoded checkpoint (keeps the 16-byte prefix and the data section). */
function withHeader(buf: Buffer, edit: (h: Record<string, unknown>) => void): Buffer {
  const n = Number(buf.readBigUInt64LE(8));
  const h = JSON.parse(buf.toString('utf8', 16, 16 + n)) as Record<string, unknown>;
  edit(h);
  let json = Buffer.from(JSON.stringify(h), 'utf8');
  const padded = ((16 + json.length + 7) & ~7) - 16;
  if (padded > json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const pre = Buffer.from(buf.subarray(0, 16));
  pre.writeBigUInt64LE(BigInt(json.length), 8);
  return Buffer.concat([pre, json, buf.subarray(16 + n)]);
}

test('the checksum covers the header too: an edited step or optimizer state is refused; version 1 files still load', () => {
  const ck = makeCheckpoint(4);
  const good = encodeCheckpoint(ck);
  assert.equal(decodeCheckpoint(good, 'x.vilm').step, 4);
  for (const edit of [
    (h: Record<string, unknown>) => { h.step = 40; },
    (h: Record<string, unknown>) => { (h.optimizer as { step: number }).step = 1; },
    (h: Record<string, unknown>) => { ((h.config as { train: { lr: number } }).train).lr = 1; },
  ]) {
    assert.throws(() => decodeCheckpoint(withHeader(good, edit), 'x.vilm'), (e: unknown) => e instanceof UserError && /x\.vilm: corrupt checkpoint \(header checksum mismatch\)/.test(e.message));
  }
  // a version-1 file (no headerSha256) written before this change
  const v1 = withHeader(good, (h) => { delete h.headerSha256; h.version = 1; });
  const back = decodeCheckpoint(v1, 'old.vilm');
  assert.equal(weightsSha256(back.weights), weightsSha256(ck.weights));
});

test('a corrupt latest checkpoint falls back to checkpoint.prev.vilm with a warning', async () => {
  const dir = tmp();
  try {
    await saveCheckpoint(dir, makeCheckpoint(2));
    await saveCheckpoint(dir, makeCheckpoint(3));
    const warnings: string[] = [];
    assert.equal(loadRunCheckpoint(dir, (m) => warnings.push(m)).step, 3);
    assert.equal(warnings.length, 0);
    const latest = path.join(dir, CHECKPOINT_FILE);
    writeFileSync(latest, withHeader(readFileSync(latest), (h) => { h.step = 9; }));
    const ck = loadRunCheckpoint(dir, (m) => warnings.push(m));
    assert.equal(ck.step, 2);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /header checksum mismatch\); falling back to the previous checkpoint .*checkpoint\.prev\.vilm \(step 2\)/);
    // both bad: the latest's error
    truncateSync(path.join(dir, PREVIOUS_CHECKPOINT_FILE), 10);
    assert.throws(() => loadRunCheckpoint(dir, () => undefined), /header checksum mismatch/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
