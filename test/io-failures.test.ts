/**
 * A full disk and a missing permission, through the real CLI (issue 10): one `vilm:` line naming
 * the file, exit 74 (EX_IOERR), no temp file left, and nothing lost — the checkpoint saved before
 * the disk filled still loads, and running the same command again (with space) finishes the run
 * with the same bytes as a run that never failed.
 *
 * The disk is real: a tmpfs of a few hundred KB mounted in a private mount namespace (`unshare
 * -m`, or `unshare -r -m` for a non-root user), so the kernel itself answers ENOSPC. Permissions:
 * root ignores file modes, so as root the commands run with CAP_DAC_OVERRIDE and
 * CAP_DAC_READ_SEARCH dropped (`setpriv`), which makes a 0555 directory unwritable even for its
 * owner. Both tools are util-linux (essential in Debian): a machine without them fails, not skips.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadCheckpoint } from '../src/train/checkpoint.ts';
import { preparedData } from './support/fixtures.ts';

const root = mkdtempSync(path.join(tmpdir(), 'vilm-io-'));
chmodSync(root, 0o755);
test.after(() => rmSync(root, { recursive: true, force: true }));
const data = preparedData(path.join(root, 'prep'));
const isRoot = process.getuid?.() === 0;

const cli = (...args: string[]) => [process.execPath, '--import', 'tsx', 'src/cli/main.ts', ...args];
const run = (argv: string[], timeout = 150_000): SpawnSyncReturns<string> =>
  spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout });
const trainArgs = (out: string) => cli('train', '--config', 'configs/test.yaml', '--data', data, '--out', out, '--backend', 'wasm',
  '--steps', '6', '--set', 'train.checkpoint_every=3', '--test-sequences', '8');
const vilmLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('vilm: '));
const temps = (dir: string) => existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.tmp')) : [];
const finalSha = (dir: string) => (JSON.parse(readFileSync(path.join(dir, 'final.json'), 'utf8')) as { weightsSha256: string }).weightsSha256;

/** Run `argv` with `dir` replaced by a fresh tmpfs of `bytes`; afterwards `dir/run` is copied to `keep`. */
function onSmallDisk(dir: string, bytes: number, keep: string, argv: string[]): SpawnSyncReturns<string> {
  mkdirSync(dir, { recursive: true });
  const script = 'mount -t tmpfs -o size="$1" vilm-small-disk "$2" || exit 99; d="$2"; k="$3"; shift 3; '
    + '"$@"; rc=$?; cp -a "$d/run" "$k" 2>/dev/null; exit $rc';
  return run(['unshare', ...(isRoot ? ['-m'] : ['-r', '-m']), 'sh', '-c', script, 'sh', String(bytes), dir, keep, ...argv]);
}

/** Run `argv` unable to write where modes forbid it, even as root. */
const unprivileged = (argv: string[]) => run(isRoot ? ['setpriv', '--bounding-set=-dac_override,-dac_read_search', ...argv] : argv);

test('disk full while saving a checkpoint: one line naming it, exit 74, the earlier checkpoint kept, the rerun finishes with the same bytes', { timeout: 600_000 }, () => {
  // the reference: the same run on a disk with room
  const ref = path.join(root, 'ref');
  const a = run(trainArgs(ref));
  assert.equal(a.status, 0, a.stderr);
  const ckBytes = statSync(path.join(ref, 'checkpoint.vilm')).size;
  const logBytes = statSync(path.join(ref, 'log.jsonl')).size;

  // room for the step-3 checkpoint and the log, not for the step-6 checkpoint's temp file beside it
  const disk = path.join(root, 'disk'), kept = path.join(root, 'kept');
  const size = Math.ceil((ckBytes * 1.5 + logBytes + 64 * 1024) / 4096) * 4096;
  const r = onSmallDisk(disk, size, kept, trainArgs(path.join(disk, 'run')));
  assert.notEqual(r.status, 99, `could not mount a tmpfs: ${r.stderr}`);
  assert.equal(r.status, 74, r.stderr);
  const lines = vilmLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^vilm: .*\/run\/checkpoint\.vilm: cannot write: no space left on device \(ENOSPC\); files written before are intact$/);
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, 'no stack trace');

  // nothing lost: the step-3 checkpoint loads, no temp file, no final.json
  assert.deepEqual(temps(kept), []);
  assert.ok(!existsSync(path.join(kept, 'final.json')));
  assert.equal(loadCheckpoint(path.join(kept, 'checkpoint.vilm')).step, 3);

  // the same command again, with room: it continues from step 3 and ends where the reference did
  const again = run(trainArgs(kept));
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /resum/i);
  assert.equal(finalSha(kept), finalSha(ref));
  // ... and the run did something: the loss fell over its six steps
  const steps = readFileSync(path.join(ref, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; loss?: number })
    .filter((e) => e.type === 'step');
  assert.equal(steps.length, 6);
  assert.ok(steps[5].loss! < steps[0].loss!, `loss ${steps[0].loss} → ${steps[5].loss}`);
});

test('permission denied: train, data clean and tokenizer train name the path, exit 74 and leave nothing', { timeout: 300_000 }, () => {
  const ro = path.join(root, 'read-only');
  mkdirSync(ro);
  const corpus = path.join(root, 'corpus.jsonl');
  writeFileSync(corpus, ['Hà Nội là thủ đô của nước Cộng hòa xã hội chủ nghĩa Việt Nam, một thành phố lớn.',
    'Sông Hồng chảy qua Hà Nội trước khi đổ ra vịnh Bắc Bộ ở phía đông nam của đồng bằng.']
    .map((t, i) => JSON.stringify({ id: String(i), title: `t${i}`, text: t, source: 'test' })).join('\n') + '\n');
  chmodSync(ro, 0o555);
  try {
    const cases: [string, string[], RegExp][] = [
      ['train', trainArgs(path.join(ro, 'run')), /^vilm: .*read-only\/run(\/[^:]*)?: cannot (write|open): permission denied \(EACCES\); files written before are intact$/],
      ['data clean', cli('data', 'clean', '--in', corpus, '--out', path.join(ro, 'clean.jsonl')), /^vilm: .*read-only\/clean\.jsonl: cannot (write|open): permission denied \(EACCES\)/],
      ['tokenizer train', cli('tokenizer', 'train', '--in', corpus, '--vocab-size', '300', '--out', path.join(ro, 'tok.json')), /^vilm: .*read-only\/tok\.json: cannot (write|open): permission denied \(EACCES\)/],
    ];
    for (const [name, argv, re] of cases) {
      const r = unprivileged(argv);
      assert.equal(r.status, 74, `${name}: ${r.stderr}`);
      const lines = vilmLines(r.stderr);
      assert.equal(lines.length, 1, `${name}: ${r.stderr}`);
      assert.match(lines[0], re, name);
      assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, `${name}: no stack trace`);
      assert.deepEqual(readdirSync(ro), [], `${name}: nothing written`);
    }
  } finally {
    chmodSync(ro, 0o755);
  }
});
