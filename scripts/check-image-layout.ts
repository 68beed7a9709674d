/**
 * The Dockerfile, checked without Docker: `node --import tsx scripts/check-image-layout.ts [--keep]`
 *
 * This machine has no Docker daemon, so this does what the Dockerfile's stages do, as far as that
 * is possible without a container, in a temp folder per stage, driven by the Dockerfile itself:
 *  - COPY from the build context honours .dockerignore; COPY --from=<stage> copies from that stage;
 *  - RUN: the project-level commands (npm …, node …, test …) run as written, inside the stage's
 *    WORKDIR; system-level ones (apt-get, useradd, chown …, `npm cache clean` which would empty
 *    this machine's cache) are listed as skipped — test/dockerfile.test.ts checks those statically;
 *  - ENV is applied to what runs, container paths mapped into the temp folder.
 * Then, in the final stage's folder: no src/, no dev-only package (per package-lock.json), no
 * TypeScript loader needed (node_modules/tsx is removed first: launching must take lib/), and the
 * ENTRYPOINT (after tini) answers `--version`, `model summary` and `predict`.
 *
 * Prints a summary (timings, sizes). test/dockerfile.test.ts calls checkImageLayout(); the parser
 * and the .dockerignore matcher are exported for it too.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));

// -------------------------------------------------------------------------------------------------
// Dockerfile parsing (the subset of the syntax this project uses, strictly: anything else throws)

export interface Instruction {
  /** upper-case keyword: FROM, RUN, COPY, … */
  keyword: string;
  /** --name=value flags (COPY --from=build, FROM --platform=…) */
  flags: Record<string, string>;
  /** the arguments after the flags, as written (continuations joined with a space) */
  raw: string;
  /** exec (JSON) form, when the arguments are a JSON array of strings */
  json?: string[];
  /** 1-based line of the keyword */
  line: number;
}

export interface Stage {
  image: string;
  name?: string;
  instructions: Instruction[];
}

const KEYWORDS = new Set(['FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL']);

/** Instructions in order: comments dropped, `\` continuations joined (comment lines inside them skipped, as Docker does). */
export function parseInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i].trim();
    if (first === '' || first.startsWith('#')) continue;
    const start = i + 1;
    let joined = '';
    let cur = lines[i];
    for (;;) {
      const t = cur.replace(/\s+$/, '');
      if (t.endsWith('\\')) {
        joined += t.slice(0, -1) + ' ';
        // the next non-comment line continues this instruction
        do { i++; } while (i < lines.length && /^\s*#/.test(lines[i]));
        if (i >= lines.length) throw new Error(`Dockerfile:${start}: a continuation runs past the end of the file`);
        cur = lines[i];
      } else { joined += t; break; }
    }
    const m = /^\s*([A-Za-z]+)(?:\s+([\s\S]*))?$/.exec(joined);
    if (!m) throw new Error(`Dockerfile:${start}: cannot read '${joined.slice(0, 60)}'`);
    const keyword = m[1].toUpperCase();
    if (!KEYWORDS.has(keyword)) throw new Error(`Dockerfile:${start}: unknown instruction ${m[1]}`);
    let rest = (m[2] ?? '').trim().replace(/\s+/g, ' ');
    const flags: Record<string, string> = {};
    for (let f = /^--([a-z-]+)=(\S+)\s*/.exec(rest); f; f = /^--([a-z-]+)=(\S+)\s*/.exec(rest)) {
      flags[f[1]] = f[2];
      rest = rest.slice(f[0].length);
    }
    let json: string[] | undefined;
    if (rest.startsWith('[')) {
      try {
        const v = JSON.parse(rest) as unknown;
        if (Array.isArray(v) && v.every((x) => typeof x === 'string')) json = v;
      } catch { /* shell form that starts with '[' */ }
    }
    out.push({ keyword, flags, raw: rest, json, line: start });
  }
  return out;
}

/** The stages: each FROM starts one (`FROM image [AS name]`). */
export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  for (const ins of parseInstructions(text)) {
    if (ins.keyword === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.raw);
      if (!m) throw new Error(`Dockerfile:${ins.line}: FROM ${ins.raw}`);
      stages.push({ image: m[1], name: m[2], instructions: [] });
    } else if (ins.keyword === 'ARG' && stages.length === 0) {
      throw new Error(`Dockerfile:${ins.line}: ARG before FROM is not supported by this checker`);
    } else {
      if (stages.length === 0) throw new Error(`Dockerfile:${ins.line}: ${ins.keyword} before FROM`);
      stages[stages.length - 1].instructions.push(ins);
    }
  }
  return stages;
}

/** ENV key=value pairs ("quoted" values allowed) of one instruction. */
export function envPairs(raw: string): [string, string][] {
  const out: [string, string][] = [];
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/gy;
  let s = raw.trim();
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(s)) { // legacy `ENV KEY value with spaces`
    const sp = s.indexOf(' ');
    return [[s.slice(0, sp), s.slice(sp + 1)]];
  }
  while (s.length) {
    re.lastIndex = 0;
    const m = re.exec(s);
    if (!m) throw new Error(`ENV: cannot read '${s}'`);
    const v = m[2].startsWith('"') ? (JSON.parse(m[2]) as string) : m[2].replace(/^'|'$/g, '');
    out.push([m[1], v]);
    s = s.slice(m[0].length).trim();
  }
  return out;
}

/** Split a COPY's arguments into sources and destination (JSON form or space separated). */
export function copyArgs(ins: Instruction): { sources: string[]; dest: string } {
  const parts = ins.json ?? ins.raw.split(' ');
  if (parts.length < 2) throw new Error(`Dockerfile:${ins.line}: COPY needs a source and a destination`);
  return { sources: parts.slice(0, -1), dest: parts[parts.length - 1] };
}

// -------------------------------------------------------------------------------------------------
// .dockerignore (moby's patternmatcher: filepath.Match syntax plus **, `!` exceptions, the last
// matching line wins, a pattern that matches a parent folder excludes what is inside)

function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        if (pattern[i + 1] === '/') { i++; re += '(?:.*/)?'; } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i);
      if (end < 0) throw new Error(`.dockerignore: unclosed [ in ${pattern}`);
      re += '[' + pattern.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\') + ']';
      i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** A predicate: is this context-relative path ('/'-separated) left out of the build context? */
export function dockerignore(text: string): (rel: string) => boolean {
  const rules = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((l) => {
    const negate = l.startsWith('!');
    const p = path.posix.normalize((negate ? l.slice(1) : l).trim()).replace(/^\/+/, '').replace(/\/+$/, '');
    return { negate, re: globToRegExp(p) };
  });
  return (rel: string) => {
    const parts = rel.split('/');
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const r of rules) if (candidates.some((c) => r.re.test(c))) excluded = !r.negate;
    return excluded;
  };
}

// -------------------------------------------------------------------------------------------------
// the emulation

export interface ImageCheck {
  dir: string;
  stages: { name: string; seconds: number; ran: string[]; skipped: string[] }[];
  final: string;
  /** on-disk KiB of the final stage's /app and of its node_modules */
  appKiB: number;
  nodeModulesKiB: number;
  /** `--version` output, `model summary` output, the predicted text */
  version: string;
  summary: string;
  predicted: string;
  /** wall seconds of `vilm --version` (a launch, compiled lib/) */
  versionSeconds: number;
  /** whether the optional @tensorflow/tfjs-node installed (it cannot without internet) */
  tfjsNode: boolean;
}

/** Commands that change the system rather than the app folder: not run here (see the file comment). */
const SYSTEM = /^(apt-get|apt|groupadd|useradd|chown|chmod|mkdir|rm -rf \/var\/lib\/apt|npm cache)\b/;

function kib(p: string): number {
  return Number(execFileSync('du', ['-s', '--block-size=1K', p], { encoding: 'utf8' }).split('\t')[0]);
}

/** Copy `src` (context-relative or absolute in a stage) to `dest`, Docker's COPY rules for files and folders. */
function copyInto(srcAbs: string, destAbs: string, destIsDir: boolean, skip: (abs: string) => boolean): void {
  if (!existsSync(srcAbs)) throw new Error(`COPY: ${srcAbs} does not exist`);
  if (statSync(srcAbs).isDirectory()) {
    // a folder's CONTENTS go to dest
    mkdirSync(destAbs, { recursive: true });
    cpSync(srcAbs, destAbs, { recursive: true, filter: (s) => !skip(s) });
  } else {
    const target = destIsDir ? path.join(destAbs, path.basename(srcAbs)) : destAbs;
    mkdirSync(path.dirname(target), { recursive: true });
    if (!skip(srcAbs)) cpSync(srcAbs, target);
  }
}

export function checkImageLayout(opts: { keep?: boolean; log?: (line: string) => void } = {}): ImageCheck {
  const log = opts.log ?? (() => {});
  const stages = parseDockerfile(readFileSync(path.join(REPO, 'Dockerfile'), 'utf8'));
  const ignored = dockerignore(existsSync(path.join(REPO, '.dockerignore')) ? readFileSync(path.join(REPO, '.dockerignore'), 'utf8') : '');
  const tmp = mkdtempSync(path.join(tmpdir(), 'vilm-image-'));
  const result: ImageCheck = { dir: tmp, stages: [], final: '', appKiB: 0, nodeModulesKiB: 0, version: '', summary: '', predicted: '', versionSeconds: 0, tfjsNode: false };
  const stageRoots = new Map<string, string>(); // stage name or index → its root folder
  try {
    let workdir = '/';
    let env: Record<string, string> = {};
    let root = '';
    /** a container path inside the current stage's temp root */
    const host = (p: string) => path.join(root, path.posix.resolve(workdir, p));
    for (const [si, stage] of stages.entries()) {
      const name = stage.name ?? String(si);
      root = path.join(tmp, `stage-${si}-${name}`);
      mkdirSync(root, { recursive: true });
      stageRoots.set(name, root);
      stageRoots.set(String(si), root);
      workdir = '/';
      env = {};
      const t0 = performance.now();
      const info = { name, seconds: 0, ran: [] as string[], skipped: [] as string[] };
      for (const ins of stage.instructions) {
        switch (ins.keyword) {
          case 'WORKDIR':
            workdir = path.posix.resolve(workdir, ins.raw);
            mkdirSync(host('.'), { recursive: true });
            break;
          case 'ENV':
            for (const [k, v] of envPairs(ins.raw)) env[k] = v.replace(/\$\{?([A-Za-z_]+)\}?/g, (_, n: string) => env[n] ?? '');
            break;
          case 'COPY': {
            const { sources, dest } = copyArgs(ins);
            const destIsDir = dest.endsWith('/') || sources.length > 1;
            const destAbs = host(dest);
            for (const s of sources) {
              if (ins.flags.from) {
                const fromRoot = stageRoots.get(ins.flags.from);
                if (!fromRoot) throw new Error(`Dockerfile:${ins.line}: COPY --from=${ins.flags.from}: no such earlier stage`);
                copyInto(path.join(fromRoot, path.posix.resolve('/', s)), destAbs, destIsDir, () => false);
              } else {
                const rel = path.posix.normalize(s).replace(/^\.\/?/, '');
                if (ignored(rel)) throw new Error(`Dockerfile:${ins.line}: COPY ${s}: .dockerignore leaves it out of the context`);
                copyInto(path.join(REPO, rel), destAbs, destIsDir, (abs) => ignored(path.relative(REPO, abs).split(path.sep).join('/')));
              }
            }
            break;
          }
          case 'RUN': {
            if (ins.json) throw new Error(`Dockerfile:${ins.line}: exec-form RUN is not emulated`);
            for (const cmd of ins.raw.split(/\s*&&\s*/)) {
              if (SYSTEM.test(cmd)) { info.skipped.push(cmd); continue; }
              if (!/^(npm|node|test) /.test(cmd)) throw new Error(`Dockerfile:${ins.line}: don't know whether to run '${cmd}' here`);
              log(`[${name}] ${cmd}`);
              const mapped = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.startsWith('/') ? host(v) : v]));
              const r = spawnSync('sh', ['-c', cmd], {
                cwd: host('.'), encoding: 'utf8', timeout: 600_000,
                // npm's cache speeds the installs up without changing what they install
                env: { ...process.env, ...mapped, npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false' },
              });
              if (r.status !== 0) throw new Error(`[${name}] ${cmd}: exit ${r.status}${r.error ? ` (${r.error.message})` : ''}\n${(r.stdout + r.stderr).slice(-3000)}`);
              info.ran.push(cmd);
            }
            break;
          }
          default: // USER, EXPOSE, ENTRYPOINT, CMD, LABEL …: metadata, checked statically
        }
      }
      info.seconds = (performance.now() - t0) / 1000;
      result.stages.push(info);
      log(`[${name}] ${info.seconds.toFixed(1)} s; skipped: ${info.skipped.join(' | ') || 'nothing'}`);
    }

    // ---- the final stage's folder
    const final = stages[stages.length - 1];
    const app = host('.');
    result.final = app;
    if (existsSync(path.join(app, 'src'))) throw new Error('the final stage has src/ (it should run lib/)');
    if (!existsSync(path.join(app, 'lib', '.built'))) throw new Error('the final stage has no lib/.built');
    const lock = JSON.parse(readFileSync(path.join(app, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages).filter(([k, v]) => k.startsWith('node_modules/') && v.dev === true).map(([k]) => k);
    const present = devOnly.filter((k) => existsSync(path.join(app, k)));
    if (present.length) throw new Error(`dev-only packages in the final stage: ${present.slice(0, 10).join(', ')}`);
    result.tfjsNode = existsSync(path.join(app, 'node_modules/@tensorflow/tfjs-node'));
    if (!result.tfjsNode && existsSync(path.join(app, 'node_modules/@tensorflow/tfjs'))) throw new Error('@tensorflow/tfjs (the umbrella) is installed without tfjs-node needing it');
    // no TypeScript loader: launching must take lib/
    rmSync(path.join(app, 'node_modules', 'tsx'), { recursive: true, force: true });
    result.appKiB = kib(app);
    result.nodeModulesKiB = kib(path.join(app, 'node_modules'));

    const entry = [...final.instructions].reverse().find((i) => i.keyword === 'ENTRYPOINT')?.json;
    if (!entry) throw new Error('the final stage has no exec-form ENTRYPOINT');
    const dd = entry.indexOf('--');
    const argv = /tini$/.test(entry[0]) && dd > 0 ? entry.slice(dd + 1) : entry;
    if (argv[0] !== 'node') throw new Error(`ENTRYPOINT runs ${argv[0]}, expected node`);
    const runEnv = { ...process.env, ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.startsWith('/') ? host(v) : v])) };
    mkdirSync(runEnv.HOME ?? app, { recursive: true });
    const vilm = (args: string[], timeout = 120_000) => {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [...argv.slice(1), ...args], { cwd: app, encoding: 'utf8', env: runEnv, timeout });
      if (r.status !== 0) throw new Error(`vilm ${args.join(' ')}: exit ${r.status}${r.error ? ` (${r.error.message})` : ''}\n${(r.stdout + r.stderr).slice(-3000)}`);
      return { out: r.stdout, seconds: (performance.now() - t0) / 1000 };
    };
    const v = vilm(['--version']);
    result.version = v.out.trim();
    result.versionSeconds = v.seconds;
    result.summary = vilm(['model', 'summary']).out;
    result.predicted = vilm(['predict', '--prompt', 'Hà Nội là', '--max-tokens', '5', '--seed', '1']).out.trim();
    return result;
  } finally {
    if (!opts.keep) rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const t0 = performance.now();
  const r = checkImageLayout({ keep: process.argv.includes('--keep'), log: (l) => console.error(l) });
  const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
  for (const s of r.stages) console.log(`stage ${s.name}: ${s.seconds.toFixed(1)} s, ran ${s.ran.length} command(s), skipped ${s.skipped.length} system command(s)`);
  console.log(`final stage /app: ${(r.appKiB / 1024).toFixed(1)} MiB, of which node_modules ${(r.nodeModulesKiB / 1024).toFixed(1)} MiB; tfjs-node installed: ${r.tfjsNode}`);
  console.log(`vilm --version: ${r.version} (package.json ${pkg.version}) in ${r.versionSeconds.toFixed(2)} s`);
  console.log(`vilm model summary: ${r.summary.trim().split('\n').length} lines; predict: ${JSON.stringify(r.predicted)}`);
  console.log(`total ${((performance.now() - t0) / 1000).toFixed(1)} s${process.argv.includes('--keep') ? `; kept in ${r.dir}` : ''}`);
  if (r.version !== pkg.version) process.exit(1);
}
