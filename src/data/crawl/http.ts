import { UserError } from '../../util/errors.js';
import { log } from '../../util/log.js';

/**
 * A polite HTTP client over Node's global fetch for the crawlers: a rate limit (requests per second,
 * counted at request start, retries included), retries with exponential backoff and jitter on
 * 429/408/5xx and network errors, `Retry-After` honoured (seconds or an HTTP date), and one-line
 * `UserError`s naming the URL when it gives up.
 */
export interface HttpOptions {
  /** requests per second (default 2) */
  rate?: number;
  /** retries after the first attempt (default 5) */
  retries?: number;
  /** first backoff in ms; doubles each retry (default 1000) */
  retryBaseMs?: number;
  /** longest single wait, also caps Retry-After (default 120 s) */
  maxWaitMs?: number;
  /** per-request timeout (default 60 s) */
  timeoutMs?: number;
  userAgent?: string;
  /** extra headers on every request (e.g. Authorization) */
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export const DEFAULT_USER_AGENT = 'vilm-crawl/0.1 (Vietnamese language-model corpus builder; Node.js fetch)';

/** Thrown when the caller's AbortSignal fires (Ctrl-C): the crawl keeps its partial output. */
export class CrawlInterrupted extends Error {
  constructor() { super('interrupted'); this.name = 'CrawlInterrupted'; }
}

export class HttpClient {
  private readonly intervalMs: number;
  private nextSlot = 0;
  readonly retries: number;
  private readonly retryBaseMs: number;
  private readonly maxWaitMs: number;
  private readonly timeoutMs: number;
  private readonly headers: Record<string, string>;
  readonly signal: AbortSignal | undefined;
  /** requests sent, retries included (for summaries and tests) */
  requests = 0;

  constructor(opts: HttpOptions = {}) {
    const rate = opts.rate ?? 2;
    if (!(rate > 0)) throw new UserError(`--rate must be a positive number of requests per second, got ${rate}`);
    this.intervalMs = 1000 / rate;
    this.retries = opts.retries ?? 5;
    this.retryBaseMs = opts.retryBaseMs ?? 1000;
    this.maxWaitMs = opts.maxWaitMs ?? 120_000;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.headers = { 'user-agent': opts.userAgent ?? DEFAULT_USER_AGENT, ...opts.headers };
    this.signal = opts.signal;
  }

  /**
   * GET/whatever `url`; resolves with a 2xx response. 429, 408 and 5xx and network errors are retried;
   * other statuses and exhausted retries throw a UserError naming the URL.
   */
  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      await this.waitForSlot();
      this.requests++;
      let res: Response;
      try {
        const signals = [AbortSignal.timeout(this.timeoutMs), ...(this.signal ? [this.signal] : []), ...(init.signal ? [init.signal] : [])];
        // init.headers may be a Headers object (hyparquet's Range requests): merge through Headers
        const headers = new Headers(init.headers);
        for (const [k, v] of Object.entries(this.headers)) if (!headers.has(k)) headers.set(k, v);
        res = await fetch(url, { ...init, headers, signal: AbortSignal.any(signals) });
      } catch (e) {
        if (this.signal?.aborted) throw new CrawlInterrupted();
        const why = networkReason(e);
        if (attempt >= this.retries) throw new UserError(`${url}: ${why} (gave up after ${this.retries} retries)`);
        const wait = this.backoff(attempt);
        log.warn(`${why} from ${url}; retry ${attempt + 1}/${this.retries} in ${(wait / 1000).toFixed(1)} s`);
        await this.sleep(wait);
        continue;
      }
      if (res.ok) return res;
      const retryable = res.status === 429 || res.status === 408 || res.status >= 500;
      let detail = await errorDetail(res);
      if (detail.toLowerCase() === res.statusText.toLowerCase()) detail = ''; // "Not Found (Not Found)"
      const what = `HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}${detail ? ` (${detail})` : ''}`;
      if (!retryable) throw new UserError(`${url}: ${what}`);
      if (attempt >= this.retries) throw new UserError(`${url}: ${what} (gave up after ${this.retries} retries)`);
      const after = parseRetryAfter(res.headers.get('retry-after'));
      const wait = Math.min(after ?? this.backoff(attempt), this.maxWaitMs);
      log.warn(`HTTP ${res.status} from ${url}; retry ${attempt + 1}/${this.retries} in ${(wait / 1000).toFixed(1)} s${after !== undefined ? ' (Retry-After)' : ''}`);
      await this.sleep(wait);
    }
  }

  /** GET and parse JSON; a body that is not JSON is a UserError naming the URL. */
  async getJson(url: string): Promise<unknown> {
    let body: ArrayBuffer;
    for (let attempt = 0; ; attempt++) {
      const res = await this.fetch(url, { headers: { accept: 'application/json' } });
      try {
        body = await res.arrayBuffer();
        break;
      } catch (e) {
        // the connection dropped mid-body: retry like a network error
        if (this.signal?.aborted) throw new CrawlInterrupted();
        const why = networkReason(e);
        if (attempt >= this.retries) throw new UserError(`${url}: response cut off, ${why} (gave up after ${this.retries} retries)`);
        const wait = this.backoff(attempt);
        log.warn(`response cut off from ${url}; retry ${attempt + 1}/${this.retries} in ${(wait / 1000).toFixed(1)} s`);
        await this.sleep(wait);
      }
    }
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(body);
    } catch {
      throw new UserError(`${url}: response is not valid UTF-8`);
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new UserError(`${url}: response is not JSON (${JSON.stringify(text.slice(0, 80))}…)`);
    }
  }

  /** The fetch signature hyparquet wants (range requests for Parquet shards), through this client. */
  readonly fetchFn = ((input: string | URL | Request, init?: RequestInit) =>
    this.fetch(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url, init)) as typeof globalThis.fetch;

  /** base · 2^attempt, plus up to one base of jitter so that many clients do not retry in lockstep. */
  private backoff(attempt: number): number {
    return Math.min(this.retryBaseMs * 2 ** attempt + Math.random() * this.retryBaseMs, this.maxWaitMs);
  }

  private async waitForSlot(): Promise<void> {
    const now = Date.now();
    const at = Math.max(now, this.nextSlot);
    this.nextSlot = at + this.intervalMs;
    if (at > now) await this.sleep(at - now);
  }

  /** A sleep that Ctrl-C cuts short (throws CrawlInterrupted). */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.signal?.aborted) { reject(new CrawlInterrupted()); return; }
      const onAbort = () => { clearTimeout(t); reject(new CrawlInterrupted()); };
      const t = setTimeout(() => { this.signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
      this.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/** `Retry-After: 3` or `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT` → ms to wait. */
export function parseRetryAfter(v: string | null): number | undefined {
  if (v === null || v.trim() === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Math.round(Number(v) * 1000);
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}

function networkReason(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err?.name === 'TimeoutError') return 'request timed out';
  const code = err?.cause?.code ?? err?.cause?.message;
  return `network error${code ? ` (${code})` : err?.message ? ` (${err.message})` : ''}`;
}

/** The first line of an error body (`{"error": "…"}` from datasets-server, MediaWiki text), ≤ 120 chars. */
async function errorDetail(res: Response): Promise<string> {
  let body = '';
  try { body = await res.text(); } catch { return ''; }
  try {
    const j = JSON.parse(body) as { error?: unknown };
    if (typeof j.error === 'string') body = j.error;
    else if (j.error && typeof j.error === 'object' && 'info' in j.error) body = String((j.error as { info: unknown }).info);
  } catch { /* not JSON: use the text */ }
  const line = body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
  return line.length > 120 ? line.slice(0, 117) + '…' : line;
}

/** The Hugging Face dataset viewer API (`vilm data crawl hf --endpoint`). */
export const DEFAULT_HF_ENDPOINT = 'https://datasets-server.huggingface.co';
