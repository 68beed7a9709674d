/**
 * `vilm predict` through the real CLI (a child process, like a user runs it): a prompt longer than
 * the context, `--top-next` (text and JSON), and `--temperature 0` being greedy. Each child takes
 * a few seconds of CPU (tsx start-up, wasm backend); the deadlines are generous for a busy machine.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { initBackend } from '../src/backend/index.ts';
import { createModel } from '../src/model/model.ts';
import { fitPrompt, generate, nextTokens } from '../src/train/generate.ts';
import { showToken } from '../src/train/utf8-stream.ts';
import { makeTestRun, VI_TEXTS, type TestRun } from './support/eval-fixtures.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'vilm-predict-cli-'));
let run: TestRun;

test.before(async () => {
  await initBackend('wasm');
  run = await makeTestRun(dir);
}, { timeout: 60_000 });
test.after(() => rmSync(dir, { recursive: true, force: true }));

interface Result { status: number | null; stdout: string; stderr: string }

/** `vilm predict --checkpoint RUN --backend wasm …`; each call has its own deadline. */
function predict(...args: string[]): Result {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'predict', '--checkpoint', run.runDir, '--backend', 'wasm', ...args], { encoding: 'utf8', timeout: 55_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('a prompt longer than the context is cut from the left with one warning, and generation works', { timeout: 120_000 }, async () => {
  const prompt = VI_TEXTS.join(' ');
  const tokens = run.tokenizer.encode(prompt).length;
  const maxLen = run.cfg.model.max_len;
  assert.ok(tokens > maxLen, `${tokens} tokens`);
  const r = predict('--prompt', prompt, '--max-tokens', '8', '--temperature', '0');
  assert.equal(r.status, 0, r.stderr);
  const warns = r.stderr.split('\n').filter((l) => l.startsWith('warn:'));
  assert.deepEqual(warns, [`warn: prompt is ${tokens} tokens; kept the last ${maxLen - 2} (the model's context is ${maxLen}, with <bos> and room for one new token)`]);
  assert.ok(r.stdout.startsWith(prompt), 'the whole prompt is echoed');
  assert.ok(r.stdout.length > prompt.length + 1, 'and continued');
  // continued from <bos> + the prompt's last max_len − 2 tokens: the same text as in process
  // (this random-init model emits invalid bytes now and then; those are U+FFFD in both)
  const model = createModel(run.cfg.model);
  const fit = fitPrompt(run.tokenizer.encode(prompt), run.tokenizer.bosId, maxLen);
  let cont = '';
  for await (const p of generate(model, run.ck.weights, run.tokenizer, fit.ids, { temperature: 0, maxTokens: 8 })) cont += p;
  model.dispose();
  assert.equal(r.stdout, prompt + cont + '\n');
});

test('--temperature 0 is greedy: the same text for different seeds', { timeout: 120_000 }, () => {
  const a = predict('--prompt', 'Hà Nội là', '--max-tokens', '12', '--temperature', '0', '--seed', '1');
  const b = predict('--prompt', 'Hà Nội là', '--max-tokens', '12', '--temperature', '0', '--seed', '12345');
  assert.equal(a.status, 0, a.stderr);
  assert.equal(b.status, 0, b.stderr);
  assert.ok(a.stdout.startsWith('Hà Nội là') && a.stdout.length > 'Hà Nội là\n'.length, a.stdout);
  assert.equal(a.stdout, b.stdout);
});

test('--top-next N lists the N most likely next tokens with their probabilities (text and --json)', { timeout: 240_000 }, () => {
  const prompt = 'Việt Nam là';
  // the reference, in process
  const model = createModel(run.cfg.model);
  const ids = fitPrompt(run.tokenizer.encode(prompt), run.tokenizer.bosId, run.cfg.model.max_len).ids;
  const ref = nextTokens(model, run.ck.weights, run.tokenizer, ids, 5);
  model.dispose();

  const text = predict('--prompt', prompt, '--top-next', '5');
  assert.equal(text.status, 0, text.stderr);
  const lines = text.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 5, text.stdout);
  for (const [i, line] of lines.entries()) {
    const m = /^(\d\.\d{4}) {2}(.+)$/.exec(line);
    assert.ok(m, line);
    assert.equal(m[1], ref[i].prob.toFixed(4));
    assert.equal(m[2], showToken(run.tokenizer, ref[i].id).display);
    assert.match(m[2], /^(?:"(?:[^"\\]|\\.)*"|<0x[0-9A-F]{2}>)+$|^<(?:eos|bos|pad)>$/);
  }

  const json = predict('--prompt', prompt, '--top-next', '5', '--json');
  assert.equal(json.status, 0, json.stderr);
  const out = JSON.parse(json.stdout) as { prompt: string; next: { token: string; id: number; prob: number; bytes: string; complete: boolean }[] };
  assert.equal(out.prompt, prompt);
  assert.deepEqual(out.next.map((t) => t.id), ref.map((t) => t.id));
  for (const [i, t] of out.next.entries()) {
    assert.ok(Math.abs(t.prob - ref[i].prob) < 1e-6);
    const shown = showToken(run.tokenizer, t.id);
    assert.deepEqual({ token: t.token, bytes: t.bytes, complete: t.complete }, { token: shown.text, bytes: shown.bytes, complete: shown.complete });
  }

  const bad = predict('--prompt', prompt, '--top-next', '0');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr.trim(), /^vilm: --top-next must be an integer ≥ 1, got 0$/);
  const lone = predict('--prompt', prompt, '--json');
  assert.equal(lone.status, 1);
  assert.match(lone.stderr.trim(), /^vilm: --json goes with --top-next/);
});
