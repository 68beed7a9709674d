/**
 * GPT-2 byte-level pieces shared by the trainer and the encoder: the byte → printable-character
 * alphabet, the pre-tokenization regex, and the split on special tokens that Hugging Face's
 * tokenizer does before pre-tokenization (so vilm and the `tokenizers` package agree on every input).
 */

/**
 * GPT-2's `bytes_to_unicode`: the 188 printable Latin-1 bytes map to themselves, the other 68
 * (control characters, space, 0x7F–0xA0, 0xAD) to U+0100, U+0101, … in byte order. So every byte is
 * one visible character and a token string never contains a space (space is `Ġ`, newline `Ċ`).
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCharCode(printable(b) ? b : 256 + n++);
  return out;
})();

/** Inverse of `BYTE_TO_CHAR`: char code → byte, -1 for characters outside the alphabet. */
export const CHAR_TO_BYTE: Int16Array = (() => {
  const t = new Int16Array(512).fill(-1);
  BYTE_TO_CHAR.forEach((c, b) => { t[c.charCodeAt(0)] = b; });
  return t;
})();

/** Token string (byte-level characters) of raw bytes. */
export function bytesToTokenString(bytes: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]];
  return s;
}

/** Raw bytes of a token string; undefined when a character is not in the byte-level alphabet. */
export function tokenStringToBytes(token: string): Uint8Array | undefined {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    const b = c < 512 ? CHAR_TO_BYTE[c] : -1;
    if (b < 0) return undefined;
    out[i] = b;
  }
  return out;
}

/**
 * Whitespace as Hugging Face's regex engine (Oniguruma) sees `\s`: the Unicode White_Space set.
 * JavaScript's `\s` differs in two code points (it adds U+FEFF and lacks U+0085), so the class is
 * spelled out to keep vilm's pieces identical to the `tokenizers` package's.
 */
const WS = '\\t\\n\\v\\f\\r\\x85\\p{Zs}\\u2028\\u2029';

/**
 * The GPT-2 pre-tokenization pattern, as used by the ByteLevel pre-tokenizer (use_regex: true):
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * A space sticks to the following word (` Việt`), runs of spaces keep their last space for the
 * next word, every character falls in exactly one piece, so joining the pieces gives the text back.
 */
export function preTokenizeRegex(): RegExp {
  return new RegExp(
    `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
    'gu',
  );
}

/** Character classes of the pre-tokenization pattern. */
const UNKNOWN = 0, LETTER = 1, NUMBER = 2, SPACE = 3, OTHER = 4;
const IS_LETTER = /^\p{L}$/u, IS_NUMBER = /^\p{N}$/u, IS_SPACE = new RegExp(`^[${WS}]$`, 'u');
/** class of every BMP code unit, filled on first sight (0 = not yet known) */
const BMP_CLASS = new Uint8Array(65536);
const ASTRAL_CLASS = new Map<number, number>();

function classify(ch: string): number {
  return IS_LETTER.test(ch) ? LETTER : IS_NUMBER.test(ch) ? NUMBER : IS_SPACE.test(ch) ? SPACE : OTHER;
}

/** Class of the code point at `i` (a lone surrogate is OTHER, as in the `u`-mode regex). */
function classAt(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
    const d = text.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) {
      const cp = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
      let k = ASTRAL_CLASS.get(cp);
      if (k === undefined) { k = classify(String.fromCodePoint(cp)); ASTRAL_CLASS.set(cp, k); }
      return k;
    }
  }
  let k = BMP_CLASS[c];
  if (k === UNKNOWN) { k = classify(String.fromCharCode(c)); BMP_CLASS[c] = k; }
  return k;
}

/** UTF-16 width of the code point at `i`. */
function widthAt(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
    const d = text.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return 2;
  }
  return 1;
}

/** End of the run of class `k` starting at `i`. */
function runEnd(text: string, i: number, k: number): number {
  const n = text.length;
  while (i < n && classAt(text, i) === k) i += widthAt(text, i);
  return i;
}

const CONTRACTIONS = ['s', 't', 're', 've', 'm', 'll', 'd'];

/**
 * End (exclusive) of the pre-tokenized piece that starts at `i`: a hand-written scanner that
 * gives exactly the matches of `preTokenizeRegex()` (checked against it in the tests and on the
 * whole viwiki corpus by scripts/bench-tokenizer.ts). Written out because it lets the encoder
 * find pieces without allocating a match object and substring per piece — about the half of the
 * encoder's time the regex took. The alternatives in the pattern's order:
 *   's|'t|'re|'ve|'m|'ll|'d           a contraction after an apostrophe
 *   ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`   a run of one class, with at most one U+0020 before it
 *   \s+(?!\S)                         whitespace not followed by a non-space: a run at the end of the
 *                                     text, else the run less its last character (left for the next word)
 *   \s+                               a single whitespace character before a non-space
 */
export function pieceEnd(text: string, i: number): number {
  const n = text.length;
  const c = text.charCodeAt(i);
  if (c === 0x27) {
    for (const t of CONTRACTIONS) if (text.startsWith(t, i + 1)) return i + 1 + t.length;
  }
  const k0 = classAt(text, i);
  if (k0 !== SPACE) return runEnd(text, i, k0);
  if (c === 0x20 && i + 1 < n) {
    const k1 = classAt(text, i + 1);
    if (k1 !== SPACE) return runEnd(text, i + 1, k1);
  }
  const j = runEnd(text, i, SPACE);
  if (j === n) return n;
  // a non-space follows at j: leave the last whitespace character (all are one UTF-16 unit) to it,
  // unless the run is that one character
  return j - 1 > i ? j - 1 : j;
}

/** Split `text` into its pre-tokenized pieces, calling `onPiece` for each in order. */
export function forEachPiece(text: string, onPiece: (piece: string) => void): void {
  let i = 0;
  while (i < text.length) {
    const e = pieceEnd(text, i);
    onPiece(text.slice(i, e));
    i = e;
  }
}

/**
 * Split on literal special-token strings the way Hugging Face's added-vocabulary does before
 * pre-tokenization (leftmost match, longest content first): `onText` gets the text between them,
 * `onSpecial` the id of each one found. With no `<` in the text (the usual case) this is one call.
 */
export function splitSpecials(
  text: string,
  specials: readonly { content: string; id: number }[],
  onText: (t: string) => void,
  onSpecial: (id: number) => void,
): void {
  if (specials.length === 0) { onText(text); return; }
  let pos = 0;
  for (;;) {
    let best = -1;
    let bestSpec: { content: string; id: number } | undefined;
    for (const s of specials) {
      const i = text.indexOf(s.content, pos);
      if (i >= 0 && (best < 0 || i < best || (i === best && s.content.length > bestSpec!.content.length))) { best = i; bestSpec = s; }
    }
    if (best < 0 || !bestSpec) break;
    if (best > pos) onText(text.slice(pos, best));
    onSpecial(bestSpec.id);
    pos = best + bestSpec.content.length;
  }
  if (pos < text.length) onText(text.slice(pos));
}
