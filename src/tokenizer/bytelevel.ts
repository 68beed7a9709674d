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

/**
 * Split `text` into pre-tokenized pieces, calling `onPiece` for each in order. Characters the
 * pattern skips (none in practice: the alternatives cover every code point) are passed through as
 * their own piece, as Hugging Face's `Isolated` split behaviour does.
 */
export function forEachPiece(text: string, re: RegExp, onPiece: (piece: string) => void): void {
  re.lastIndex = 0;
  let last = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    if (m.index > last) onPiece(text.slice(last, m.index));
    onPiece(m[0]);
    last = m.index + m[0].length;
  }
  if (last < text.length) onPiece(text.slice(last));
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
