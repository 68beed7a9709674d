/**
 * The optimizer registry (src/optim/registry.ts) is the one list of optimizers: every registered
 * name has its rule file wired into createOptimizer, its state buffers are what the rule declares,
 * and config validation accepts exactly the registered names.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_TRAIN, applyOverrides, validateConfig, type TrainConfig } from '../src/config/index.ts';
import { OPTIMIZERS, OPTIMIZER_NAMES, isOptimizerName } from '../src/optim/registry.ts';
import { createOptimizer, optimizerBufferNames } from '../src/optim/index.ts';
import { UserError } from '../src/util/errors.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const optimDir = path.join(here, '../src/optim');

test('OPTIMIZER_NAMES lists the registry, in order, and each key is its rule\'s name', () => {
  assert.deepEqual([...OPTIMIZER_NAMES], Object.keys(OPTIMIZERS));
  assert.ok(Object.isFrozen(OPTIMIZER_NAMES));
  assert.ok(OPTIMIZER_NAMES.length >= 4);
  for (const name of OPTIMIZER_NAMES) {
    assert.equal(OPTIMIZERS[name].name, name);
    assert.ok(isOptimizerName(name));
  }
  for (const bad of ['lion', 'toString', 'constructor', '', 42, undefined]) assert.equal(isOptimizerName(bad), false, String(bad));
});

test('each registered optimizer comes from its own file under src/optim/rules/', async () => {
  const files = readdirSync(path.join(optimDir, 'rules')).filter((f) => f.endsWith('.ts') && f !== 'index.ts').map((f) => f.slice(0, -3)).sort();
  assert.deepEqual(files, [...OPTIMIZER_NAMES].sort(), 'one rule file per registered optimizer');
  for (const name of OPTIMIZER_NAMES) {
    const mod = (await import(`../src/optim/rules/${name}.ts`)) as Record<string, unknown>;
    assert.equal(mod[name], OPTIMIZERS[name], `src/optim/rules/${name}.ts exports the registered rule`);
  }
});

test('every registered optimizer is wired: a step moves the weights and keeps exactly its buffers', () => {
  const n = 5;
  const w0 = Float32Array.from([0.5, -0.25, 1, -1, 0.125]);
  const g = Float32Array.from([1, -2, 0.5, 3, -0.75]);
  for (const name of OPTIMIZER_NAMES) {
    const train: TrainConfig = { ...DEFAULT_TRAIN, optimizer: name, weight_decay: 0 };
    const opt = createOptimizer(train, n);
    assert.equal(opt.name, name);
    const w = w0.slice();
    opt.step(w, g, 0.01);
    for (let i = 0; i < n; i++) {
      assert.ok(Number.isFinite(w[i]), `${name}[${i}] finite`);
      assert.ok(w[i] !== w0[i], `${name}[${i}] moved`);
      assert.ok(Math.sign(w0[i] - w[i]) === Math.sign(g[i]), `${name}[${i}] moved against the gradient`);
    }
    const st = opt.getState();
    assert.equal(st.name, name);
    assert.equal(st.step, 1);
    assert.deepEqual(Object.keys(st.buffers), [...OPTIMIZERS[name].buffers], `${name}: state buffers`);
    assert.deepEqual([...optimizerBufferNames(name)], [...OPTIMIZERS[name].buffers]);
    for (const [k, b] of Object.entries(st.buffers)) {
      assert.equal(b.length, n, `${name}.${k} length`);
      assert.ok(b.some((x) => x !== 0), `${name}.${k} was updated by the step`);
    }
    // a restored copy continues identically (the buffers named by the rule are the whole state)
    const again = createOptimizer(train, n);
    again.setState(st);
    const wa = w.slice(), wb = w.slice();
    opt.step(wa, g, 0.01);
    again.step(wb, g, 0.01);
    assert.deepEqual(wb, wa, `${name}: state round trip`);
  }
});

test('weight decay reaches every rule (masked entries only)', () => {
  const zero = new Float32Array(2);
  for (const name of OPTIMIZER_NAMES) {
    const opt = createOptimizer({ ...DEFAULT_TRAIN, optimizer: name, weight_decay: 0.5 }, 2, { decayMask: Uint8Array.from([1, 0]) });
    const w = Float32Array.from([2, 2]);
    opt.step(w, zero, 0.1);
    assert.equal(w[0], Math.fround(2 - 0.1 * 0.5 * 2), `${name}: decayed`);
    assert.equal(w[1], 2, `${name}: not decayed where the mask is 0`);
  }
});

test('an unknown optimizer is rejected by config validation with one line naming the field', () => {
  const expected = `x.yaml: field 'train.optimizer' must be one of ${OPTIMIZER_NAMES.join('|')}, got "lion"`;
  assert.throws(() => validateConfig({ train: { optimizer: 'lion' } }, 'x.yaml'), (e: unknown) => {
    assert.ok(e instanceof UserError, `expected UserError, got ${String(e)}`);
    assert.equal(e.message, expected);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
  assert.throws(() => applyOverrides(validateConfig({}, 'x.yaml'), ['train.optimizer=lion']), /--set: field 'train\.optimizer' must be one of/);
  for (const name of OPTIMIZER_NAMES) assert.equal(validateConfig({ train: { optimizer: name } }, 'x.yaml').train.optimizer, name);
  // and createOptimizer itself refuses a name that is not registered
  assert.throws(() => createOptimizer({ ...DEFAULT_TRAIN, optimizer: 'lion' as never }, 2), /unknown optimizer 'lion'/);
});

test('src/optim does not import src/config (config imports the names from the registry)', () => {
  const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true })
    .flatMap((d) => (d.isDirectory() ? walk(path.join(dir, d.name)) : d.name.endsWith('.ts') ? [path.join(dir, d.name)] : []));
  for (const f of walk(optimDir)) {
    const src = readFileSync(f, 'utf8');
    assert.ok(!/from\s+['"][^'"]*\/config\//.test(src), `${path.relative(optimDir, f)} imports src/config`);
  }
});
