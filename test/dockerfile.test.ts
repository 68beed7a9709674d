/**
 * The image, checked offline (this machine has no Docker): the Dockerfile and .dockerignore are
 * parsed (scripts/check-image-layout.ts) and held to what issue 12 asks of the image — the Active
 * LTS Node.js line with a pinned major, an init as PID 1, a numeric non-root user owning the folders
 * vilm writes, production dependencies only, compiled JavaScript from a build stage, no secrets in
 * the build context. Each rule is also shown to fail on a Dockerfile that breaks it.
 *
 * The last test also builds the stages for real, as far as that goes without Docker
 * (scripts/check-image-layout.ts: the build stage's npm ci and scripts/build.mjs, the final stage's
 * npm ci --omit=dev and lib/, then `vilm --version`, `model summary` and `predict` there without
 * tsx): ~40 s with npm's cache warm (it installs --prefer-offline), a few minutes cold.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { checkImageLayout, copyArgs, dockerignore, envPairs, parseDockerfile, type Stage } from '../scripts/check-image-layout.ts';

/** The Node.js line the image runs on: the Active LTS line on 2026-12-02 (see the Dockerfile's comment). */
const NODE_MAJOR = 26;

const DOCKERFILE = readFileSync('Dockerfile', 'utf8');
const DOCKERIGNORE = readFileSync('.dockerignore', 'utf8');

/** What is wrong with this Dockerfile + .dockerignore (empty: nothing). */
function problems(dockerfile: string, ignoreText: string): string[] {
  const out: string[] = [];
  let stages: Stage[];
  try { stages = parseDockerfile(dockerfile); } catch (e) { return [(e as Error).message]; }
  const ignored = dockerignore(ignoreText);
  if (stages.length < 2) out.push('expected a build stage and a runtime stage');
  for (const s of stages) {
    const m = /^node:(\d+)-([a-z]+-)?slim$/.exec(s.image);
    if (!m) out.push(`FROM ${s.image}: expected node:<major>[-<debian>]-slim with a pinned major`);
    else if (Number(m[1]) !== NODE_MAJOR) out.push(`FROM ${s.image}: expected Node.js ${NODE_MAJOR} (the Active LTS line)`);
  }
  const final = stages[stages.length - 1];
  const build = stages.slice(0, -1);
  const ins = (st: Stage, k: string) => st.instructions.filter((i) => i.keyword === k);
  const runs = (st: Stage) => ins(st, 'RUN').map((i) => i.raw);

  // compiled JavaScript: a build stage compiles, the final stage copies lib/ and no sources
  const builder = build.find((st) => runs(st).some((r) => /\bnpm ci\b/.test(r)) && runs(st).some((r) => /\bnode scripts\/build\.mjs\b/.test(r)));
  if (!builder?.name) out.push('no named build stage that runs npm ci and node scripts/build.mjs');
  const fromBuild = ins(final, 'COPY').filter((c) => c.flags.from !== undefined && c.flags.from === builder?.name).map(copyArgs);
  if (!fromBuild.some((c) => c.sources.includes('/app/lib') && /^(\.\/|\/app\/)lib\/?$/.test(c.dest))) out.push('the final stage does not COPY --from=<build> /app/lib ./lib');
  for (const c of ins(final, 'COPY').filter((c) => c.flags.from === undefined)) {
    for (const s of copyArgs(c).sources) {
      if (/^(\.\/)?src\b/.test(s)) out.push(`the final stage copies ${s}: it should run lib/ only`);
    }
  }

  // production dependencies only
  const installs = runs(final).flatMap((r) => r.split(/\s*&&\s*/)).filter((c) => /^npm (ci|install|i)\b/.test(c));
  if (installs.length === 0) out.push('the final stage installs no dependencies');
  for (const c of installs) if (!/^npm ci\b/.test(c) || !/\s--omit=dev\b/.test(c)) out.push(`final stage: '${c}' (expected npm ci --omit=dev)`);

  // an init as PID 1, installed in the final stage
  const entry = ins(final, 'ENTRYPOINT').at(-1)?.json;
  if (!entry) out.push('no exec-form ENTRYPOINT in the final stage');
  else {
    const tini = entry[0] === '/usr/bin/tini' && entry[1] === '--';
    if (!tini) out.push(`ENTRYPOINT ${JSON.stringify(entry)}: expected ["/usr/bin/tini", "--", …] (an init as PID 1)`);
    else if (!runs(final).some((r) => /apt-get install\b[^&]*\btini\b/.test(r))) out.push('ENTRYPOINT uses /usr/bin/tini but the final stage does not apt-get install tini');
    const rest = tini ? entry.slice(2) : entry;
    if (rest[0] !== 'node' || rest[1] !== 'bin/vilm.js') out.push(`ENTRYPOINT runs ${rest.join(' ')}: expected node bin/vilm.js`);
  }

  // a numeric non-root user, the last word on who runs, owning the folders vilm writes
  const users = ins(final, 'USER');
  const user = users.at(-1);
  const um = user && /^(\d+)(?::(\d+))?$/.exec(user.raw);
  if (!um) out.push(`final stage USER ${user?.raw ?? '(none)'}: expected a numeric uid[:gid]`);
  else {
    const [uid, gid] = [Number(um[1]), Number(um[2] ?? um[1])];
    if (uid === 0) out.push('USER 0 is root');
    const last = final.instructions.lastIndexOf(user);
    if (final.instructions.slice(last).some((i) => i.keyword === 'RUN')) out.push('a RUN after the last USER (it would run as the user, or the USER is not final)');
    const env = Object.fromEntries(ins(final, 'ENV').flatMap((e) => envPairs(e.raw)));
    const workdir = ins(final, 'WORKDIR').at(-1)?.raw ?? '/';
    const writable = [path.posix.join(workdir, 'runs'), env.HOME, env.VILM_CACHE_DIR];
    if (!env.HOME || env.HOME === '/') out.push('ENV HOME: the user needs a home of its own');
    if (!env.VILM_CACHE_DIR) out.push('ENV VILM_CACHE_DIR: the cache of `vilm start` needs a writable place');
    const expand = (s: string) => s.replace(/"?\$\{?([A-Z_]+)\}?"?/g, (_, n: string) => env[n] ?? `$${n}`);
    const chowns = runs(final).flatMap((r) => r.split(/\s*&&\s*/)).map(expand).map((c) => /^chown (?:-R )?(\d+):(\d+) (.+)$/.exec(c)).filter((x) => x !== null);
    const mkdirs = runs(final).flatMap((r) => r.split(/\s*&&\s*/)).map(expand).filter((c) => /^mkdir -p /.test(c)).flatMap((c) => c.split(' ').slice(2));
    for (const w of writable.filter(Boolean)) {
      const owned = chowns.some(([, u, g, paths]) => Number(u) === uid && Number(g) === gid && paths.split(' ').some((p) => w === p || w.startsWith(p.replace(/\/?$/, '/'))));
      if (!owned) out.push(`${w} is not chowned to ${uid}:${gid}`);
      const made = mkdirs.some((p) => w === p || p.startsWith(w.replace(/\/?$/, '/'))) || (w === env.HOME && runs(final).some((r) => new RegExp(`useradd\\b.*--home-dir ${w}\\b.*--create-home`).test(r)));
      if (!made) out.push(`${w} is never created`);
    }
  }

  // every COPY source exists and is in the build context
  for (const st of stages) {
    for (const c of ins(st, 'COPY').filter((x) => x.flags.from === undefined)) {
      for (const s of copyArgs(c).sources) {
        const rel = path.posix.normalize(s).replace(/^\.\/?/, '');
        if (!existsSync(rel)) out.push(`COPY ${s}: missing`);
        else if (ignored(rel)) out.push(`COPY ${s}: left out of the build context by .dockerignore`);
      }
    }
  }

  // the build context: no secrets, no local state; what the stages need stays in
  for (const p of ['cluster/k8s/token.txt', 'secret.txt', 'key.pem', 'certs/tls.pem', 'deep/down/secret.txt', '.npmrc', '.env',
    'node_modules/x/index.js', '.git/config', 'runs/a/final.json', '.cache/vilm/x', 'lib/cli/main.js']) {
    if (!ignored(p)) out.push(`.dockerignore lets ${p} into the build context`);
  }
  for (const p of ['package.json', 'package-lock.json', 'bin/launch.js', 'scripts/build.mjs', 'src/cli/main.ts', 'tsconfig.build.json', 'configs/tiny.yaml', 'models/viwiki-tiny', 'data/sample']) {
    if (ignored(p)) out.push(`.dockerignore leaves out ${p}, which the image needs`);
  }
  return out;
}

test('the Dockerfile and .dockerignore meet every rule', () => {
  assert.deepEqual(problems(DOCKERFILE, DOCKERIGNORE), []);
});

test('each rule catches the Dockerfile that breaks it', () => {
  const broken: [string, string, RegExp][] = [
    ['FROM node:26-trixie-slim', 'FROM node:20-slim', /expected Node\.js 26/],
    ['FROM node:26-trixie-slim AS build', 'FROM node:lts-slim AS build', /pinned major/],
    ['USER 10001:10001', 'USER node', /numeric uid/],
    ['USER 10001:10001', 'USER 0', /USER 0 is root/],
    ['chown -R 10001:10001 /app/runs /home/vilm', 'chown -R 10001:10001 /app/runs', /\/home\/vilm is not chowned/],
    ['ENTRYPOINT ["/usr/bin/tini", "--", "node", "bin/vilm.js"]', 'ENTRYPOINT ["node", "bin/vilm.js"]', /an init as PID 1/],
    ['&& apt-get install -y --no-install-recommends tini \\', '&& apt-get install -y --no-install-recommends curl \\', /does not apt-get install tini/],
    ['RUN npm ci --omit=dev --no-audit --no-fund', 'RUN npm ci --no-audit --no-fund', /expected npm ci --omit=dev/],
    ['COPY --from=build /app/lib ./lib', 'COPY src ./src', /does not COPY --from=<build> \/app\/lib|copies src/],
    ['COPY models ./models', 'COPY models ./models\nCOPY no-such-dir ./x', /COPY no-such-dir: missing/],
  ];
  for (const [from, to, why] of broken) {
    assert.ok(DOCKERFILE.includes(from), `the Dockerfile no longer has '${from}': update this test`);
    const p = problems(DOCKERFILE.replace(from, to), DOCKERIGNORE);
    assert.ok(p.some((x) => why.test(x)), `${from} → ${to}: expected a problem matching ${why}, got ${JSON.stringify(p)}`);
  }
  // a RUN after the USER runs as that user (and the USER would not be the last word)
  assert.ok(problems(DOCKERFILE.replace('USER 10001:10001', 'USER 10001:10001\nRUN node -e 1'), DOCKERIGNORE).some((x) => /RUN after the last USER/.test(x)));
  // .dockerignore: a context with the secrets in it, or without what the image needs
  for (const [drop, why] of [['**/*.pem', /key\.pem/], ['cluster/k8s/token.txt\n**/token.txt', /token\.txt/], ['**/.npmrc', /\.npmrc/]] as const) {
    const p = problems(DOCKERFILE, drop.split('\n').reduce((t, l) => t.replace(`${l}\n`, ''), DOCKERIGNORE));
    assert.ok(p.some((x) => why.test(x)), `without ${drop}: ${JSON.stringify(p)}`);
  }
  assert.ok(problems(DOCKERFILE, DOCKERIGNORE + 'models\n').some((x) => /leaves out models|COPY models: left out/.test(x)));
});

test('.dockerignore matching follows Docker: ** at any depth, ! exceptions, the last match wins, parents exclude children', () => {
  const m = dockerignore('scripts\n!scripts/build.mjs\n**/*.pem\nnode_modules\n# comment\n/runs\n');
  assert.equal(m('scripts/bench-step.ts'), true);
  assert.equal(m('scripts/build.mjs'), false);
  assert.equal(m('a/b/c.pem'), true);
  assert.equal(m('c.pem'), true);
  assert.equal(m('node_modules/x/y.js'), true);
  assert.equal(m('src/node_modules.ts'), false);
  assert.equal(m('runs/x'), true);
  assert.equal(m('src/runs'), false);
  assert.equal(m('comment'), false);
});

test('the parser: continuations, comments inside them, flags, exec form, ENV pairs', () => {
  const st = parseDockerfile([
    'FROM node:26-trixie-slim AS build',
    'RUN a \\',
    '# a comment inside the continuation',
    ' && b',
    'COPY --from=build --chown=1:1 /x ./y',
    'ENV A=1 B="two words" \\',
    '    C=/c',
    'ENTRYPOINT ["x", "--"]',
  ].join('\n'));
  assert.equal(st.length, 1);
  assert.equal(st[0].name, 'build');
  const [run, copy, env, entry] = st[0].instructions;
  assert.equal(run.raw, 'a && b');
  assert.deepEqual(copy.flags, { from: 'build', chown: '1:1' });
  assert.deepEqual(copyArgs(copy), { sources: ['/x'], dest: './y' });
  assert.deepEqual(envPairs(env.raw), [['A', '1'], ['B', 'two words'], ['C', '/c']]);
  assert.deepEqual(entry.json, ['x', '--']);
  assert.throws(() => parseDockerfile('RUN x'), /before FROM/);
  assert.throws(() => parseDockerfile('FROM a\nFOO b'), /unknown instruction/);
});

test('production installs get tfjs-core and the backends, never the @tensorflow/tfjs umbrella', () => {
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as Record<string, Record<string, string> | undefined>;
  for (const d of ['@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-cpu', '@tensorflow/tfjs-backend-wasm']) assert.ok(pkg.dependencies?.[d], `dependencies: ${d}`);
  // not even as a devDependency: package-lock marks it "devOptional" then (it is also tfjs-node's
  // dependency), and `npm ci --omit=dev` keeps it when tfjs-node fails to install
  for (const k of ['dependencies', 'devDependencies', 'peerDependencies']) assert.equal(pkg[k]?.['@tensorflow/tfjs'], undefined, `${k}: @tensorflow/tfjs`);
  const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, { optional?: boolean; dev?: boolean; devOptional?: boolean }> };
  const umbrella = lock.packages['node_modules/@tensorflow/tfjs'];
  if (umbrella) assert.equal(umbrella.optional, true, 'package-lock: @tensorflow/tfjs must be reachable only through the optional tfjs-node');
  // and no source imports it
  const offenders: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir)) {
      const p = path.join(dir, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(ts|mjs|js)$/.test(e) && /(?:from\s+|import\s*\(\s*|require\s*\(\s*)'@tensorflow\/tfjs'/.test(readFileSync(p, 'utf8'))) offenders.push(p);
    }
  };
  for (const d of ['src', 'test', 'scripts', 'bin']) walk(d);
  assert.deepEqual(offenders, []);
});

test('the stages, built here as the Dockerfile says: production dependencies and lib/ run vilm without tsx', { timeout: 900_000 }, () => {
  // checkImageLayout throws on: a failing RUN, a COPY source missing or left out of the context,
  // src/ in the final stage, no lib/.built, a dev-only package installed, the umbrella without
  // tfjs-node, and any of the three commands failing (node_modules/tsx is removed before them)
  const r = checkImageLayout();
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
  assert.equal(r.version, pkg.version);
  assert.match(r.summary, /^total: [\d,]+$/m);
  assert.match(r.summary, /tok_embeddings\.weight\s+\[\d+,\d+\]/);
  assert.ok(r.predicted.startsWith('Hà Nội là') && r.predicted.length > 'Hà Nội là'.length + 3, r.predicted);
  // what the system-level lines would do is checked statically above; here they were skipped, not lost
  const final = r.stages.at(-1)!;
  assert.ok(final.ran.some((c) => /^npm ci --omit=dev\b/.test(c)), JSON.stringify(final));
  assert.ok(final.skipped.some((c) => /apt-get install .*tini/.test(c)) && final.skipped.some((c) => /^chown /.test(c)));
  // without tfjs-node (it installs only where libtensorflow can be downloaded, and then brings the
  // umbrella as its own dependency) production node_modules are ~100 MiB; with the umbrella ~340
  if (!r.tfjsNode) assert.ok(r.nodeModulesKiB < 150 * 1024, `node_modules ${Math.round(r.nodeModulesKiB / 1024)} MiB: the umbrella or dev dependencies crept back?`);
});
