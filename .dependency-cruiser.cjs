/**
 * The architecture, as rules that CI checks (`npm run check:arch`, dependency-cruiser): no import
 * cycles (type-only imports included), and the allowed direction of imports between the folders of
 * src/. Each folder may import only from the folders listed for it; everything else is an error.
 *
 *   util ─┬─ optim, backend, tokenizer, events          (the ground floor: nothing of each other)
 *         ├─ config      → optim (the optimizer names)
 *         ├─ model       → config, backend
 *         ├─ data        → tokenizer, model (the batch type)
 *         ├─ fleet       → config, backend, model, events
 *         ├─ train       → config, backend, model, optim, data, tokenizer, events, fleet
 *         ├─ metrics     → events          report → events
 *         ├─ export      → config, model, train
 *         ├─ start       → config, backend, data, tokenizer, events, train, report
 *         └─ cli         → anything (the only home of commands and of yargs)
 *
 * Inside src/fleet the worker side never imports the coordinator side (the coordinator may run the
 * worker-side compute in its own thread: the in-process worker of `vilm train`).
 */
const ALLOWED = {
  util: [],
  optim: ['util'],
  backend: ['util'],
  tokenizer: ['util'],
  events: ['util'],
  config: ['util', 'optim'],
  model: ['util', 'config', 'backend'],
  data: ['util', 'tokenizer', 'model'],
  fleet: ['util', 'config', 'backend', 'model', 'events'],
  train: ['util', 'config', 'backend', 'model', 'optim', 'data', 'tokenizer', 'events', 'fleet'],
  metrics: ['util', 'events'],
  report: ['util', 'events'],
  export: ['util', 'config', 'model', 'train'],
  start: ['util', 'config', 'backend', 'data', 'tokenizer', 'events', 'train', 'report'],
  cli: null, // may import anything
};

const folderRules = Object.entries(ALLOWED)
  .filter(([, allowed]) => allowed !== null)
  .map(([folder, allowed]) => ({
    name: `${folder}-imports-only-${allowed.length ? allowed.join('-') : 'itself'}`,
    comment: `src/${folder} may import only from ${allowed.length ? allowed.map((a) => `src/${a}`).join(', ') : 'itself'} (see the table at the top of .dependency-cruiser.cjs)`,
    severity: 'error',
    from: { path: `^src/${folder}/` },
    to: { path: '^src/', pathNot: [`^src/${folder}/`, ...allowed.map((a) => `^src/${a}/`)] },
  }));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycles, type-only imports included.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...folderRules,
    {
      name: 'no-cli-outside-cli',
      comment: 'Commands live in src/cli only; feature folders are libraries that never import yargs.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: '^node_modules/yargs' },
    },
    {
      name: 'fleet-worker-side-apart',
      comment: 'src/fleet/worker (thread and remote worker) never imports the coordinator side.',
      severity: 'error',
      from: { path: '^src/fleet/worker/' },
      to: { path: '^src/fleet/coordinator/' },
    },
    {
      name: 'no-test-code-in-src',
      comment: 'Test doubles and fixtures live in test/support; production code cannot reach them.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|scripts)/' },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'Every import resolves.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.mjs', '.js'], exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
};
