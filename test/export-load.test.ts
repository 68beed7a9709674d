import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/index.ts';
import { buildLayout, initParams } from '../src/model/layout.ts';
import { exportSafetensors, loadExported } from '../src/export/index.ts';
import { decodeSafetensors, encodeSafetensors } from '../src/export/safetensors.ts';
import { openTrained, SHIPPED_MODEL_DIR } from '../src/export/model-source.ts';
import { UserError } from '../src/util/errors.ts';

const cfg = loadConfig('configs/test.yaml');
const TOKENIZER = JSON.stringify({ version: '1.0', model: { type: 'BPE', vocab: { 'Việt': 3 } } });

function tmp(): string { return mkdtempSync(path.join(tmpdir(), 'vilm-export-load-')); }

test('export → loadExported gives back the exact float32 weights, config and tokenizer', { timeout: 30_000 }, async () => {
  const dir = tmp();
  try {
    const layout = buildLayout(cfg.model);
    const weights = initParams(layout, cfg.model, 5);
    await exportSafetensors({ config: cfg, weights, step: 17, tokenizerJson: TOKENIZER }, dir);
    const back = loadExported(dir);
    assert.equal(back.dtype, 'F32');
    assert.equal(back.step, 17);
    assert.deepEqual(back.model, cfg.model);
    assert.equal(back.tokenizerJson, TOKENIZER);
    assert.equal(Buffer.compare(Buffer.from(back.weights.buffer), Buffer.from(weights.buffer)), 0, 'bit-exact round trip');
    // and openTrained accepts the directory where a checkpoint is accepted
    const t = openTrained(dir);
    assert.equal(t.format, 'safetensors');
    assert.equal(t.weights.length, layout.total);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('float16 storage: half the bytes, every weight within half-precision rounding', { timeout: 30_000 }, async () => {
  const a = tmp(), b = tmp();
  try {
    const layout = buildLayout(cfg.model);
    const weights = initParams(layout, cfg.model, 6);
    const r32 = await exportSafetensors({ config: cfg, weights, step: 1, tokenizerJson: TOKENIZER }, a, 'F32');
    const r16 = await exportSafetensors({ config: cfg, weights, step: 1, tokenizerJson: TOKENIZER }, b, 'F16');
    assert.ok(r16.bytes < r32.bytes * 0.55, `${r16.bytes} vs ${r32.bytes}`);
    const back = loadExported(b);
    assert.equal(back.dtype, 'F16');
    let maxRel = 0, changed = 0;
    for (let i = 0; i < weights.length; i++) {
      if (back.weights[i] !== weights[i]) changed++;
      if (Math.abs(weights[i]) > 1e-4) maxRel = Math.max(maxRel, Math.abs(back.weights[i] - weights[i]) / Math.abs(weights[i]));
    }
    assert.ok(changed > weights.length / 2, 'float16 really rounds');
    assert.ok(maxRel <= 2 ** -11 + 1e-9, `relative error ${maxRel} beyond half precision`);
  } finally { rmSync(a, { recursive: true, force: true }); rmSync(b, { recursive: true, force: true }); }
});

test('a corrupt or mismatched safetensors file is a one-line error naming the file', { timeout: 30_000 }, async () => {
  const dir = tmp();
  try {
    const layout = buildLayout(cfg.model);
    await exportSafetensors({ config: cfg, weights: initParams(layout, cfg.model, 7), step: 1, tokenizerJson: TOKENIZER }, dir);
    const st = path.join(dir, 'model.safetensors');
    const good = readFileSync(st);
    // truncated
    writeFileSync(st, good.subarray(0, good.length - 10));
    assert.throws(() => loadExported(dir), (e: unknown) => e instanceof UserError && e.message.includes(st) && !e.message.includes('\n'));
    // header length beyond the file
    const huge = Buffer.from(good); huge.writeBigUInt64LE(BigInt(good.length), 0);
    writeFileSync(st, huge);
    assert.throws(() => loadExported(dir), /header length/);
    // a config for another model
    writeFileSync(st, good);
    const c = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...c, d_model: 64 }));
    assert.throws(() => loadExported(dir), /tensor '.*' has shape/);
    // an unknown dtype
    const bad = encodeSafetensors([{ name: 'x', shape: [1], data: new Float32Array([1]) }]);
    const text = bad.toString('latin1').replace('"F32"', '"I64"');
    assert.throws(() => decodeSafetensors(Buffer.from(text, 'latin1'), 'x.safetensors'), /x\.safetensors: .*dtype must be F32 or F16/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('the shipped model is located from the package, not the current directory', () => {
  assert.ok(path.isAbsolute(SHIPPED_MODEL_DIR));
  assert.ok(SHIPPED_MODEL_DIR.endsWith(path.join('models', 'viwiki-tiny')));
  assert.equal(path.dirname(path.dirname(SHIPPED_MODEL_DIR)), path.resolve(import.meta.dirname, '..'));
});

test('vilm train --init DIR starts from exported weights (fresh optimizer); a different model is a one-line error', { timeout: 300_000 }, async () => {
  const { spawnSync } = await import('node:child_process');
  const { preparedData } = await import('./support/fixtures.ts');
  const { weightsSha256 } = await import('../src/train/checkpoint.ts');
  const root = tmp();
  try {
    const data = preparedData(path.join(root, 'prep'));
    const vilm = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', timeout: 200_000 });
    // a source model: 4 trained steps, exported
    let r = vilm('train', '--config', 'configs/test.yaml', '--data', data, '--out', path.join(root, 'a'), '--backend', 'wasm', '--steps', '4', '--test-sequences', '4');
    assert.equal(r.status, 0, r.stderr);
    r = vilm('export', 'safetensors', '--checkpoint', path.join(root, 'a'), '--out', path.join(root, 'hf'));
    assert.equal(r.status, 0, r.stderr);
    const src = loadExported(path.join(root, 'hf'));
    const fresh = initParams(buildLayout(cfg.model), cfg.model, cfg.train.seed);
    assert.notEqual(weightsSha256(src.weights), weightsSha256(fresh), 'the source moved away from the seeded init');
    // zero steps from --init: the run's weights are exactly the exported ones
    r = vilm('train', '--config', 'configs/test.yaml', '--data', data, '--out', path.join(root, 'b'), '--backend', 'wasm', '--steps', '0', '--test-sequences', '4', '--init', path.join(root, 'hf'));
    assert.equal(r.status, 0, r.stderr);
    const b = JSON.parse(readFileSync(path.join(root, 'b', 'final.json'), 'utf8')) as { weightsSha256: string; testLoss: number };
    assert.equal(b.weightsSha256, weightsSha256(src.weights));
    // two steps from --init move on from there, and the loss is below a fresh start's
    r = vilm('train', '--config', 'configs/test.yaml', '--data', data, '--out', path.join(root, 'c'), '--backend', 'wasm', '--steps', '2', '--test-sequences', '4', '--init', path.join(root, 'hf'));
    assert.equal(r.status, 0, r.stderr);
    r = vilm('train', '--config', 'configs/test.yaml', '--data', data, '--out', path.join(root, 'd'), '--backend', 'wasm', '--steps', '2', '--test-sequences', '4');
    assert.equal(r.status, 0, r.stderr);
    const c = JSON.parse(readFileSync(path.join(root, 'c', 'final.json'), 'utf8')) as { weightsSha256: string; testLoss: number };
    const d = JSON.parse(readFileSync(path.join(root, 'd', 'final.json'), 'utf8')) as { weightsSha256: string; testLoss: number };
    assert.notEqual(c.weightsSha256, b.weightsSha256);
    assert.notEqual(c.weightsSha256, d.weightsSha256);
    // the first step's loss is measured on the starting weights: the exported model's, not a fresh init's
    const firstLoss = (run: string) => (readFileSync(path.join(root, run, 'log.jsonl'), 'utf8').split('\n').filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; step?: number; loss?: number }).find((x) => x.type === 'step' && x.step === 1)!.loss!);
    assert.ok(firstLoss('c') < firstLoss('d') - 0.1, `from --init ${firstLoss('c')} vs fresh ${firstLoss('d')}`);
    // a model config that does not match
    r = vilm('train', '--config', 'configs/test.yaml', '--set', 'model.ff_dim=32', '--data', data, '--out', path.join(root, 'e'), '--backend', 'wasm', '--steps', '1', '--init', path.join(root, 'hf'));
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--init .*model\.ff_dim is 64, the run's config says 32/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  } finally { rmSync(root, { recursive: true, force: true }); }
});
