/**
 * Printing byte-level BPE tokens as text, one token at a time.
 *
 * A token of vilm's tokenizer is a run of raw bytes, and one UTF-8 character can be split across
 * tokens (`ấ` is E1 BA A5: a token may end after E1). Decoding token by token would print a U+FFFD
 * for each cut (a user saw `nghấp�`). `Utf8TokenStream` instead feeds every token's bytes to Node's
 * `StringDecoder`, which returns only complete characters and holds an incomplete trailing
 * sequence back until the next token completes it:
 *
 *   const s = new Utf8TokenStream(tokenizer);
 *   for (const id of ids) process.stdout.write(s.push(id));   // never a cut character
 *   process.stdout.write(s.end());                            // '' — a cut tail is dropped
 *
 * Bytes that can never form a character (a stray continuation byte, E1 followed by `A`) are
 * invalid output of the model, not a cut: they become U+FFFD as soon as that is certain, exactly as
 * `tokenizer.decode` shows them. What is still held back at `end()` never completed (generation
 * stopped inside a character, or the bytes were invalid): by default it is dropped (`droppedTail`
 * says so), or with `tail: 'replace'` it is returned as U+FFFD, so that the pieces joined equal
 * `tokenizer.decode(ids)` exactly.
 *
 * `tokenBytes` and `showToken` also serve `vilm predict --top-next`, which lists single tokens:
 * `showToken` JSON-quotes the text (so spaces are visible) and writes bytes that are not complete
 * UTF-8 as `<0xE1>`.
 */
import { StringDecoder } from 'node:string_decoder';
import { BpeTokenizer } from '../tokenizer/bpe.js';
import { tokenStringToBytes } from '../tokenizer/bytelevel.js';
import type { Tokenizer } from '../tokenizer/types.js';

const NO_BYTES = new Uint8Array(0);
const tables = new WeakMap<Tokenizer, Uint8Array[]>();

/**
 * The raw bytes of token `id`, as `tokenizer.decode` joins them (empty for `<pad>`/`<bos>`/`<eos>`
 * and for ids outside the tokenizer's vocabulary). Exact for vilm's byte-level BPE tokenizer; for
 * any other `Tokenizer` it is the UTF-8 of `decode([id])`, which is exact when its tokens are whole
 * characters.
 */
export function tokenBytes(tokenizer: Tokenizer, id: number): Uint8Array {
  if (!Number.isInteger(id) || id < 0 || id >= tokenizer.vocabSize) return NO_BYTES;
  let table = tables.get(tokenizer);
  if (table === undefined) {
    table = byteTable(tokenizer);
    tables.set(tokenizer, table);
  }
  return table[id];
}

function byteTable(tokenizer: Tokenizer): Uint8Array[] {
  if (tokenizer instanceof BpeTokenizer) {
    const special = new Set(tokenizer.model.specials.map((s) => s.id));
    return tokenizer.model.vocab.map((t, id) => (special.has(id) ? NO_BYTES : tokenStringToBytes(t) ?? NO_BYTES));
  }
  return Array.from({ length: tokenizer.vocabSize }, (_, id) => new Uint8Array(Buffer.from(tokenizer.decode([id]), 'utf8')));
}

/** What `end()` does with bytes still held back: drop them (default) or return them as U+FFFD. */
export type CutTail = 'drop' | 'replace';

/** Text of a token stream in pieces of complete characters (see the header). */
export class Utf8TokenStream {
  private readonly decoder = new StringDecoder('utf8');
  private readonly tail: CutTail;
  private dropped = false;

  constructor(private readonly tokenizer: Tokenizer, opts: { tail?: CutTail } = {}) {
    this.tail = opts.tail ?? 'drop';
  }

  /** The new complete characters that token `id` makes available ('' when it only starts one). */
  push(id: number): string {
    const b = tokenBytes(this.tokenizer, id);
    return b.length === 0 ? '' : this.decoder.write(Buffer.from(b.buffer, b.byteOffset, b.length));
  }

  /** Flush at the end of the stream: '' when nothing is held back; see `CutTail` otherwise. */
  end(): string {
    const rest = this.decoder.end();
    if (rest === '') return '';
    if (this.tail === 'replace') return rest;
    this.dropped = true;
    return '';
  }

  /** True after `end()` dropped bytes that never formed a character. */
  get droppedTail(): boolean { return this.dropped; }
}

const strict = new TextDecoder('utf-8', { fatal: true });

function validUtf8(bytes: Uint8Array): string | undefined {
  try { return strict.decode(bytes); } catch { return undefined; }
}

const hex = (b: number): string => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;

/** A single token for people to read. */
export interface ShownToken {
  /** e.g. `" là"`, `" ngh"<0xE1>`, `<0xBA><0xA5>`, `<eos>`: text runs JSON-quoted, other bytes in hex */
  display: string;
  /** the same without the quotes: the text, with bytes that are not complete UTF-8 as `<0xE1>` */
  text: string;
  /** true when the token's bytes are whole UTF-8 characters (special tokens count as complete) */
  complete: boolean;
  /** the raw bytes in hex, space-separated ('' for special tokens) */
  bytes: string;
}

/** How `vilm predict --top-next` shows token `id` (see `ShownToken`). */
export function showToken(tokenizer: Tokenizer, id: number): ShownToken {
  const special = id === tokenizer.padId ? '<pad>' : id === tokenizer.bosId ? '<bos>' : id === tokenizer.eosId ? '<eos>'
    : id >= tokenizer.vocabSize ? `<unused ${id}>` : undefined;
  if (special !== undefined) return { display: special, text: special, complete: true, bytes: '' };
  const b = tokenBytes(tokenizer, id);
  const bytes = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
  const whole = validUtf8(b);
  if (whole !== undefined) return { display: JSON.stringify(whole), text: whole, complete: true, bytes };
  // split into the longest valid runs and single bytes that belong to no complete character
  // (tokens are a few bytes long, so trying every end is cheap)
  let display = '', text = '';
  for (let i = 0; i < b.length;) {
    let j = b.length, run: string | undefined;
    for (; j > i; j--) if ((run = validUtf8(b.subarray(i, j))) !== undefined) break;
    if (j > i && run !== undefined) {
      display += JSON.stringify(run);
      text += run;
      i = j;
    } else {
      display += hex(b[i]);
      text += hex(b[i]);
      i++;
    }
  }
  return { display, text, complete: false, bytes };
}
