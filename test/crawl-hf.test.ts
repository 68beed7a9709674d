import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type http from 'node:http';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { crawlHf } from '../src/data/crawl/hf.ts';
import { CrawlOutput } from '../src/data/crawl/output.ts';
import { UserError } from '../src/util/errors.ts';
import { setQuiet } from '../src/util/log.ts';
import { startServer, sendJson, sendBytes, runCli, type FixtureServer, type Req } from './support/crawl-server.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const DATASET = 'vilm-test/tin-tuc';
let dir: string;
let server: FixtureServer;

// ---- a fake dataset: 230 train rows in two Parquet shards (row groups of 40), 12 test rows ------
interface Row { id: string; title: string; text: string; url: string }
const TOPICS = ['kinh tế', 'giáo dục', 'thể thao', 'văn hóa', 'sức khỏe', 'du lịch'];
function rows(n: number, tag: string): Row[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${tag}-${i}`,
    title: `Tin ${TOPICS[i % TOPICS.length]} số ${i}`,
    // one row in 50 has no text (skipped), the rest are short Vietnamese news paragraphs
    text: i % 50 === 7 ? '' : `Bản tin ${TOPICS[i % TOPICS.length]} số ${i}: người dân Đà Nẵng hưởng ứng phong trào "${tag}" với ${i * 3} hoạt động.\nĐoạn thứ hai của bài ${i}.`,
    url: `https://tintuc.example.vn/${tag}/${i}.html`,
  }));
}
const TRAIN = rows(230, 'train');
const TEST = rows(12, 'test');
function parquet(rs: Row[]): Uint8Array {
  return new Uint8Array(parquetWriteBuffer({
    columnData: (['id', 'title', 'text', 'url'] as const).map((name) => ({ name, data: rs.map((r) => r[name]), type: 'STRING' as const })),
    rowGroupSize: 40,
  }));
}
const SHARDS: Record<string, Uint8Array> = {
  'train-0000.parquet': parquet(TRAIN.slice(0, 130)),
  'train-0001.parquet': parquet(TRAIN.slice(130)),
  'test-0000.parquet': parquet(TEST),
};
const FEATURES = ['id', 'title', 'text', 'url'].map((name, i) => ({ feature_idx: i, name, type: { dtype: 'string', _type: 'Value' } }));

type Fault = (res: http.ServerResponse) => void;
let faults = new Map<number, Fault>();
let failFrom = Infinity;

function datasetsServer(req: Req, res: http.ServerResponse, n: number): void {
  const f = faults.get(n);
  if (f) { f(res); return; }
  if (n >= failFrom) { sendJson(res, { error: 'Unexpected error.' }, 500); return; }
  const q = req.url.searchParams;
  const p = req.url.pathname;
  if (p.startsWith('/files/')) {
    const data = SHARDS[p.slice('/files/'.length)];
    if (!data) { sendJson(res, { error: 'Entry not found' }, 404); return; }
    sendBytes(req, res, data);
    return;
  }
  if (q.get('dataset') !== DATASET) {
    sendJson(res, { error: 'The dataset does not exist, or is not accessible without authentication (private or gated). Please check the spelling of the dataset name or retry with authentication.' }, 404);
    return;
  }
  if (p === '/splits') {
    sendJson(res, { splits: [
      { dataset: DATASET, config: 'default', split: 'train' },
      { dataset: DATASET, config: 'default', split: 'test' },
      { dataset: DATASET, config: 'tom-tat', split: 'train' },
    ], pending: [], failed: [] });
    return;
  }
  if (p === '/rows') {
    const all = q.get('split') === 'test' ? TEST : TRAIN;
    const offset = Number(q.get('offset'));
    const length = Number(q.get('length'));
    assert.ok(length <= 100, 'length ≤ 100');
    sendJson(res, {
      features: FEATURES,
      rows: all.slice(offset, offset + length).map((row, i) => ({ row_idx: offset + i, row, truncated_cells: [] })),
      num_rows_total: all.length, num_rows_per_page: 100, partial: false,
    });
    return;
  }
  if (p === '/parquet') {
    sendJson(res, { parquet_files: Object.entries(SHARDS).map(([filename, data]) => ({
      dataset: DATASET, config: 'default', split: filename.split('-')[0], url: `${server.url}/files/${filename}`, filename, size: data.length,
    })), pending: [], failed: [], partial: false });
    return;
  }
  sendJson(res, { error: 'Not found' }, 404);
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'vilm-crawl-hf-'));
  setQuiet(true);
  server = await startServer(datasetsServer);
});
after(async () => { await server.close(); rmSync(dir, { recursive: true, force: true }); setQuiet(false); });

const readLines = (f: string) => readFileSync(f, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
const fast = { rate: 1000, retries: 3, retryBaseMs: 20 };
const reset = () => { faults = new Map(); failFrom = Infinity; server.requests.length = 0; };
const base = () => ({ dataset: DATASET, endpoint: server.url, ...fast });

test('/rows paging and /parquet shards give the same JSONL; default config/split picked; empty texts skipped', async () => {
  reset();
  const viaRows = path.join(dir, 'rows.jsonl');
  const viaParquet = path.join(dir, 'parquet.jsonl');
  const s1 = await crawlHf({ ...base(), via: 'rows', out: viaRows });
  assert.equal(server.requests.filter((r) => r.url.pathname === '/rows').length, 3, '230 rows in pages of 100');
  const s2 = await crawlHf({ ...base(), via: 'parquet', out: viaParquet });
  assert.equal(readFileSync(viaRows, 'utf8'), readFileSync(viaParquet, 'utf8'));
  const docs = readLines(viaParquet);
  const withText = TRAIN.map((r, i) => [r, i] as const).filter(([r]) => r.text !== '');
  assert.equal(docs.length, withText.length);
  assert.equal(s1.docs, withText.length);
  assert.deepEqual(s2.skipped, { empty: TRAIN.length - withText.length, truncated: 0 });
  const [r150, i150] = withText.find(([, i]) => i === 150) as readonly [Row, number];
  assert.deepEqual(docs.find((d) => d.id.endsWith(':150')), {
    id: `hf:${DATASET}:default/train:${i150}`, title: r150.title, text: r150.text, source: `hf:${DATASET}`, url: r150.url,
  });
  // parquet reads went through HTTP range requests
  assert.ok(server.requests.some((r) => String(r.headers.range ?? '').startsWith('bytes=')));
});

test('--config/--split are validated against /splits; missing text column names the columns that exist', async () => {
  reset();
  const out = path.join(dir, 'test-split.jsonl');
  await crawlHf({ ...base(), split: 'test', via: 'parquet', out });
  assert.deepEqual(readLines(out).map((d) => d.title), TEST.filter((r) => r.text !== '').map((r) => r.title));
  await assert.rejects(crawlHf({ ...base(), split: 'validation', out }), /no split 'validation' in vilm-test\/tin-tuc \(default\); splits: train, test/);
  await assert.rejects(crawlHf({ ...base(), config: 'vi', out }), /no config 'vi' in vilm-test\/tin-tuc; configs: default, tom-tat/);
  for (const via of ['rows', 'parquet'] as const) {
    const o = path.join(dir, `col-${via}.jsonl`);
    await assert.rejects(crawlHf({ ...base(), column: 'noi_dung', via, out: o }),
      (e: unknown) => e instanceof UserError && /no column 'noi_dung' in vilm-test\/tin-tuc \(default\/train\); columns: id, title, text, url$/.test(e.message));
    assert.ok(!existsSync(o) && !existsSync(CrawlOutput.partPath(o)));
  }
});

test('429 (Retry-After) and 500 are retried; 404 and 500-after-retries fail with one line naming the URL', async () => {
  reset();
  faults.set(2, (res) => sendJson(res, { error: 'Too many requests' }, 429, { 'retry-after': '0' }));
  faults.set(4, (res) => sendJson(res, { error: 'Unexpected error.' }, 500));
  const out = path.join(dir, 'retry.jsonl');
  await crawlHf({ ...base(), via: 'rows', out });
  assert.equal(readLines(out).length, TRAIN.filter((r) => r.text !== '').length);

  reset();
  const o404 = path.join(dir, '404.jsonl');
  await assert.rejects(crawlHf({ ...base(), dataset: 'khong/ton-tai', out: o404 }),
    (e: unknown) => e instanceof UserError && e.message.startsWith(`${server.url}/splits?dataset=khong%2Fton-tai: HTTP 404 Not Found (The dataset does not exist`) && !e.message.includes('\n'));
  assert.equal(server.requests.length, 1);
  assert.ok(!existsSync(o404));

  reset();
  failFrom = 1;
  await assert.rejects(crawlHf({ ...base(), out: o404, retries: 2, retryBaseMs: 5 }), /\/splits\?dataset=vilm-test%2Ftin-tuc: HTTP 500 Internal Server Error \(Unexpected error\.\) \(gave up after 2 retries\)/);
  assert.equal(server.requests.length, 3);
});

test('resume: interrupted parquet (mid row group) and rows crawls finish identical to clean runs', async () => {
  reset();
  const clean = path.join(dir, 'clean.jsonl');
  await crawlHf({ ...base(), out: clean });

  // parquet: stop after 150 docs (second shard, mid row group), resume
  const out = path.join(dir, 'resume-parquet.jsonl');
  const ac = new AbortController();
  await assert.rejects(crawlHf({ ...base(), out, signal: ac.signal, onDoc: (n) => { if (n === 150) ac.abort(); } }), /interrupted: 150 docs kept/);
  assert.ok(!existsSync(out));
  reset();
  await crawlHf({ ...base(), out, resume: true });
  assert.equal(readFileSync(out, 'utf8'), readFileSync(clean, 'utf8'));
  assert.ok(!server.requests.some((r) => r.url.pathname === '/files/train-0000.parquet'), 'the finished shard is not read again');

  // rows: the server fails after the first page; resume starts at offset 100
  reset();
  failFrom = 3; // /splits, /rows#1 succeed
  const out2 = path.join(dir, 'resume-rows.jsonl');
  await assert.rejects(crawlHf({ ...base(), via: 'rows', out: out2, retries: 1, retryBaseMs: 5 }), /HTTP 500/);
  reset();
  await crawlHf({ ...base(), via: 'rows', out: out2, resume: true });
  assert.equal(readFileSync(out2, 'utf8'), readFileSync(clean, 'utf8'));
  assert.deepEqual(server.requests.filter((r) => r.url.pathname === '/rows').map((r) => r.url.searchParams.get('offset')), ['100', '200']);

  // a resume with other options is refused
  const ac3 = new AbortController();
  const out3 = path.join(dir, 'resume-mismatch.jsonl');
  await assert.rejects(crawlHf({ ...base(), out: out3, signal: ac3.signal, onDoc: (n) => { if (n === 3) ac3.abort(); } }));
  await assert.rejects(crawlHf({ ...base(), via: 'rows', out: out3, resume: true }), /the partial crawl was made from/);
});

test('CLI: vilm data crawl hf end to end; a missing column exits non-zero with one line', async () => {
  reset();
  const out = path.join(dir, 'cli.jsonl');
  const r = await runCli(['data', 'crawl', 'hf', '--dataset', DATASET, '--endpoint', server.url, '--split', 'test', '--out', out, '--rate', '1000', '--json'], ROOT);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).docs, TEST.filter((x) => x.text !== '').length);
  assert.equal(readLines(out)[0].source, `hf:${DATASET}`);

  const out2 = path.join(dir, 'cli-col.jsonl');
  const r2 = await runCli(['data', 'crawl', 'hf', '--dataset', DATASET, '--endpoint', server.url, '--column', 'content', '--via', 'rows', '--out', out2, '--rate', '1000'], ROOT);
  assert.equal(r2.code, 1);
  const errs = r2.stderr.split('\n').filter((l) => l.startsWith('vilm: '));
  assert.equal(errs.length, 1, r2.stderr);
  assert.match(errs[0], /no column 'content' .*columns: id, title, text, url/);
  assert.ok(!existsSync(out2));
});
