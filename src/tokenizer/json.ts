/**
 * The Hugging Face `tokenizer.json` format for vilm's byte-level BPE: write it, and read it back
 * with validation (every problem is a `TokenizerFileError` naming the file and the field).
 *
 * Layout written (ids): `<pad>`=0, `<bos>`=1, `<eos>`=2, then the 256 single-byte tokens, then one
 * token per merge in merge order. Model BPE with vocab + merges ("a b" strings, the format every
 * `tokenizers` version reads), ByteLevel pre-tokenizer (add_prefix_space false, use_regex true) and
 * decoder, the specials as added_tokens (special: true), no normalizer, no post-processor (encode
 * adds no `<bos>`/`<eos>`).
 */
import { UserError } from '../util/errors.js';
import type { BpeModel, SpecialToken } from './bpe.js';
import { MAX_VOCAB_IDS } from './bpe.js';
import { BYTE_TO_CHAR, tokenStringToBytes } from './bytelevel.js';

/** A tokenizer.json that vilm cannot use; the message names the file and the field. */
export class TokenizerFileError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerFileError';
  }
}

export const SPECIAL_TOKENS = ['<pad>', '<bos>', '<eos>'] as const;

/** tokenizer.json text of a model (vocab in id order, merges in rank order). */
export function modelToJson(m: BpeModel): string {
  const vocab: Record<string, number> = {};
  m.vocab.forEach((t, id) => { vocab[t] = id; });
  const doc = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: m.specials.map((s) => ({
      id: s.id, content: s.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: m.merges.map(([a, b]) => `${m.vocab[a]} ${m.vocab[b]}`),
    },
  };
  return JSON.stringify(doc, null, 2) + '\n';
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Parse and validate tokenizer.json text. `where` names the file in errors. Accepts what vilm
 * writes and equivalent files from elsewhere (ids in any order, merges as "a b" or ["a", "b"]),
 * provided the encoding vilm implements is the one the file describes.
 */
export function modelFromJson(text: string, where: string): BpeModel {
  const fail = (field: string, why: string): never => { throw new TokenizerFileError(`${where}: ${field}: ${why}`); };
  let doc: unknown;
  try { doc = JSON.parse(text); } catch (e) { throw new TokenizerFileError(`${where}: not valid JSON (${(e as Error).message})`); }
  if (!isObj(doc)) fail('(top level)', 'expected a JSON object');
  const d = doc as Obj;
  const model = d.model;
  if (!isObj(model)) fail('model', 'missing (expected a BPE model object)');
  const mo = model as Obj;
  if (mo.type !== 'BPE') fail('model.type', `expected "BPE", got ${JSON.stringify(mo.type)}`);
  if (mo.dropout !== undefined && mo.dropout !== null && mo.dropout !== 0) fail('model.dropout', 'BPE dropout is not supported');
  for (const f of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    if (mo[f] !== undefined && mo[f] !== null && mo[f] !== '') fail(`model.${f}`, 'not supported by a byte-level tokenizer');
  }
  if (mo.byte_fallback === true) fail('model.byte_fallback', 'not supported');
  if (mo.ignore_merges === true) fail('model.ignore_merges', 'not supported');
  if (d.normalizer !== undefined && d.normalizer !== null) fail('normalizer', 'expected null (vilm applies no normalizer; clean the text first)');
  const pre = d.pre_tokenizer;
  if (!isObj(pre) || pre.type !== 'ByteLevel') fail('pre_tokenizer', 'expected {"type": "ByteLevel"}');
  if ((pre as Obj).add_prefix_space === true) fail('pre_tokenizer.add_prefix_space', 'expected false');
  if ((pre as Obj).use_regex === false) fail('pre_tokenizer.use_regex', 'expected true');
  const dec = d.decoder;
  if (!isObj(dec) || dec.type !== 'ByteLevel') fail('decoder', 'expected {"type": "ByteLevel"}');
  const post = d.post_processor;
  if (post !== undefined && post !== null && !(isObj(post) && post.type === 'ByteLevel')) {
    fail('post_processor', 'expected null or ByteLevel (vilm adds <bos>/<eos> itself)');
  }

  // vocab: token → id, ids 0..n-1 each used once (specials may live only in added_tokens)
  const vocabObj = mo.vocab;
  if (!isObj(vocabObj)) fail('model.vocab', 'expected an object {token: id}');
  const byId: (string | undefined)[] = [];
  for (const [tok, id] of Object.entries(vocabObj as Obj)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= MAX_VOCAB_IDS) fail(`model.vocab[${JSON.stringify(tok)}]`, `bad id ${JSON.stringify(id)}`);
    const i = id as number;
    if (byId[i] !== undefined) fail(`model.vocab[${JSON.stringify(tok)}]`, `id ${i} is also used by ${JSON.stringify(byId[i])}`);
    byId[i] = tok;
  }

  // specials
  const added = d.added_tokens ?? [];
  if (!Array.isArray(added)) fail('added_tokens', 'expected an array');
  const specials: SpecialToken[] = [];
  (added as unknown[]).forEach((a, k) => {
    if (!isObj(a) || typeof a.content !== 'string' || typeof a.id !== 'number' || !Number.isInteger(a.id) || a.id < 0 || a.id >= MAX_VOCAB_IDS) {
      fail(`added_tokens[${k}]`, 'expected {id: integer, content: string}');
    }
    const t = a as { id: number; content: string; special?: unknown };
    if (t.special !== true) fail(`added_tokens[${k}]`, `${JSON.stringify(t.content)} is not special (only special added tokens are supported)`);
    if (byId[t.id] !== undefined && byId[t.id] !== t.content) fail(`added_tokens[${k}]`, `id ${t.id} is ${JSON.stringify(byId[t.id])} in model.vocab`);
    byId[t.id] = t.content;
    specials.push({ content: t.content, id: t.id });
  });
  for (const name of SPECIAL_TOKENS) {
    if (!specials.some((s) => s.content === name)) fail('added_tokens', `special token ${name} is missing`);
  }
  const pad = specials.find((s) => s.content === '<pad>')!;
  if (pad.id !== 0) fail('added_tokens', `<pad> must be id 0, got ${pad.id}`);

  const vocab: string[] = new Array(byId.length);
  for (let i = 0; i < byId.length; i++) {
    if (byId[i] === undefined) fail('model.vocab', `id ${i} is missing (ids must be 0..${byId.length - 1})`);
    vocab[i] = byId[i]!;
  }
  const specialIds = new Set(specials.map((s) => s.id));
  const index = new Map<string, number>();
  vocab.forEach((t, id) => {
    if (specialIds.has(id)) return;
    if (t.length === 0 || tokenStringToBytes(t) === undefined) fail(`model.vocab[${JSON.stringify(t)}]`, 'not a byte-level token (characters outside the GPT-2 byte alphabet)');
    index.set(t, id);
  });
  for (let b = 0; b < 256; b++) {
    if (!index.has(BYTE_TO_CHAR[b])) fail('model.vocab', `no token for byte 0x${b.toString(16).padStart(2, '0')} (${JSON.stringify(BYTE_TO_CHAR[b])}); a byte-level vocabulary needs all 256`);
  }

  // merges: "a b" or ["a", "b"]; both parts and their concatenation must be tokens
  const mergesRaw = mo.merges;
  if (!Array.isArray(mergesRaw)) fail('model.merges', 'expected an array');
  const merges: [number, number][] = (mergesRaw as unknown[]).map((m, k) => {
    let parts: unknown[];
    if (typeof m === 'string') parts = m.split(' ');
    else if (Array.isArray(m)) parts = m;
    else return fail(`model.merges[${k}]`, 'expected "a b" or ["a", "b"]');
    if (parts.length !== 2 || typeof parts[0] !== 'string' || typeof parts[1] !== 'string') return fail(`model.merges[${k}]`, `expected two tokens, got ${JSON.stringify(m)}`);
    const [x, y] = parts as [string, string];
    const a = index.get(x), b = index.get(y);
    if (a === undefined) return fail(`model.merges[${k}]`, `unknown token ${JSON.stringify(x)}`);
    if (b === undefined) return fail(`model.merges[${k}]`, `unknown token ${JSON.stringify(y)}`);
    if (!index.has(x + y)) return fail(`model.merges[${k}]`, `merged token ${JSON.stringify(x + y)} is not in model.vocab`);
    return [a, b];
  });
  return { vocab, merges, specials };
}
