/**
 * The references a trained model is judged against: general-purpose compressors on the same
 * held-out text, in bits per byte (not a test; needs gzip, zstd, xz and 7z — Debian's p7zip-full).
 *
 *   npx tsx scripts/compressors.ts --data runs/wiki/data --corpus runs/wiki/clean.jsonl [--split test]
 *                                  [--out bench-results/compressors.json]
 *
 * The text: the cleaned documents of the split (DATA/<split>.jsonl, written by `vilm data prepare`),
 * joined with one "\n" between documents. Bits per byte = compressed bits / UTF-8 bytes of the
 * documents' text (the `vilm eval` denominator; the separators are compressed but not counted,
 * which favours the compressors by ~0.01 %).
 *
 * "PPMd given the training text" is the compressor conditioned on the data the model saw:
 * size(train ‖ split) − size(train), the training documents (picked from --corpus with the data
 * set's own split rule and seed) put in front of the held-out text in one PPMd stream. Order 8 is
 * the setting the issue names; memory is raised so the model is never reset on 57 MB of text.
 *
 * Prints a table and writes the JSON (`{references:[{name,bitsPerByte,bytes,seconds}], text, …}`),
 * the format `vilm report --references` reads.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { readCorpus } from '../src/data/jsonl.ts';
import { splitOf } from '../src/data/prepare/split.ts';
import type { Manifest, SplitName } from '../src/data/types.ts';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

const dataDir = arg('data', 'runs/wiki/data');
const corpus = arg('corpus', 'runs/wiki/clean.jsonl');
const split = arg('split', 'test') as SplitName;
const outFile = arg('out', 'bench-results/compressors.json');

function need(tool: string): void {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`]);
  if (r.status !== 0) {
    process.stderr.write(`compressors: '${tool}' is not installed (apt-get install gzip zstd xz-utils p7zip-full)\n`);
    process.exit(2);
  }
}
for (const t of ['gzip', 'zstd', 'xz', '7z']) need(t);

async function texts(file: string, keep: (id: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  for await (const doc of readCorpus(file)) if (keep(doc.id)) out.push(doc.text);
  return out;
}

const manifest = JSON.parse(readFileSync(path.join(dataDir, 'manifest.json'), 'utf8')) as Manifest;
const heldOut = await texts(path.join(dataDir, `${split}.jsonl`), () => true);
const trainDocs = await texts(corpus, (id) => splitOf(id, manifest.seed) === 'train');
if (trainDocs.length !== manifest.splits.train.docs) {
  process.stderr.write(`compressors: ${corpus}: ${trainDocs.length} training documents, the data set's manifest says ${manifest.splits.train.docs} (another corpus or seed?)\n`);
  process.exit(2);
}
const textBytes = heldOut.reduce((a, t) => a + Buffer.byteLength(t, 'utf8'), 0);

const work = mkdtempSync(path.join(os.tmpdir(), 'vilm-compressors-'));
const heldFile = path.join(work, `${split}.txt`);
const trainFile = path.join(work, 'train.txt');
const bothFile = path.join(work, `train+${split}.txt`);
writeFileSync(heldFile, heldOut.join('\n'));
writeFileSync(trainFile, trainDocs.join('\n') + '\n');
writeFileSync(bothFile, trainDocs.join('\n') + '\n' + heldOut.join('\n'));

/** Compressed size in bytes of `file` by a shell command writing to stdout, and its seconds. */
function piped(cmd: string, args: string[], file: string): { bytes: number; seconds: number } {
  const t0 = performance.now();
  const r = spawnSync(cmd, [...args, file], { maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${String(r.stderr)}`);
  return { bytes: r.stdout.length, seconds: (performance.now() - t0) / 1000 };
}

/** 7-Zip PPMd: size of the .7z archive of `file`. */
function ppmd(file: string, order: number): { bytes: number; seconds: number } {
  const archive = `${file}.o${order}.7z`;
  rmSync(archive, { force: true });
  const t0 = performance.now();
  const r = spawnSync('7z', ['a', '-t7z', `-m0=PPMd:mem=1g:o=${order}`, '-mmt=1', archive, file]);
  if (r.status !== 0) throw new Error(`7z: exit ${r.status}: ${String(r.stderr)}`);
  return { bytes: statSync(archive).size, seconds: (performance.now() - t0) / 1000 };
}

interface Reference { name: string; bitsPerByte: number; bytes: number; seconds: number }
const refs: Reference[] = [];
const add = (name: string, r: { bytes: number; seconds: number }) => {
  refs.push({ name, bitsPerByte: (r.bytes * 8) / textBytes, bytes: r.bytes, seconds: r.seconds });
  process.stderr.write(`  ${name}: ${((r.bytes * 8) / textBytes).toFixed(4)} bits/byte\n`);
};
add('gzip -9', piped('gzip', ['-9', '-c'], heldFile));
add('zstd -19', piped('zstd', ['-19', '-c', '-q'], heldFile));
add('xz -9e', piped('xz', ['-9e', '-c'], heldFile));
add('7-Zip PPMd order 8', ppmd(heldFile, 8));
const both = ppmd(bothFile, 8), trainOnly = ppmd(trainFile, 8);
add('PPMd order 8 given the training text', { bytes: both.bytes - trainOnly.bytes, seconds: both.seconds + trainOnly.seconds });
rmSync(work, { recursive: true, force: true });

const result = {
  text: `${split} split of ${dataDir}: ${heldOut.length} documents, ${textBytes} UTF-8 bytes of cleaned text`,
  split, documents: heldOut.length, textBytes, trainingDocuments: trainDocs.length,
  tools: Object.fromEntries(['gzip --version', 'zstd --version', 'xz --version'].map((c) => [c.split(' ')[0], String(spawnSync('sh', ['-c', c]).stdout).split('\n')[0]])),
  references: refs,
};
mkdirSync(path.dirname(outFile), { recursive: true });
writeFileSync(outFile, JSON.stringify(result, null, 2) + '\n');
console.log(`\n${result.text}\n`);
console.log('| compressor | bits/byte | compressed bytes | seconds |\n| --- | ---: | ---: | ---: |');
for (const r of refs) console.log(`| ${r.name} | ${r.bitsPerByte.toFixed(3)} | ${r.bytes.toLocaleString('en-US')} | ${r.seconds.toFixed(1)} |`);
console.log(`\nwrote ${outFile}`);
