/**
 * The config schema (zod, src/config/index.ts): types, ranges and unknown fields refused with one
 * line naming the file and the field; configs/schema.json is the schema's current JSON Schema.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { configJsonSchema, loadConfig, validateConfig } from '../src/config/index.ts';
import { UserError } from '../src/util/errors.ts';

const bad: [unknown, RegExp][] = [
  [{ train: { beta1: 7 } }, /^x\.yaml: field 'train\.beta1' must be < 1, got 7$/],
  [{ train: { momentum: 1.5 } }, /^x\.yaml: field 'train\.momentum' must be < 1, got 1\.5$/],
  [{ train: { steps: 10.5 } }, /^x\.yaml: field 'train\.steps' must be an integer, got 10\.5$/],
  [{ train: { lrr: 1 } }, /^x\.yaml: unknown field 'train\.lrr' \(known: optimizer, lr, /],
  [{ modell: {} }, /^x\.yaml: unknown section 'modell' \(known: model, train\)$/],
  [{ model: { bias: 'yes' } }, /^x\.yaml: field 'model\.bias' must be true or false, got "yes"$/],
  [{ train: { lr: -1 } }, /^x\.yaml: field 'train\.lr' must be > 0, got -1$/],
  [{ train: { lr: 'x' } }, /^x\.yaml: field 'train\.lr' must be a number, got "x"$/],
  [{ train: 5 }, /^x\.yaml: 'train' must be a mapping$/],
  [{ model: { vocab_size: 70000 } }, /^x\.yaml: field 'model\.vocab_size' must be ≤ 65536, got 70000$/],
  [{ train: { min_lr: 1 } }, /^x\.yaml: field 'train\.min_lr' \(1\) must be ≤ train\.lr/],
  [{ model: { d_model: 64, n_heads: 5 } }, /^x\.yaml: model\.d_model \(64\) must be divisible by model\.n_heads \(5\)$/],
  [[1, 2], /^x\.yaml: config must be a YAML mapping/],
];

test('out-of-range, mistyped and unknown fields are refused with one line naming the field', () => {
  for (const [raw, re] of bad) {
    assert.throws(() => validateConfig(raw, 'x.yaml'), (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n'), JSON.stringify(raw));
  }
  // and the good ones: defaults fill what a file leaves out
  const c = validateConfig({ train: { lr: 0.01 } }, 'x.yaml');
  assert.equal(c.train.lr, 0.01);
  assert.equal(c.model.vocab_size, 10000);
  for (const f of ['test', 'tiny', 'sample', 'viwiki']) loadConfig(`configs/${f}.yaml`);
});

test('through the CLI: invalid YAML and a bad field are one line on stderr and a non-zero exit', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vilm-cfg-'));
  try {
    const cases: [string, RegExp][] = [
      ['model: [unclosed', /^vilm: .*broken\.yaml: invalid YAML: /],
      ['train:\n  beta1: 7\n', /^vilm: .*broken\.yaml: field 'train\.beta1' must be < 1, got 7$/],
      ['train:\n  stepz: 7\n', /^vilm: .*broken\.yaml: unknown field 'train\.stepz'/],
    ];
    for (const [text, re] of cases) {
      const f = path.join(dir, 'broken.yaml');
      writeFileSync(f, text);
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'model', 'summary', '--config', f], { encoding: 'utf8', timeout: 100_000 });
      assert.equal(r.status, 1, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr.trim(), re);
    }
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('configs/schema.json is the current JSON Schema of the config (npm run schema writes it)', () => {
  const committed = JSON.parse(readFileSync('configs/schema.json', 'utf8')) as unknown;
  assert.deepEqual(committed, JSON.parse(JSON.stringify(configJsonSchema())), 'stale: run npm run schema');
  const s = committed as { properties: { train: { properties: Record<string, { maximum?: number; exclusiveMaximum?: number }> } }; additionalProperties?: boolean };
  assert.equal(s.properties.train.properties.beta1.exclusiveMaximum, 1);
  assert.equal(s.additionalProperties, false, 'unknown sections are errors in editors too');
});

test('vilm --version prints the package version, from any directory', { timeout: 60_000 }, () => {
  const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
  const r = spawnSync(process.execPath, [path.resolve('bin/vilm.js'), '--version'], { encoding: 'utf8', cwd: tmpdir(), timeout: 50_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), version);
});
