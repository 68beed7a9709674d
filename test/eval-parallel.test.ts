/**
 * Forward-only scoring on worker threads (src/train/parallel-eval.ts): the per-sequence scores are
 * the same bytes for any number of threads and equal to one model.evaluate per sequence in this
 * thread; the validation estimate and `vilm eval --in` print the same numbers for any --workers.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { initBackend } from '../src/backend/index.ts';
import { PreparedSplit } from '../src/data/dataset.ts';
import { sampleSequences } from '../src/data/sampler.ts';
import { buildLayout, initParams } from '../src/model/layout.ts';
import { createModel } from '../src/model/model.ts';
import { documentWindows, evaluateDocuments } from '../src/train/eval.ts';
import { chunkRanges, scoreInThreads, SequenceScorer, type SequenceScores } from '../src/train/parallel-eval.ts';
import { scoreSequences, scoreSequencesParallel } from '../src/train/validation.ts';
import { Rng } from '../src/util/rng.ts';
import { makeTestRun, VI_TEXTS, type TestRun } from './support/eval-fixtures.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'vilm-eval-par-'));
let run: TestRun;
let sequences: Uint16Array[];
test.before(async () => {
  await initBackend('wasm');
  run = await makeTestRun(dir);
  const tok = run.tokenizer, maxLen = run.cfg.model.max_len;
  // real windows of the Vietnamese texts (several per document) and random rows of every length class
  sequences = [];
  for (const d of [VI_TEXTS.join('\n'), ...VI_TEXTS]) {
    for (const w of documentWindows(tok.encode(d), maxLen, tok.bosId, tok.eosId)) sequences.push(Uint16Array.from(w));
  }
  const rng = new Rng(11);
  for (const n of [2, 3, 17, 64, 127, 128, ...Array.from({ length: 16 }, () => 2 + rng.int(127))]) {
    const s = new Uint16Array(n);
    s[0] = tok.bosId;
    for (let i = 1; i < n; i++) s[i] = 3 + rng.int(run.cfg.model.vocab_size - 3);
    sequences.push(s);
  }
}, { timeout: 60_000 });
test.after(() => rmSync(dir, { recursive: true, force: true }));

const bytes = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const sum = (a: Float64Array) => a.reduce((x, y) => x + y, 0);

/** One model.evaluate per sequence in this thread: the reference. */
function reference(weights: Float32Array): SequenceScores {
  const model = createModel(run.cfg.model);
  const out = { nats: new Float64Array(sequences.length), tokens: new Float64Array(sequences.length) };
  for (let i = 0; i < sequences.length; i++) {
    const r = model.evaluate(weights, { tokens: sequences[i], rows: 1, seqLen: sequences[i].length });
    out.nats[i] = r.lossSum; out.tokens[i] = r.tokenCount;
  }
  model.dispose();
  return out;
}

test('scoreInThreads: byte-identical per-sequence scores with 1, 2 and 3 threads, equal to model.evaluate per sequence', { timeout: 240_000 }, async () => {
  const base = { model: run.cfg.model, backend: 'wasm' as const, weights: run.ck.weights, sequences };
  // the sequences must make several chunks, or the threads would not share the work
  assert.ok(chunkRanges(sequences, 3).length >= 6, `${chunkRanges(sequences, 3).length} chunks`);
  const progress: number[] = [];
  const one = await scoreInThreads({ ...base, threads: 1 });
  const two = await scoreInThreads({ ...base, threads: 2, onProgress: (done, total) => { assert.equal(total, sequences.length); progress.push(done); } });
  const three = await scoreInThreads({ ...base, threads: 3 });
  const ref = reference(run.ck.weights);
  for (const [name, r] of [['2 threads', two], ['3 threads', three], ['reference', ref]] as const) {
    assert.ok(bytes(r.nats).equals(bytes(one.nats)), `${name}: nats differ from 1 thread`);
    assert.ok(bytes(r.tokens).equals(bytes(one.tokens)), `${name}: tokens differ from 1 thread`);
  }
  // no padding: every position after the first is a target
  assert.deepEqual([...one.tokens], sequences.map((s) => s.length - 1));
  assert.ok(one.nats.every((x) => Number.isFinite(x) && x > 0));
  // progress: increasing, ends at all
  assert.ok(progress.length >= 2 && progress.every((d, i) => i === 0 || d > progress[i - 1]), String(progress));
  assert.equal(progress.at(-1), sequences.length);
});

test('scoreInThreads: other weights give other totals; a reused scorer follows setWeights', { timeout: 240_000 }, async () => {
  const other = initParams(buildLayout(run.cfg.model), run.cfg.model, 99);
  const scorer = await SequenceScorer.open({ model: run.cfg.model, backend: 'wasm', weights: run.ck.weights, threads: 2 });
  try {
    const a = await scorer.score(sequences);
    scorer.setWeights(other);
    const b = await scorer.score(sequences);
    assert.notEqual(sum(a.nats), sum(b.nats));
    assert.ok(bytes(b.nats).equals(bytes(reference(other).nats)), 'after setWeights: the other weights\' scores');
    // the weights were copied at open: changing the caller's array does not change the scores
    const copy = Float32Array.from(other);
    scorer.setWeights(copy);
    copy.fill(0);
    assert.ok(bytes((await scorer.score(sequences)).nats).equals(bytes(b.nats)));
  } finally {
    await scorer.close();
  }
});

test('scoreInThreads: bad input is refused; a failing thread rejects and the threads are closed', { timeout: 120_000 }, async () => {
  const base = { model: run.cfg.model, backend: 'wasm' as const, weights: run.ck.weights, threads: 2 };
  await assert.rejects(scoreInThreads({ ...base, sequences: [Uint16Array.of(1)] }), /sequence 0 has 1 tokens/);
  await assert.rejects(scoreInThreads({ ...base, sequences: [new Uint16Array(run.cfg.model.max_len + 1).fill(5)] }), /max_len/);
  await assert.rejects(scoreInThreads({ ...base, threads: 1.5, sequences }), /threads must be/);
  // an id outside the vocabulary: the model throws in a thread
  const bad = [...sequences.slice(0, 4), Uint16Array.of(1, run.cfg.model.vocab_size + 5, 7), ...sequences.slice(4)];
  await assert.rejects(scoreInThreads({ ...base, sequences: bad }));
  const empty = await scoreInThreads({ ...base, sequences: [] });
  assert.equal(empty.nats.length, 0);
});

/** Run a node process (tsx) with a deadline; resolves with its exit code, stdout and stderr. */
function node(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', ...args], { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException & { killed?: boolean }).killed) { reject(new Error(`timed out after ${timeoutMs} ms (leaked thread?)\n${stderr}`)); return; }
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('a process that scored on threads exits by itself (no leaked handles)', { timeout: 120_000 }, async () => {
  const script = path.join(dir, 'exit.mts'); // .mts: an ES module outside the package
  writeFileSync(script, [
    `import { scoreInThreads } from ${JSON.stringify(path.resolve('src/train/parallel-eval.ts'))};`,
    `import { loadConfig } from ${JSON.stringify(path.resolve('src/config/index.ts'))};`,
    `import { buildLayout, initParams } from ${JSON.stringify(path.resolve('src/model/layout.ts'))};`,
    `const model = loadConfig(${JSON.stringify(path.resolve('configs/test.yaml'))}).model;`,
    'const weights = initParams(buildLayout(model), model, 1);',
    'const sequences = Array.from({ length: 12 }, (_, i) => Uint16Array.from({ length: 40 + i }, (_, t) => 1 + ((t * 7 + i) % 500)));',
    "const r = await scoreInThreads({ model, backend: 'wasm', weights, sequences, threads: 2 });",
    "process.stdout.write(String(r.nats.length) + '\\n');",
  ].join('\n'));
  const r = await node([script], 90_000);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), '12');
});

test('scoreSequencesParallel: the same estimate, bit for bit, as scoreSequences, for any threads', { timeout: 240_000 }, async () => {
  // a padded split: rows of buckets 32 and 128 with their text at the start
  const rng = new Rng(5);
  const rows = new Map<number, Uint16Array>();
  for (const [L, count] of [[32, 10], [128, 8]] as const) {
    const t = new Uint16Array(L * count);
    for (let r = 0; r < count; r++) {
      const n = 2 + rng.int(L - 1);
      for (let i = 0; i < n; i++) t[r * L + i] = 3 + rng.int(run.cfg.model.vocab_size - 3);
    }
    rows.set(L, t);
  }
  const split = PreparedSplit.fromArrays('validation', rows);
  const refs = sampleSequences(split, 12, 3);
  const bytesOf = (s: Uint16Array) => s.filter((x) => x !== 0).length * 3;
  const model = createModel(run.cfg.model);
  const seq = scoreSequences(model, run.ck.weights, split, refs, bytesOf);
  model.dispose();
  const opts = { model: run.cfg.model, backend: 'wasm' as const, weights: run.ck.weights };
  const p1 = await scoreSequencesParallel({ ...opts, threads: 1 }, split, refs, bytesOf);
  const p2 = await scoreSequencesParallel({ ...opts, threads: 2 }, split, refs, bytesOf);
  assert.deepEqual(p1, seq);
  assert.deepEqual(p2, seq);
  assert.ok(Number.isFinite(seq.lossSe) && seq.lossSe > 0);
  assert.equal(seq.sequences, 12);
});

test('vilm eval --in prints the same JSON with --workers 1 and --workers 2, equal to evaluateDocuments', { timeout: 240_000 }, async () => {
  const file = path.join(dir, 'docs.jsonl');
  const docs = [VI_TEXTS.join('\n'), ...VI_TEXTS.slice(0, 5), VI_TEXTS.slice(2).join(' ')];
  writeFileSync(file, docs.map((text, i) => JSON.stringify({ id: String(i), title: 't', text, source: 'test' })).join('\n') + '\n');
  const cli = async (workers: string) => {
    const r = await node(['src/cli/main.ts', 'eval', '--checkpoint', run.runDir, '--backend', 'wasm', '--json', '--in', file, '--workers', workers], 120_000);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const [w1, w2] = [await cli('1'), await cli('2')];
  assert.equal(w2, w1);
  const out = JSON.parse(w1) as { loss: number; tokens: number; bytes: number; bitsPerByte: number; ppl: number };
  // in-process (cleanText leaves these plain paragraphs as they are, as the CLI sees them)
  const { cleanText } = await import('../src/data/clean/index.ts');
  const model = createModel(run.cfg.model);
  const ref = await evaluateDocuments(model, run.ck.weights, run.tokenizer, docs.map((d) => cleanText(d).text), { groupWindows: 3 });
  model.dispose();
  assert.equal(JSON.stringify(ref), JSON.stringify(out), 'in-process evaluateDocuments (small groups) vs the CLI');
  assert.ok(out.tokens > 100);
  const bad = await node(['src/cli/main.ts', 'eval', '--checkpoint', run.runDir, '--in', file, '--workers', '0'], 60_000);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr.trim(), /^vilm: --workers: must be a positive integer, got 0$/m);
});

test('model.evaluateEach (one weight upload, passes shared by sequences of one length) gives exactly one-row model.evaluate per sequence', { timeout: 120_000 }, () => {
  const model = createModel(run.cfg.model);
  // and runs of equal lengths, interleaved with the others, so that passes are shared
  const rng = new Rng(12), maxLen = run.cfg.model.max_len;
  const same = Array.from({ length: 24 }, (_, i) => Uint16Array.from({ length: i % 2 ? maxLen + 1 : 40 }, () => 3 + rng.int(run.cfg.model.vocab_size - 3)));
  const seqs = sequences.flatMap((s, i) => (i < same.length ? [s, same[i]] : [s]));
  try {
    const r = model.evaluateEach!(run.ck.weights, seqs);
    let differs = 0;
    for (let i = 0; i < seqs.length; i++) {
      const one = model.evaluate(run.ck.weights, { tokens: seqs[i], rows: 1, seqLen: seqs[i].length });
      assert.equal(r.nats[i], one.lossSum, `sequence ${i}`);
      assert.equal(r.tokens[i], one.tokenCount);
      if (i > 0 && r.nats[i] !== r.nats[i - 1]) differs++;
    }
    assert.ok(differs > seqs.length / 2, 'the scores are real, not one constant');
  } finally { model.dispose(); }
});
