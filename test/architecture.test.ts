/**
 * The architecture check (.dependency-cruiser.cjs): no import cycles, imports between the folders
 * of src/ only in the allowed direction, yargs only in src/cli, test doubles out of src/. Also run
 * by CI as `npm run check:arch`; here it shows in the test summary, and a second run proves the
 * check can fail.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const depcruise = path.resolve('node_modules/dependency-cruiser/bin/dependency-cruise.mjs');

function cruise(cwd: string) {
  return spawnSync(process.execPath, [depcruise, '--config', '.dependency-cruiser.cjs', 'src', 'test', 'scripts'], { cwd, encoding: 'utf8', timeout: 120_000 });
}

test('src has no import cycles and every import follows the folder rules', { timeout: 150_000 }, () => {
  const r = cruise(process.cwd());
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /no dependency violations found \((\d+) modules/);
  const modules = Number(/\((\d+) modules/.exec(r.stdout)![1]);
  assert.ok(modules > 100, `only ${modules} modules cruised`);
});

test('the check fails on a cycle and on an import against the allowed direction', { timeout: 150_000 }, () => {
  const root = mkdtempSync(path.join(tmpdir(), 'vilm-arch-'));
  try {
    cpSync('.dependency-cruiser.cjs', path.join(root, '.dependency-cruiser.cjs'));
    cpSync('tsconfig.json', path.join(root, 'tsconfig.json'));
    for (const d of ['src/events', 'src/fleet', 'test', 'scripts']) mkdirSync(path.join(root, d), { recursive: true });
    // events (the neutral ground) importing the fleet, which imports events: both rules break
    writeFileSync(path.join(root, 'src/events/index.ts'), "import type { F } from '../fleet/index.ts';\nexport type E = F | 1;\n");
    writeFileSync(path.join(root, 'src/fleet/index.ts'), "import type { E } from '../events/index.ts';\nexport type F = E | 2;\n");
    const r = cruise(root);
    assert.notEqual(r.status, 0, r.stdout);
    assert.match(r.stdout, /no-circular/);
    assert.match(r.stdout, /events-imports-only-util/);
  } finally { rmSync(root, { recursive: true, force: true }); }
});
