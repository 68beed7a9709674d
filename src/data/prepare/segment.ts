/**
 * Cut a cleaned document into cut-able units: sentences, grouped into paragraphs. Every cut point
 * of a sequence lies between two units, so sequences end at paragraph or sentence boundaries.
 *
 * Concatenating the units gives back the text exactly. Where a unit ends:
 *  - paragraph boundary: after the whole whitespace run that contains a newline (the newlines stay
 *    with the paragraph they close, the next unit starts with a letter);
 *  - sentence boundary: right after `.`, `!`, `?` or `…` (plus closing quotes/brackets) when
 *    whitespace and then more text follow. The space stays in front of the next sentence, which is
 *    how byte-level BPE pre-tokenizers attach spaces (" từ"), so encoding the units one by one
 *    gives (nearly always exactly) the ids of encoding the whole text.
 * Abbreviations such as "TP. Hồ Chí Minh" also count as sentence ends; a cut there is harmless
 * (it is only a candidate; the packer prefers paragraph ends).
 */
export type BoundaryKind = 'paragraph' | 'sentence' | 'end';

export interface TextUnit {
  text: string;
  /** what kind of boundary follows this unit */
  end: BoundaryKind;
}

// alternative 1: sentence end — punctuation, closers, then non-newline whitespace before more text;
// alternative 2: any whitespace run holding a newline (paragraph end).
const BOUNDARY = /([.!?…]+["'”’)\]»]*)[^\S\n]+(?=\S)|[^\S\n]*\n\s*/g;

export function segmentText(text: string): TextUnit[] {
  const units: TextUnit[] = [];
  let start = 0;
  BOUNDARY.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = BOUNDARY.exec(text)) !== null) {
    const sentence = m[1] !== undefined;
    const cut = sentence ? m.index + m[1].length : m.index + m[0].length;
    if (cut >= text.length) break; // trailing whitespace stays with the last unit
    if (cut > start) {
      units.push({ text: text.slice(start, cut), end: sentence ? 'sentence' : 'paragraph' });
      start = cut;
    }
  }
  if (start < text.length) units.push({ text: text.slice(start), end: 'end' });
  return units;
}
