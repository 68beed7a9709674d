import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { initBackend } from '../src/backend/index.ts';
import { createModel } from '../src/model/model.ts';
import { buildLayout } from '../src/model/layout.ts';
import type { IncrementalDecoder, LanguageModel } from '../src/model/api.ts';
import { generate, generateIds, argmax, fitPrompt, nextTokens, promptCutNote } from '../src/train/generate.ts';
import { Utf8TokenStream, showToken, tokenBytes } from '../src/train/utf8-stream.ts';
import type { Tokenizer } from '../src/tokenizer/types.ts';
import { Rng } from '../src/util/rng.ts';
import { makeTestRun, type TestRun } from './support/eval-fixtures.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'vilm-predict-'));
let run: TestRun;

test.before(async () => {
  await initBackend('wasm');
  run = await makeTestRun(dir);
}, { timeout: 60_000 });
test.after(() => rmSync(dir, { recursive: true, force: true }));

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const p of it) out.push(p);
  return out;
}

/** id of the token whose bytes are exactly `bytes` (the 256 single bytes always exist). */
function idOfBytes(tok: Tokenizer, ...bytes: number[]): number {
  for (let id = 0; id < tok.vocabSize; id++) {
    const b = tokenBytes(tok, id);
    if (b.length === bytes.length && b.every((x, i) => x === bytes[i])) return id;
  }
  throw new Error(`no token with bytes ${bytes.map((x) => x.toString(16)).join(' ')}`);
}

/** Feed ids through a stream; the pieces (including '' for tokens that only start a character). */
function streamPieces(tok: Tokenizer, ids: number[], tail: 'drop' | 'replace' = 'drop'): { pieces: string[]; end: string; dropped: boolean } {
  const s = new Utf8TokenStream(tok, { tail });
  const pieces = ids.map((id) => s.push(id));
  const end = s.end();
  return { pieces, end, dropped: s.droppedTail };
}

/**
 * A stand-in model whose decoder, after the prompt, makes `script[k]` overwhelmingly likely for the
 * k-th generated token (and `<eos>` once the script is used up): generation of known token ids.
 */
function scriptedModel(run: TestRun, promptLen: number, script: number[], eosId: number): LanguageModel {
  const V = run.cfg.model.vocab_size;
  const unused = (): never => { throw new Error('not used by generation'); };
  return {
    config: run.cfg.model,
    layout: buildLayout(run.cfg.model),
    computeGradients: unused,
    evaluate: unused,
    decoder: (): IncrementalDecoder => {
      let position = 0;
      return {
        step: () => {
          position++;
          const k = position - promptLen;
          const logits = new Float32Array(V);
          if (k >= 0) logits[k < script.length ? script[k] : eosId] = 50;
          return logits;
        },
        get position() { return position; },
        dispose: () => {},
      };
    },
    dispose: () => {},
  };
}

test('greedy generation with the KV-cached decoder equals argmax of a full recompute at every step', { timeout: 60_000 }, () => {
  const model = createModel(run.cfg.model);
  const { tokenizer: tok, ck } = run;
  const prompt = [tok.bosId, ...tok.encode('Việt Nam là')];
  const gen = [...generateIds(model, ck.weights, tok, prompt, { temperature: 0, maxTokens: 12 })];
  assert.equal(gen.length, 12); // a random-init model rarely picks <eos> greedily; if it did, length < 12 and the check below still holds
  const seq = prompt.slice();
  const V = run.cfg.model.vocab_size;
  for (const id of gen) {
    const logits = model.forwardLogits(ck.weights, seq, 1, seq.length);
    assert.equal(id, argmax(logits.subarray((seq.length - 1) * V, seq.length * V), tok.padId));
    seq.push(id);
  }
  model.dispose();
});

test('seeded sampling is deterministic; pieces are complete characters that concatenate to the decoded ids', { timeout: 60_000 }, async () => {
  const model = createModel(run.cfg.model);
  const { tokenizer: tok, ck } = run;
  const opts = { temperature: 1.0, topK: 0, topP: 1, maxTokens: 40 };
  const a = await collect(generate(model, ck.weights, tok, 'Hà Nội', { ...opts, seed: 5 }));
  const b = await collect(generate(model, ck.weights, tok, 'Hà Nội', { ...opts, seed: 5 }));
  const c = await collect(generate(model, ck.weights, tok, 'Hà Nội', { ...opts, seed: 6 }));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const prompt = [tok.bosId, ...tok.encode('Hà Nội')];
  const ids = [...generateIds(model, ck.weights, tok, prompt, { ...opts, seed: 5 })];
  const full = tok.decode([...prompt, ...ids]);
  // the pieces are the decoded text, less a character still cut when generation stopped (that one
  // decodes to U+FFFD and is not printed)
  const rest = full.slice(tok.decode(prompt).length);
  const joined = a.join('');
  assert.ok(rest.startsWith(joined), `${JSON.stringify(joined)} vs ${JSON.stringify(rest)}`);
  assert.match(rest.slice(joined.length), /^\ufffd*$/);
  for (const p of a) assert.ok(p.length > 0);
  model.dispose();
});

test('temperature 0 is greedy: the same ids for every seed, top-k and top-p', { timeout: 60_000 }, () => {
  const model = createModel(run.cfg.model);
  const { tokenizer: tok, ck } = run;
  const prompt = [tok.bosId, ...tok.encode('Sông Mê Kông')];
  const a = [...generateIds(model, ck.weights, tok, prompt, { temperature: 0, maxTokens: 10, seed: 1 })];
  const b = [...generateIds(model, ck.weights, tok, prompt, { temperature: 0, maxTokens: 10, seed: 99, topK: 3, topP: 0.5 })];
  assert.equal(a.length, 10);
  assert.deepEqual(a, b);
  // while sampling at temperature 1 does depend on the seed
  const c = [...generateIds(model, ck.weights, tok, prompt, { temperature: 1, topK: 0, maxTokens: 10, seed: 1 })];
  const d = [...generateIds(model, ck.weights, tok, prompt, { temperature: 1, topK: 0, maxTokens: 10, seed: 99 })];
  assert.notDeepEqual(c, d);
  model.dispose();
});

test('past max_len the window slides: <bos> + the last max_len/2 tokens, then growing; <eos> stops', { timeout: 60_000 }, () => {
  const model = createModel(run.cfg.model);
  const { tokenizer: tok, ck, cfg } = run;
  const maxLen = cfg.model.max_len;
  const prompt = [tok.bosId, ...Array.from({ length: maxLen - 6 }, (_, i) => 3 + (i % 200))];
  const n = 2 * maxLen; // more than the context holds: two slides
  const gen = [...generateIds(model, ck.weights, tok, prompt, { temperature: 0, maxTokens: n })];
  assert.equal(gen.length, n);
  // reference: what the model is documented to see before each token, through the full forward pass
  const V = cfg.model.vocab_size;
  const half = Math.floor(maxLen / 2);
  const text = prompt.slice(1);
  let window = prompt.slice(); // <bos> + context
  let slides = 0;
  for (const [i, id] of gen.entries()) {
    const logits = model.forwardLogits(ck.weights, window, 1, window.length);
    assert.equal(id, argmax(logits.subarray((window.length - 1) * V, window.length * V), tok.padId), `token ${i}`);
    text.push(id);
    if (window.length + 1 >= maxLen) { window = [tok.bosId, ...text.slice(text.length - half)]; slides++; } else window.push(id);
    assert.ok(window.length < maxLen);
  }
  assert.ok(slides >= 3, `${slides} slides`); // the first after token 4: <bos> + 122 prompt tokens + 5 = max_len
  model.dispose();

  // weights whose head always prefers <eos>: final norm output = its bias = e_0, Wout[0, eos] = 10
  const layout = buildLayout(cfg.model);
  const w = ck.weights.slice();
  const nw = layout.byName.get('norm.weight')!, nb = layout.byName.get('norm.bias')!, out = layout.byName.get('output.weight')!;
  w.fill(0, nw.offset, nw.offset + nw.size);
  w.fill(0, nb.offset, nb.offset + nb.size); w[nb.offset] = 1;
  w.fill(0, out.offset, out.offset + out.size); w[out.offset + tok.eosId] = 10; // row 0 of [d, V]
  const m2 = createModel(cfg.model);
  assert.deepEqual([...generateIds(m2, w, tok, [tok.bosId, 5, 6], { temperature: 0, maxTokens: 10 })], []);
  m2.dispose();
});

test('vilm predict streams the same text for the same seed; bad flags are one-line errors', { timeout: 180_000 }, () => {
  const args = ['--import', 'tsx', 'src/cli/main.ts', 'predict', '--checkpoint', run.runDir, '--prompt', 'Việt Nam là', '--max-tokens', '10', '--seed', '3', '--backend', 'wasm'];
  // the child processes get their own deadline: a sync call blocks the test runner's timeout
  const a = execFileSync('node', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 55_000 });
  const b = execFileSync('node', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 55_000 });
  assert.equal(a, b);
  assert.ok(a.startsWith('Việt Nam là'), a);
  assert.ok(a.length > 'Việt Nam là\n'.length);
  const bad = spawnSync('node', [...args, '--top-p', '1.5'], { encoding: 'utf8', timeout: 55_000 });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr.trim(), /^vilm: --top-p must be in \(0, 1\], got 1\.5$/);
});

test('a character split across tokens is held back until complete: pieces join to the full decode, no U+FFFD', { timeout: 60_000 }, () => {
  const tok = run.tokenizer;
  // 'ấ' is E1 BA A5: "ngh" · <0xE1><0xBA> (a real merged token of this tokenizer) · <0xA5> · "p"
  const eba = idOfBytes(tok, 0xe1, 0xba);
  const ids = [...tok.encode('ngh'), eba, idOfBytes(tok, 0xa5), ...tok.encode('p')];
  assert.equal(tok.decode(ids), 'nghấp');
  assert.equal(tok.decode([eba]), '\ufffd'); // what token-by-token decoding used to print
  const { pieces, dropped } = streamPieces(tok, ids);
  assert.deepEqual(pieces.slice(-3), ['', 'ấ', 'p']);
  assert.equal(pieces.join(''), 'nghấp');
  assert.equal(dropped, false);

  // every multi-byte character cut: one token per byte of Vietnamese text, and the real encoding
  const text = 'Việt Nam là một quốc gia — nghấp nháy 😀 Đồng bằng sông Cửu Long.';
  const perByte = [...Buffer.from(text, 'utf8')].map((b) => idOfBytes(tok, b));
  const real = tok.encode(text);
  for (const seq of [perByte, real]) {
    const r = streamPieces(tok, seq);
    assert.equal(r.pieces.join(''), text);
    assert.equal(tok.decode(seq), text);
    for (const p of r.pieces) assert.ok(!p.includes('\ufffd'), JSON.stringify(r.pieces));
  }
  // a stream that stops inside 'ấ' prints "ngh", not "ngh\ufffd"; 'replace' gives decode's U+FFFD
  const cut = [...tok.encode('ngh'), eba];
  const c = streamPieces(tok, cut);
  assert.equal(c.pieces.join(''), 'ngh');
  assert.equal(c.pieces[c.pieces.length - 1], '');
  assert.equal(c.end, '');
  assert.equal(c.dropped, true);
  const rep = streamPieces(tok, cut, 'replace');
  assert.equal(rep.pieces.join('') + rep.end, tok.decode(cut));
});

test('random token sequences: stream text equals decode (replace) or decode less the cut tail (drop)', { timeout: 60_000 }, () => {
  const tok = run.tokenizer;
  const rng = new Rng(11);
  let cutTails = 0;
  for (let trial = 0; trial < 300; trial++) {
    const ids = Array.from({ length: 1 + rng.int(12) }, () => rng.int(tok.vocabSize));
    const full = tok.decode(ids);
    const rep = streamPieces(tok, ids, 'replace');
    assert.equal(rep.pieces.join('') + rep.end, full, JSON.stringify(ids));
    const drop = streamPieces(tok, ids);
    assert.equal(drop.pieces.join(''), rep.pieces.join(''));
    assert.equal(drop.end, '');
    assert.equal(drop.dropped, rep.end !== '');
    assert.match(rep.end, /^\ufffd*$/);
    if (drop.dropped) cutTails++;
  }
  assert.ok(cutTails > 0, 'some sequences should end inside a character');
});

test('generate stops inside a character without printing U+FFFD (the "nghấp\ufffd" report)', { timeout: 60_000 }, async () => {
  const tok = run.tokenizer;
  const prompt = [tok.bosId, ...tok.encode('Hà Nội')];
  const script = [...tok.encode(' ngh'), idOfBytes(tok, 0xe1, 0xba), idOfBytes(tok, 0xa5), ...tok.encode('p nháy')];
  const model = scriptedModel(run, prompt.length, script, tok.eosId);
  assert.deepEqual([...generateIds(model, run.ck.weights, tok, prompt, { temperature: 0, maxTokens: 100 })], script);
  const whole = await collect(generate(model, run.ck.weights, tok, prompt, { temperature: 0, maxTokens: 100 }));
  assert.equal(whole.join(''), ' nghấp nháy');
  // stop right after <0xE1><0xBA>: the cut 'ấ' is not printed
  const cutAt = tok.encode(' ngh').length + 1;
  const cut = await collect(generate(model, run.ck.weights, tok, prompt, { temperature: 0, maxTokens: cutAt }));
  assert.equal(cut.join(''), ' ngh');
  for (const p of [...whole, ...cut]) assert.ok(p.length > 0 && !p.includes('\ufffd'), JSON.stringify(p));
});

test('showToken: text JSON-quoted, bytes that are not whole characters as <0xHH>; exact for every token', { timeout: 60_000 }, () => {
  const tok = run.tokenizer;
  const la = tok.encode(' là');
  assert.equal(la.length, 1);
  assert.deepEqual(showToken(tok, la[0]), { display: '" là"', text: ' là', complete: true, bytes: '20 6c c3 a0' });
  assert.equal(showToken(tok, idOfBytes(tok, 0xe1, 0xba)).display, '<0xE1><0xBA>');
  assert.equal(showToken(tok, idOfBytes(tok, 0xe1, 0xba)).complete, false);
  assert.equal(showToken(tok, tok.eosId).display, '<eos>');
  let incomplete = 0;
  for (let id = 3; id < tok.vocabSize; id++) {
    const s = showToken(tok, id);
    // parse the display back: a sequence of JSON strings and <0xHH>
    const parts = s.display.match(/"(?:[^"\\]|\\.)*"|<0x[0-9A-F]{2}>/g) ?? [];
    assert.equal(parts.join(''), s.display, s.display);
    const bytes = Buffer.concat(parts.map((p) => (p.startsWith('<') ? Buffer.from([parseInt(p.slice(3, 5), 16)]) : Buffer.from(JSON.parse(p) as string, 'utf8'))));
    assert.deepEqual([...bytes], [...tokenBytes(tok, id)], s.display);
    assert.equal(s.complete, parts.length === 1 && parts[0].startsWith('"'), s.display);
    if (!s.complete) incomplete++;
  }
  assert.ok(incomplete > 128, 'the 128 bytes ≥ 0x80 alone are incomplete, and some merges too');
});

test('nextTokens: the most likely next tokens with softmax probabilities at temperature 1', { timeout: 60_000 }, () => {
  const model = createModel(run.cfg.model);
  const { tokenizer: tok, ck } = run;
  const prompt = [tok.bosId, ...tok.encode('Việt Nam là')];
  const top = nextTokens(model, ck.weights, tok, prompt, 7);
  assert.equal(top.length, 7);
  const V = run.cfg.model.vocab_size;
  const logits = model.forwardLogits(ck.weights, prompt, 1, prompt.length).subarray((prompt.length - 1) * V, prompt.length * V);
  let max = -Infinity;
  for (let i = 1; i < V; i++) max = Math.max(max, logits[i]);
  let z = 0;
  for (let i = 1; i < V; i++) z += Math.exp(logits[i] - max); // <pad> (0) excluded
  const ref = Array.from({ length: V }, (_, i) => ({ id: i, prob: i === 0 ? 0 : Math.exp(logits[i] - max) / z })).sort((a, b) => b.prob - a.prob || a.id - b.id);
  for (const [i, t] of top.entries()) {
    assert.ok(Math.abs(t.prob - ref[i].prob) < 1e-5, `${i}: ${t.prob} vs ${ref[i].prob}`);
    if (i > 0) assert.ok(t.prob <= top[i - 1].prob);
  }
  assert.deepEqual(new Set(top.map((t) => t.id)).size, 7);
  // the whole distribution sums to 1
  const all = nextTokens(model, ck.weights, tok, prompt, V);
  assert.ok(Math.abs(all.reduce((s, t) => s + t.prob, 0) - 1) < 1e-9);
  model.dispose();
});

test('fitPrompt keeps <bos> and the last max_len − 2 tokens, and says so', { timeout: 60_000 }, async () => {
  const ids = Array.from({ length: 300 }, (_, i) => 3 + i);
  const f = fitPrompt(ids, 1, 128);
  assert.deepEqual(f.ids, [1, ...ids.slice(300 - 126)]);
  assert.equal(f.ids.length, 127);
  assert.equal(promptCutNote(f), "prompt is 300 tokens; kept the last 126 (the model's context is 128, with <bos> and room for one new token)");
  const g = fitPrompt(ids.slice(0, 126), 1, 128);
  assert.equal(g.ids.length, 127);
  assert.equal(promptCutNote(g), undefined);
  // a string prompt given to generate() is fitted too (it used to throw)
  const model = createModel(run.cfg.model);
  const long = 'Việt Nam là một quốc gia. '.repeat(40);
  assert.ok(run.tokenizer.encode(long).length > 128);
  const pieces = await collect(generate(model, run.ck.weights, run.tokenizer, long, { temperature: 0, maxTokens: 3 }));
  assert.ok(pieces.join('').length > 0);
  model.dispose();
});
