/**
 * The backend registry (src/backend/registry.ts) is the one list of tfjs backends: `auto` order,
 * `--backend` validation and the kernel-fix set of each backend come from it, and it is light
 * enough for the CLI to import without loading tfjs.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { BACKENDS, BACKEND_NAMES, isBackendName, type BackendName } from '../src/backend/registry.ts';
import { UserError } from '../src/util/errors.ts';

test('BACKEND_NAMES lists the registry in auto preference order; each key is its entry\'s name', () => {
  assert.deepEqual([...BACKEND_NAMES], Object.keys(BACKENDS));
  assert.deepEqual([...BACKEND_NAMES], ['tensorflow', 'wasm', 'cpu']);
  assert.ok(Object.isFrozen(BACKEND_NAMES));
  for (const name of BACKEND_NAMES) {
    assert.equal(BACKENDS[name].name, name);
    assert.ok(['wasm', 'cpu', 'none'].includes(BACKENDS[name].kernelFixes), `${name}.kernelFixes`);
  }
  for (const ok of ['auto', ...BACKEND_NAMES]) assert.ok(isBackendName(ok), ok);
  for (const bad of ['webgl', 'toString', '', 1, undefined]) assert.equal(isBackendName(bad), false, String(bad));
  const choices: readonly BackendName[] = ['auto', ...BACKEND_NAMES];
  assert.equal(choices.length, BACKEND_NAMES.length + 1);
});

test('initBackend rejects an unknown name with the list derived from the registry', async () => {
  const { initBackend } = await import('../src/backend/index.ts');
  await assert.rejects(initBackend('webgl' as BackendName), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.equal(e.message, `--backend: must be one of ${['auto', ...BACKEND_NAMES].join('|')}, got 'webgl'`);
    return true;
  });
  assert.equal(await initBackend('cpu'), 'cpu');
});

test('importing the registry (what the CLI does for its choices) does not load tfjs', () => {
  const url = new URL('../src/backend/registry.ts', import.meta.url).href;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e',
    `const r = await import(${JSON.stringify(url)}); console.log(JSON.stringify({ names: r.BACKEND_NAMES, tf: globalThis._tfengine !== undefined }));`,
  ], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out.trim()), { names: [...BACKEND_NAMES], tf: false });
});
