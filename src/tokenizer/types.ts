/**
 * The tokenizer contract used by data prepare, eval and predict. Implemented in
 * `src/tokenizer/index.ts` (`loadTokenizer(file)`), saved as a Hugging Face `tokenizer.json`.
 */
export interface Tokenizer {
  /** exactly the trained vocabulary size, special tokens included */
  readonly vocabSize: number;
  /** `<pad>` is always 0 */
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  /** sha256 (hex) of the tokenizer.json bytes it was loaded from */
  readonly sha256: string;
  /** ids of the text, no special tokens added */
  encode(text: string): number[];
  /** text of the ids; special tokens are dropped */
  decode(ids: ArrayLike<number>): string;
}
