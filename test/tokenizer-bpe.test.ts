import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import {
  trainTokenizer, saveTokenizer, loadTokenizer, tokenizerFromJson, TokenizerFileError, BYTE_TO_CHAR, preTokenizeRegex,
  type Tokenizer,
} from '../src/tokenizer/index.ts';
import { forEachPiece } from '../src/tokenizer/bytelevel.ts';
import { UserError } from '../src/util/errors.ts';
import { Rng } from '../src/util/rng.ts';

// the `tokenizers` package (Hugging Face, native binding) is CommonJS
const hf = createRequire(import.meta.url)('tokenizers') as {
  Tokenizer: {
    fromFile(f: string): {
      encode(s: string): Promise<{ getIds(): number[] }>;
      decode(ids: number[], skipSpecialTokens: boolean): Promise<string>;
      getVocabSize(withAddedTokens?: boolean): number;
    };
  };
};

const root = mkdtempSync(path.join(tmpdir(), 'vilm-tokenizer-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

// Our own Vietnamese fixture text (NFC): paragraphs with diacritics, digits, punctuation, newlines.
const FIXTURES = [
  'Hà Nội là thủ đô của nước Cộng hòa Xã hội chủ nghĩa Việt Nam. Thành phố nằm bên bờ sông Hồng, có diện tích 3.358,6 km².',
  'Phở là món ăn quen thuộc của người Việt.\nNước dùng được ninh từ xương bò trong 8–10 giờ; bánh phở mềm, thịt bò thái mỏng.',
  'Vịnh Hạ Long có khoảng 1.969 hòn đảo lớn nhỏ — phần lớn là đảo đá vôi. Năm 1994, UNESCO công nhận đây là di sản thiên nhiên thế giới!',
  'Đồng bằng sông Cửu Long (còn gọi là miền Tây) là vựa lúa lớn nhất cả nước: mỗi năm sản xuất hơn 24 triệu tấn lúa.',
  'Tiếng Việt có sáu thanh điệu: ngang, huyền, sắc, hỏi, ngã, nặng. "Chữ Quốc ngữ" dùng bảng chữ cái Latinh với nhiều dấu phụ.',
  '  Cà phê Việt Nam nổi tiếng với vị đậm…  Nhiều người thích uống cà phê sữa đá vào buổi sáng.\n\n\nCác quán cà phê nhỏ có mặt ở khắp phố phường.',
  'Tết Nguyên Đán là dịp lễ quan trọng nhất trong năm? Gia đình sum họp, gói bánh chưng và đi chúc Tết họ hàng (ông bà, cô dì, chú bác).',
  'Sơn Đoòng ở Quảng Bình là hang động tự nhiên lớn nhất thế giới, được phát hiện năm 1991 và khảo sát năm 2009-2010.',
  "Trường Đại học Bách khoa Hà Nội thành lập ngày 15/10/1956. It's also known as HUST; they'll say it's 'Bách khoa'.",
];
const corpus = (reps: number) => Array.from({ length: reps }, (_, i) => FIXTURES.map((p, k) => (i + k) % 3 === 0 ? p : p.toUpperCase())).flat();

/** Random Vietnamese-looking strings: syllables with tones, punctuation, digits, newlines, runs of spaces. */
const INITIALS = ['', 'b', 'c', 'ch', 'd', 'đ', 'g', 'gh', 'gi', 'h', 'k', 'kh', 'l', 'm', 'n', 'ng', 'nh', 'ph', 'qu', 'r', 's', 't', 'th', 'tr', 'v', 'x', 'Đ', 'Ng', 'Tr'];
const VOWELS = ['a', 'ă', 'â', 'e', 'ê', 'i', 'o', 'ô', 'ơ', 'u', 'ư', 'y', 'oa', 'uô', 'ươ', 'iê', 'ai', 'ao', 'ơi', 'ưu'];
const TONES = ['', '\u0300', '\u0301', '\u0309', '\u0303', '\u0323']; // huyền, sắc, hỏi, ngã, nặng (combined, then NFC)
const FINALS = ['', 'c', 'ch', 'm', 'n', 'ng', 'nh', 'p', 't'];
const PUNCT = ['.', ',', '!', '?', ';', ':', '…', '–', '—', '"', '(', ')', "'", "'s", '%', '/', '-', '«', '»', '&'];
const SPACES = [' ', ' ', ' ', ' ', '  ', '   ', '\n', '\n\n', ' \n', '\t', '\u00a0'];
function randomVietnamese(rng: Rng): string {
  const pick = <T>(a: readonly T[]) => a[rng.int(a.length)];
  let s = rng.int(4) === 0 ? pick(SPACES) : '';
  const n = 1 + rng.int(40);
  for (let i = 0; i < n; i++) {
    const r = rng.int(10);
    if (r < 7) {
      const v = pick(VOWELS);
      s += pick(INITIALS) + v[0] + pick(TONES) + v.slice(1) + pick(FINALS);
    } else if (r < 8) s += String(rng.int(100000));
    else s += pick(PUNCT);
    s += pick(SPACES);
  }
  if (rng.int(3) === 0) s = s.trimEnd();
  return s.normalize('NFC');
}

/** Every kind of character the pre-tokenization pattern distinguishes (lone surrogates too). */
const ATOMS = ['a', 'Đ', 'ệ', 'ư', 'x', '7', '٣', 'Ⅻ', '²', ' ', ' ', '  ', '\n', '\t', '\r\n', '\u00a0', '\u3000', '\u2028', '\u0085', '\ufeff',
  "'", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", '.', ',', '…', '—', '"', '(', '👋', '🏽', '𝐀', '\ud800', '\udc00', '世', 'ـ', '\u0301'];
function randomAtoms(rng: Rng): string {
  let s = '';
  for (let k = 1 + rng.int(12); k > 0; k--) s += ATOMS[rng.int(ATOMS.length)];
  return s;
}

let trained: Awaited<ReturnType<typeof trainTokenizer>>;
let tokFile: string;
test.before(async () => {
  trained = await trainTokenizer(corpus(4), { vocabSize: 500 });
  tokFile = path.join(root, 'tokenizer.json');
  await saveTokenizer(trained, tokFile);
});

test('exactly the requested vocabulary size, specials at 0/1/2, no <unk>', async () => {
  for (const vocabSize of [259, 300, 420, 500]) {
    const t = await trainTokenizer(corpus(4), { vocabSize });
    assert.equal(t.vocabSize, vocabSize);
    const doc = JSON.parse(t.json);
    assert.equal(Object.keys(doc.model.vocab).length, vocabSize);
    assert.equal(doc.model.merges.length, vocabSize - 259);
    assert.deepEqual(new Set(Object.values(doc.model.vocab)), new Set(Array.from({ length: vocabSize }, (_, i) => i)));
    assert.equal(t.stats.merges, vocabSize - 259);
    // the trainer's token count is what encode gives on the training text
    assert.equal(t.stats.tokens, corpus(4).reduce((n, s) => n + t.encode(s).length, 0));
  }
  const tok = loadTokenizer(tokFile);
  assert.deepEqual([tok.padId, tok.bosId, tok.eosId], [0, 1, 2]);
  const doc = JSON.parse(readFileSync(tokFile, 'utf8'));
  assert.deepEqual(doc.added_tokens.map((a: { id: number; content: string; special: boolean }) => [a.id, a.content, a.special]),
    [[0, '<pad>', true], [1, '<bos>', true], [2, '<eos>', true]]);
  assert.equal(doc.model.unk_token, null);
  assert.equal(doc.pre_tokenizer.type, 'ByteLevel');
  assert.equal(doc.pre_tokenizer.add_prefix_space, false);
  assert.equal(doc.pre_tokenizer.use_regex, true);
  assert.equal(doc.decoder.type, 'ByteLevel');
  // every byte is a token: ids 3..258 in byte order
  for (let b = 0; b < 256; b++) assert.equal(doc.model.vocab[BYTE_TO_CHAR[b]], 3 + b);
});

test('round trip: fixtures and 300 random Vietnamese strings decode back exactly', () => {
  const tok = loadTokenizer(tokFile);
  for (const s of [...FIXTURES, ...corpus(1), '', ' ', '   leading spaces', 'trailing spaces   ', '\n\nxuống dòng\n', 'số 0123456789 và 3,14']) {
    assert.equal(tok.decode(tok.encode(s)), s);
  }
  const rng = new Rng(7);
  for (let i = 0; i < 300; i++) {
    const s = randomVietnamese(rng);
    const ids = tok.encode(s);
    assert.ok(ids.every((id) => id >= 3 && id < tok.vocabSize), 'ordinary text uses no special ids');
    assert.equal(tok.decode(ids), s);
  }
  // not NFC, emoji, CJK (outside what the cleaner keeps): still exact, bytes are bytes
  for (const s of ['Vie\u0323\u0302t Nam', 'xin chào 👋🏽 世界', 'a\u0085b\ufeffc']) assert.equal(tok.decode(tok.encode(s)), s);
  // merges compress the training text
  const text = FIXTURES.join('\n');
  assert.ok(tok.encode(text).length < 0.6 * Buffer.byteLength(text), `${tok.encode(text).length} tokens for ${Buffer.byteLength(text)} bytes`);
});

test('the tokenizers package loads the file, encodes to the same ids and decodes the same', async () => {
  const tok = loadTokenizer(tokFile);
  const ref = hf.Tokenizer.fromFile(tokFile);
  assert.equal(ref.getVocabSize(true), tok.vocabSize);
  const rng = new Rng(11);
  const inputs = [...FIXTURES, ...Array.from({ length: 200 }, () => randomVietnamese(rng)), ...Array.from({ length: 200 }, () => randomAtoms(rng)),
    '  hai  khoảng   trắng ', "We're here, it's 'nó' — they've gone; I'm, you'll, he'd", 'a\u0085b\ufeffc d\u2028e\u3000f', 'xin chào 👋🏽 世界 ١٢٣',
    'văn bản có <bos> và <eos> ở giữa<pad>'];
  for (const s of inputs) {
    const ids = tok.encode(s);
    assert.deepEqual((await ref.encode(s)).getIds(), ids, `ids differ for ${JSON.stringify(s)}`);
    assert.equal(await ref.decode(ids, true), tok.decode(ids), `decode differs for ${JSON.stringify(s)}`);
  }
  // a literal special token string is that special id, in both (and decode drops it)
  assert.deepEqual(tok.encode('<bos>'), [1]);
  assert.equal(tok.decode([1, ...tok.encode('Việt'), 2, 0, 0]), 'Việt');
});

test('pre-tokenizer: the scanner gives exactly the GPT-2 regex pieces; a space sticks to the next word', () => {
  const re = preTokenizeRegex();
  const pieces = (s: string) => { const a: string[] = []; forEachPiece(s, (p) => a.push(p)); return a; };
  assert.deepEqual('Xin  chào, Việt Nam 2024!\n\n  Hà'.match(re),
    ['Xin', ' ', ' chào', ',', ' Việt', ' Nam', ' 2024', '!', '\n\n ', ' Hà']);
  // random strings over every kind of character the pattern distinguishes
  const rng = new Rng(5);
  for (let i = 0; i < 2000; i++) {
    const s = randomAtoms(rng);
    const want = s.match(re) ?? [];
    assert.deepEqual(pieces(s), want, JSON.stringify(s));
    assert.equal(want.join(''), s);
  }
  for (const s of [...FIXTURES, ...corpus(1)]) assert.deepEqual(pieces(s), s.match(re));
});

test('long pieces: the heap merge equals the rescanning merge, and the tokenizers package agrees', async () => {
  const tok = loadTokenizer(tokFile) as unknown as { mergeShort(b: Uint8Array): number[]; mergeLong(b: Uint8Array): number[]; encode(s: string): number[]; decode(ids: number[]): string };
  const rng = new Rng(9);
  const words = corpus(1).join(' ').split(/\s+/);
  for (let i = 0; i < 300; i++) {
    const w = words[rng.int(words.length)].repeat(1 + rng.int(4)) + (rng.int(2) ? 'aaaa'.repeat(rng.int(5)) : '');
    const b = Buffer.from(w, 'utf8');
    assert.deepEqual(tok.mergeLong(b), tok.mergeShort(b), w);
  }
  const ref = hf.Tokenizer.fromFile(tokFile);
  const long = ['-'.repeat(5000), 'a'.repeat(3001), 'nghiêng'.repeat(400), '1234567890'.repeat(300), ' ' + 'ư'.repeat(2000) + '.'];
  for (const s of long) {
    const ids = tok.encode(s);
    assert.equal(tok.decode(ids), s);
    assert.deepEqual((await ref.encode(s)).getIds(), ids, s.slice(0, 20));
  }
});

test('training is deterministic and independent of document order', async () => {
  const docs = corpus(3);
  const a = await trainTokenizer(docs, { vocabSize: 450 });
  const b = await trainTokenizer(docs, { vocabSize: 450 });
  const shuffled = [...docs];
  new Rng(3).shuffle(shuffled);
  async function* asAsync() { for (const d of shuffled) yield d; }
  const c = await trainTokenizer(asAsync(), { vocabSize: 450 });
  assert.equal(a.json, b.json);
  assert.equal(a.json, c.json);
  assert.equal(a.sha256, c.sha256);
});

/**
 * Reference trainer: recount every pair from scratch before each merge (no incremental updates),
 * same tie-break (highest count, then smallest first id, then smallest second id).
 */
function naiveMerges(texts: string[], merges: number): [number, number][] {
  const re = preTokenizeRegex();
  const counts = new Map<string, number>();
  for (const t of texts) for (const p of t.match(re) ?? []) counts.set(p, (counts.get(p) ?? 0) + 1);
  const words = [...counts].map(([w, f]) => ({ ids: [...Buffer.from(w, 'utf8')].map((b) => b + 3), f }));
  const out: [number, number][] = [];
  for (let m = 0; m < merges; m++) {
    const pc = new Map<string, number>();
    for (const { ids, f } of words) for (let i = 0; i + 1 < ids.length; i++) { const k = `${ids[i]},${ids[i + 1]}`; pc.set(k, (pc.get(k) ?? 0) + f); }
    let best: [number, number] | undefined, bestC = 0;
    for (const [k, c] of pc) {
      const [a, b] = k.split(',').map(Number) as [number, number];
      if (c > bestC || (c === bestC && best && (a < best[0] || (a === best[0] && b < best[1])))) { best = [a, b]; bestC = c; }
    }
    if (!best) break;
    out.push(best);
    const id = 259 + m;
    for (const w of words) {
      const n: number[] = [];
      for (let i = 0; i < w.ids.length; i++) {
        if (i + 1 < w.ids.length && w.ids[i] === best[0] && w.ids[i + 1] === best[1]) { n.push(id); i++; } else n.push(w.ids[i]);
      }
      w.ids = n;
    }
  }
  return out;
}

test('incremental pair counts give the same merges as recounting from scratch', async () => {
  // repeated letters exercise overlapping pairs ("aaaa", "ooo")
  const docs = [...FIXTURES, 'aaaa aaa aa a aaaaa ooo oooo hahaha lalala', 'ừ ừ ừừừ ờ ờờ'];
  const t = await trainTokenizer(docs, { vocabSize: 259 + 150 });
  const doc = JSON.parse(t.json);
  const vocab = doc.model.vocab as Record<string, number>;
  const got = (doc.model.merges as string[]).map((m) => m.split(' ').map((x) => vocab[x]));
  assert.deepEqual(got, naiveMerges(docs, 150));
});

test('a corpus too small for the vocabulary: a UserError naming the maximum reachable', async () => {
  const docs = ['Xin chào Việt Nam', 'Việt Nam xin chào'];
  const err = await trainTokenizer(docs, { vocabSize: 1000 }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof UserError);
  const m = /at most (\d+) tokens/.exec((err as Error).message);
  assert.ok(m, (err as Error).message);
  const max = Number(m[1]);
  assert.ok(max > 259 && max < 1000);
  // exactly that maximum is reachable, one more is not
  assert.equal((await trainTokenizer(docs, { vocabSize: max })).vocabSize, max);
  await assert.rejects(trainTokenizer(docs, { vocabSize: max + 1 }), UserError);
  await assert.rejects(trainTokenizer(docs, { vocabSize: 100 }), /vocab-size/);
});

test('tokenizerFromJson matches loadTokenizer, sha256 is of the file bytes', () => {
  const text = readFileSync(tokFile, 'utf8');
  const a = loadTokenizer(tokFile), b: Tokenizer = tokenizerFromJson(text);
  assert.equal(a.sha256, b.sha256);
  assert.equal(a.sha256, trained.sha256);
  assert.equal(tokenizerFromJson(text, 'abc').sha256, 'abc');
  assert.throws(() => tokenizerFromJson('{}', undefined, 'run/checkpoint.vilm'), /^TokenizerFileError: run\/checkpoint\.vilm: model: missing/);
  assert.deepEqual(b.encode(FIXTURES[0]), a.encode(FIXTURES[0]));
  assert.deepEqual(trained.encode(FIXTURES[0]), a.encode(FIXTURES[0]));
});

test('bad tokenizer.json files: named errors', () => {
  const good = JSON.parse(readFileSync(tokFile, 'utf8'));
  const write = (name: string, content: string) => { const f = path.join(root, name); writeFileSync(f, content); return f; };
  const mutate = (name: string, fn: (d: typeof good) => void) => { const d = structuredClone(good); fn(d); return write(name, JSON.stringify(d)); };
  const cases: [string, RegExp][] = [
    [write('notjson.json', '{"model": '), /notjson\.json: not valid JSON/],
    [write('array.json', '[]'), /array\.json: \(top level\)/],
    [mutate('wordpiece.json', (d) => { d.model.type = 'WordPiece'; }), /wordpiece\.json: model\.type/],
    [mutate('nomerges.json', (d) => { delete d.model.merges; }), /nomerges\.json: model\.merges/],
    [mutate('badmerge.json', (d) => { d.model.merges[5] = 'zzz qqq'; }), /badmerge\.json: model\.merges\[5\]: unknown token "zzz"/],
    [mutate('nopad.json', (d) => { d.added_tokens = d.added_tokens.slice(1); delete d.model.vocab['<pad>']; }), /nopad\.json: added_tokens: special token <pad> is missing/],
    [mutate('gap.json', (d) => { delete d.model.vocab[Object.keys(d.model.vocab).find((k) => d.model.vocab[k] === 300)!]; }), /gap\.json: model\.vocab: id 300 is missing|gap\.json: model\.merges/],
    [mutate('pretok.json', (d) => { d.pre_tokenizer = { type: 'Whitespace' }; }), /pretok\.json: pre_tokenizer/],
    [mutate('norm.json', (d) => { d.normalizer = { type: 'Lowercase' }; }), /norm\.json: normalizer/],
    [mutate('nobyte.json', (d) => { const v = d.model.vocab; const k = BYTE_TO_CHAR[0x41]; v['@@'] = v[k]; delete v[k]; }), /nobyte\.json: model\.vocab/],
    [mutate('dup.json', (d) => { d.model.vocab['zz'] = 5; }), /dup\.json: model\.vocab\["zz"\]: id 5 is also used/],
  ];
  for (const [file, re] of cases) {
    assert.throws(() => loadTokenizer(file), (e: unknown) => e instanceof TokenizerFileError && e instanceof UserError && re.test(e.message) && !e.message.includes('\n'), file);
  }
  assert.throws(() => loadTokenizer(path.join(root, 'missing.json')), /missing\.json: cannot read tokenizer \(ENOENT\)/);
  assert.throws(() => loadTokenizer(tokFile).decode([5, 500]), /token id 500 is outside the vocabulary \[0, 500\)/);
});

const SAMPLE_DIR = 'data/sample';
const sampleFiles = existsSync(SAMPLE_DIR) ? readdirSync(SAMPLE_DIR).filter((f) => f.endsWith('.jsonl')) : [];
test('round trip on the sample corpus (data/sample)', { skip: sampleFiles.length === 0 ? 'no data/sample/*.jsonl yet' : false }, () => {
  const tok = loadTokenizer(tokFile);
  for (const f of sampleFiles) {
    for (const line of readFileSync(path.join(SAMPLE_DIR, f), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const { text } = JSON.parse(line) as { text: string };
      assert.equal(tok.decode(tok.encode(text)), text);
    }
  }
});
