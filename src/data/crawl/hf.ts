import { asyncBufferFromUrl, parquetMetadataAsync, parquetRead, parquetSchema, type FileMetaData, type AsyncBuffer } from 'hyparquet';
import { UserError } from '../../util/errors.js';
import { log } from '../../util/log.js';
import { progress } from '../../util/progress.js';
import { CrawlInterrupted, DEFAULT_HF_ENDPOINT, HttpClient, type HttpOptions } from './http.js';
import { CrawlOutput, type CrawlDoc } from './output.js';
import { stopAfterError, type CrawlSummary } from './dump.js';

/**
 * `vilm data crawl hf --dataset ID`: a Hugging Face dataset through the datasets-server API.
 *
 *   /splits?dataset=ID                                  → which config/split (validated or picked)
 *   /rows?dataset=&config=&split=&offset=&length=100    → `--via rows`: 100 rows a request
 *   /parquet?dataset=ID                                  → `--via parquet` (default): the shard URLs,
 *        read with hyparquet through HTTP range requests, one row group at a time and only the
 *        needed columns, so memory stays at one row group's text.
 *
 * The resume cursor is the next row offset (rows) or the shard, row and global row index (parquet).
 */
const ROWS_PAGE = 100; // the /rows maximum

export interface HfCrawlOptions extends HttpOptions {
  dataset: string;
  config?: string;
  split?: string;
  /** text column (default 'text') */
  column?: string;
  /** title column, used when present (default 'title') */
  titleColumn?: string;
  endpoint?: string;
  via?: 'rows' | 'parquet';
  out: string;
  resume?: boolean;
  maxDocs?: number;
  /** Hugging Face token for gated datasets (sent as a Bearer header) */
  token?: string;
  /** called after each document is written, with the running count */
  onDoc?: (count: number) => void;
}

export type HfCursor =
  | { via: 'rows'; offset: number }
  | { via: 'parquet'; shard: number; row: number; base: number };

interface SplitsResponse { splits?: { dataset: string; config: string; split: string }[] }
interface RowsResponse {
  features?: { name: string }[];
  rows?: { row_idx: number; row: Record<string, unknown>; truncated_cells?: string[] }[];
  num_rows_total?: number;
}
interface ParquetResponse { parquet_files?: { config: string; split: string; url: string; filename?: string; size?: number }[] }

export async function crawlHf(opts: HfCrawlOptions): Promise<CrawlSummary> {
  const t0 = Date.now();
  const endpoint = (opts.endpoint ?? DEFAULT_HF_ENDPOINT).replace(/\/+$/, '');
  const column = opts.column ?? 'text';
  const titleColumn = opts.titleColumn ?? 'title';
  const via = opts.via ?? 'parquet';
  const source = `hf:${opts.dataset}`;
  const client = new HttpClient({ ...opts, headers: { ...opts.headers, ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) } });
  const q = (path: string, params: Record<string, string | number>) => {
    const u = new URL(endpoint + path);
    for (const [k, v] of Object.entries(params)) u.searchParams.set(k, String(v));
    return u.href;
  };

  const { config, split } = await pickSplit(client, q('/splits', { dataset: opts.dataset }), opts);
  log.info(`crawling ${opts.dataset} config=${config} split=${split} column=${column} via ${via}`);
  const fingerprint = `hf ${endpoint} ${opts.dataset} ${config}/${split} column=${column} via=${via}`;
  const { output, cursor: resumeAt } = await CrawlOutput.open<HfCursor>(opts.out, { resume: opts.resume ?? false, fingerprint });
  const skipped = { empty: 0, truncated: 0 };
  const datasetUrl = `https://huggingface.co/datasets/${opts.dataset}`;
  const docOf = (row: Record<string, unknown>, index: number): CrawlDoc | undefined => {
    const text = row[column];
    if (typeof text !== 'string' || text.trim() === '') { skipped.empty++; return undefined; }
    const title = row[titleColumn];
    const url = row.url;
    return {
      id: `${source}:${config}/${split}:${index}`,
      title: typeof title === 'string' ? title : '',
      text,
      source,
      url: typeof url === 'string' && /^https?:/.test(url) ? url : datasetUrl,
    };
  };
  const missingColumn = (have: string[], where: string) =>
    new UserError(`${where}: no column '${column}' in ${opts.dataset} (${config}/${split}); columns: ${have.join(', ') || '(none)'}`);

  let cursor: HfCursor | undefined = resumeAt;
  let seen = 0;
  const bar = progress(`crawl hf ${opts.dataset}`, 0, 'rows', { start: cursor?.via === 'rows' ? cursor.offset : 0 });
  const full = () => opts.maxDocs !== undefined && output.count >= opts.maxDocs;
  try {
    if (via === 'rows') {
      let offset = cursor?.via === 'rows' ? cursor.offset : 0;
      let total = Infinity;
      while (offset < total && !full()) {
        const url = q('/rows', { dataset: opts.dataset, config, split, offset, length: ROWS_PAGE });
        const body = (await client.getJson(url)) as RowsResponse;
        const names = (body.features ?? []).map((f) => f.name);
        if (!names.includes(column)) throw missingColumn(names, url);
        total = body.num_rows_total ?? Infinity;
        if (Number.isFinite(total)) bar.setTotal(total);
        const rows = body.rows ?? [];
        if (rows.length === 0) break;
        for (const r of rows) {
          if (opts.signal?.aborted) throw new CrawlInterrupted();
          seen++;
          if (r.truncated_cells?.includes(column)) {
            skipped.truncated++;
            if (skipped.truncated === 1) log.warn(`${url}: /rows truncated '${column}' cells; use --via parquet for full texts (truncated rows are skipped)`);
          } else {
            const doc = docOf(r.row, r.row_idx);
            if (doc) { await output.write(doc); opts.onDoc?.(output.count); }
          }
          cursor = { via: 'rows', offset: r.row_idx + 1 };
          await output.checkpoint(cursor);
          if (full()) break;
        }
        offset = cursor?.via === 'rows' ? cursor.offset : offset + rows.length;
        bar.update(offset, { docs: output.count });
      }
    } else {
      const listUrl = q('/parquet', { dataset: opts.dataset });
      const listing = (await client.getJson(listUrl)) as ParquetResponse;
      const shards = (listing.parquet_files ?? []).filter((f) => f.config === config && f.split === split);
      if (shards.length === 0) throw new UserError(`${listUrl}: no Parquet files for ${config}/${split}`);
      let start = cursor?.via === 'parquet' ? cursor : { via: 'parquet' as const, shard: 0, row: 0, base: 0 };
      for (let s = start.shard; s < shards.length && !full(); s++) {
        const shard = shards[s];
        const file = await openParquet(client, shard.url, shard.size);
        let metadata: FileMetaData;
        try { metadata = await parquetMetadataAsync(file); } catch (e) {
          if (e instanceof UserError || e instanceof CrawlInterrupted) throw e;
          throw new UserError(`${shard.url}: not a readable Parquet file (${(e as Error).message})`);
        }
        const names = parquetSchema(metadata).children.map((c) => c.element.name);
        if (!names.includes(column)) throw missingColumn(names, shard.url);
        const columns = [column, ...[titleColumn, 'url'].filter((c) => c !== column && names.includes(c))];
        // `start` is always this shard's starting point (resumed, or set at the end of the previous shard)
        const firstRow = start.row;
        const base = start.base;
        let groupStart = 0;
        for (const rg of metadata.row_groups) {
          const groupEnd = groupStart + Number(rg.num_rows);
          if (groupEnd > firstRow) {
            // one row group at a time: [max(groupStart, firstRow), groupEnd)
            const rowStart = Math.max(groupStart, firstRow);
            const rows = await readRows(file, metadata, columns, rowStart, groupEnd, shard.url);
            for (let i = 0; i < rows.length; i++) {
              if (opts.signal?.aborted) throw new CrawlInterrupted();
              seen++;
              const row = rowStart + i;
              const doc = docOf(rows[i], base + row);
              if (doc) { await output.write(doc); opts.onDoc?.(output.count); }
              cursor = { via: 'parquet', shard: s, row: row + 1, base };
              await output.checkpoint(cursor);
              if (full()) break;
            }
            bar.update(seen, { docs: output.count, shard: `${s + 1}/${shards.length}` });
            if (full()) break;
          }
          groupStart = groupEnd;
        }
        // next shard starts at row 0, its global index after this shard's rows
        cursor = { via: 'parquet', shard: s + 1, row: 0, base: base + Number(metadata.num_rows) };
        start = cursor;
        if (!full()) await output.checkpoint(cursor, true);
      }
    }
    if (output.count === 0) {
      await output.discard();
      throw new UserError(`${opts.dataset} (${config}/${split}): no rows with text in column '${column}'`);
    }
    await output.commit();
  } catch (e) {
    bar.abort();
    throw await stopAfterError(e, output, cursor, opts.out);
  }
  const summary: CrawlSummary = { docs: output.count, seen, skipped, out: opts.out, seconds: (Date.now() - t0) / 1000 };
  bar.done(`${summary.docs} docs from ${seen} rows (${client.requests} requests; skipped: ${skipped.empty} empty, ${skipped.truncated} truncated) → ${opts.out}`);
  return summary;
}

/** Validate --config/--split against /splits, or pick: the only/`default` config, the `train` split. */
async function pickSplit(client: HttpClient, url: string, opts: HfCrawlOptions): Promise<{ config: string; split: string }> {
  const body = (await client.getJson(url)) as SplitsResponse;
  const splits = body.splits ?? [];
  if (splits.length === 0) throw new UserError(`${url}: dataset ${opts.dataset} lists no splits`);
  const configs = [...new Set(splits.map((s) => s.config))];
  let config = opts.config;
  if (config === undefined) {
    config = configs.length === 1 ? configs[0] : configs.includes('default') ? 'default' : configs[0];
    if (configs.length > 1) log.info(`${opts.dataset}: configs ${configs.join(', ')}; using ${config} (choose with --config)`);
  } else if (!configs.includes(config)) {
    throw new UserError(`${url}: no config '${config}' in ${opts.dataset}; configs: ${configs.join(', ')}`);
  }
  const names = splits.filter((s) => s.config === config).map((s) => s.split);
  let split = opts.split;
  if (split === undefined) split = names.includes('train') ? 'train' : names[0];
  else if (!names.includes(split)) throw new UserError(`${url}: no split '${split}' in ${opts.dataset} (${config}); splits: ${names.join(', ')}`);
  return { config, split };
}

async function openParquet(client: HttpClient, url: string, size: number | undefined): Promise<AsyncBuffer> {
  try {
    return await asyncBufferFromUrl({ url, byteLength: size, fetch: client.fetchFn });
  } catch (e) {
    if (e instanceof UserError || e instanceof CrawlInterrupted) throw e;
    throw new UserError(`${url}: cannot open Parquet file (${(e as Error).message})`);
  }
}

async function readRows(file: AsyncBuffer, metadata: FileMetaData, columns: string[], rowStart: number, rowEnd: number, url: string): Promise<Record<string, unknown>[]> {
  let rows: Record<string, unknown>[] = [];
  try {
    await parquetRead({ file, metadata, columns, rowStart, rowEnd, rowFormat: 'object', onComplete: (r) => { rows = r; } });
  } catch (e) {
    if (e instanceof UserError || e instanceof CrawlInterrupted) throw e;
    throw new UserError(`${url}: cannot read rows ${rowStart}–${rowEnd} (${(e as Error).message})`);
  }
  return rows;
}
