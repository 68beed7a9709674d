import { createReadStream } from 'node:fs';
import { UserError } from '../util/errors.js';
import { AtomicWriteStream } from '../util/atomic.js';
import type { CorpusDoc } from './types.js';

/**
 * Streaming JSONL reader: constant memory, strict UTF-8 (invalid bytes are an error naming the file
 * and line), a final line without newline that does not parse is reported as truncated.
 */
export async function* readJsonlLines(file: string): AsyncGenerator<{ value: unknown; line: number }> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let carry = '';
  let line = 0;
  let stream;
  try {
    stream = createReadStream(file);
  } catch (e) {
    throw new UserError(`${file}: cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let bytesSeen = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let text: string;
      try {
        text = decoder.decode(chunk, { stream: true });
      } catch {
        // find the line of the bad byte: count newlines before it
        throw new UserError(`${file}: invalid UTF-8 near line ${line + 1 + countNewlines(carry)}`);
      }
      bytesSeen += chunk.length;
      carry += text;
      let nl: number;
      while ((nl = carry.indexOf('\n')) >= 0) {
        const raw = carry.slice(0, nl);
        carry = carry.slice(nl + 1);
        line++;
        if (raw.trim() === '') continue;
        yield { value: parseLine(file, line, raw, false), line };
      }
    }
    try { carry += decoder.decode(); } catch { throw new UserError(`${file}: invalid UTF-8 at end of file (line ${line + 1})`); }
  } catch (e) {
    if (e instanceof UserError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${file}: cannot read (${code ?? (e as Error).message})`);
  }
  if (carry.trim() !== '') {
    line++;
    yield { value: parseLine(file, line, carry, true), line };
  }
  if (bytesSeen === 0) throw new UserError(`${file}: empty input`);
}

function countNewlines(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) === 10) n++;
  return n;
}

function parseLine(file: string, line: number, raw: string, last: boolean): unknown {
  try {
    return JSON.parse(raw);
  } catch (e) {
    const why = last ? 'truncated JSON (file ends mid-record)' : `invalid JSON: ${(e as Error).message}`;
    throw new UserError(`${file}:${line}: ${why}`);
  }
}

/** Read corpus documents; `text` must be a string (named error otherwise). Other fields default. */
export async function* readCorpus(file: string, textField = 'text'): AsyncGenerator<CorpusDoc & { line: number }> {
  for await (const { value, line } of readJsonlLines(file)) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new UserError(`${file}:${line}: expected a JSON object`);
    const o = value as Record<string, unknown>;
    const text = o[textField];
    if (typeof text !== 'string') throw new UserError(`${file}:${line}: missing text field '${textField}'`);
    yield {
      id: String(o.id ?? `${file}:${line}`),
      title: typeof o.title === 'string' ? o.title : '',
      text,
      source: typeof o.source === 'string' ? o.source : '',
      ...(typeof o.url === 'string' ? { url: o.url } : {}),
      line,
    };
  }
}

/** JSONL output that appears under its name only on `commit()` (temp file + rename). */
export class JsonlWriter {
  private constructor(private readonly out: AtomicWriteStream) {}
  count = 0;
  /** `opts` as for `AtomicWriteStream.open` (a named temp file, resumed at a byte offset); `count` starts the line count. */
  static async open(file: string, opts: { tmp?: string; resumeAt?: number; count?: number } = {}): Promise<JsonlWriter> {
    const w = new JsonlWriter(await AtomicWriteStream.open(file, opts));
    w.count = opts.count ?? 0;
    return w;
  }
  /** Bytes written to the temp file so far (a resume point). */
  get bytes(): number { return this.out.bytes; }
  async write(doc: object): Promise<void> {
    await this.out.write(JSON.stringify(doc) + '\n');
    this.count++;
  }
  commit(): Promise<void> { return this.out.commit(); }
  abort(): Promise<void> { return this.out.abort(); }
  /** Stop writing but keep the temp file for a later resume. */
  close(): Promise<void> { return this.out.close(); }
}
