import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig, type RunConfig } from '../src/config/index.ts';
import { buildLayout, initParams } from '../src/model/layout.ts';
import { createOptimizer } from '../src/optim/index.ts';
import { saveCheckpoint, type Checkpoint } from '../src/train/checkpoint.ts';
import { initBackend } from '../src/backend/index.ts';
import { createModel } from '../src/model/model.ts';
import { writeFileSync } from 'node:fs';
import { exportSafetensors, transpose2d } from '../src/export/index.ts';

const base = loadConfig('configs/test.yaml');
const TOKENIZER = JSON.stringify({ version: '1.0', model: { type: 'BPE', vocab: { 'Việt': 3 } } });

function checkpointFor(cfg: RunConfig): Checkpoint {
  const layout = buildLayout(cfg.model);
  return {
    config: cfg, step: 4, weights: initParams(layout, cfg.model, 11),
    optimizer: createOptimizer({ ...cfg.train, optimizer: 'sgd' }, layout.total).getState(),
    sampler: null, rng: null, tokenizerJson: TOKENIZER, meta: {},
  };
}

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;

/**
 * Python loads model.safetensors with nothing but json + numpy (parse the 8-byte header length,
 * the JSON header, np.frombuffer each tensor) and prints names, shapes and a few values as JSON.
 */
const PY = String.raw`
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
header = json.loads(raw[8:8 + n])
meta = header.pop('__metadata__', {})
data = raw[8 + n:]
ends = sorted(v['data_offsets'] for v in header.values())
assert ends[0][0] == 0 and ends[-1][1] == len(data), 'byte buffer must be fully indexed'
out = {'meta': meta, 'tensors': {}}
for name, v in header.items():
    assert v['dtype'] == 'F32'
    b, e = v['data_offsets']
    t = np.frombuffer(data[b:e], dtype='<f4').reshape(v['shape'])
    out['tensors'][name] = {'shape': list(t.shape), 'first': [float(x) for x in t.reshape(-1)[:3]],
                            'at': float(t[tuple(min(1, s - 1) for s in t.shape)]) if t.ndim else 0.0,
                            'at_rev': float(t[tuple(s - 1 for s in t.shape)])}
print(json.dumps(out))
`;

interface PyOut { meta: Record<string, string>; tensors: Record<string, { shape: number[]; first: number[]; at: number; at_rev: number }> }

function loadWithNumpy(file: string): PyOut {
  return JSON.parse(execFileSync('python3', ['-c', PY, file], { encoding: 'utf8' })) as PyOut;
}

test('transpose2d: [2,3] → [3,2]', () => {
  assert.deepEqual(transpose2d(Float32Array.from([1, 2, 3, 4, 5, 6]), 2, 3), Float32Array.from([1, 4, 2, 5, 3, 6]));
});

test('export safetensors loads in numpy with the issue\'s names, [out,in] shapes and our values', { skip: hasNumpy ? false : 'python3 with numpy not found' }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vilm-export-'));
  const ck = checkpointFor(base);
  const m = base.model, d = m.d_model, f = m.ff_dim, V = m.vocab_size;
  await exportSafetensors(ck, dir);
  const py = loadWithNumpy(path.join(dir, 'model.safetensors'));
  const layout = buildLayout(m);
  const want: Record<string, number[]> = { 'tok_embeddings.weight': [V, d], 'norm.weight': [d], 'norm.bias': [d], 'output.weight': [V, d] };
  for (let i = 0; i < m.n_layers; i++) {
    for (const w of ['wq', 'wk', 'wv', 'wo']) want[`layers.${i}.attention.${w}.weight`] = [d, d];
    want[`layers.${i}.feed_forward.w1.weight`] = [f, d];
    want[`layers.${i}.feed_forward.w2.weight`] = [d, f];
    for (const n of ['attention_norm', 'ffn_norm']) { want[`layers.${i}.${n}.weight`] = [d]; want[`layers.${i}.${n}.bias`] = [d]; }
  }
  assert.deepEqual(Object.keys(py.tensors).sort(), Object.keys(want).sort());
  for (const [k, s] of Object.entries(want)) assert.deepEqual(py.tensors[k].shape, s, k);
  assert.equal(py.meta.format, 'pt');

  // values: exported[o][i] must equal our stored [in, out] W[i][o]
  const ours = (name: string, i: number, o: number) => {
    const p = layout.byName.get(name)!;
    return ck.weights[p.offset + i * p.shape[1] + o];
  };
  const w1 = 'layers.1.feed_forward.w1.weight';            // ours [d, f], exported [f, d]
  assert.equal(py.tensors[w1].at, ours(w1, 1, 1));
  assert.equal(py.tensors[w1].first[1], ours(w1, 1, 0));  // exported [0][1] = ours [1][0]
  assert.equal(py.tensors[w1].at_rev, ours(w1, d - 1, f - 1));
  const out = 'output.weight';                              // ours [d, V], exported [V, d]
  assert.equal(py.tensors[out].first[2], ours(out, 2, 0));
  assert.equal(py.tensors[out].at_rev, ours(out, d - 1, V - 1));
  const emb = 'tok_embeddings.weight';                      // stays [V, d]
  assert.equal(py.tensors[emb].first[1], ck.weights[1]);
  assert.equal(py.tensors['norm.weight'].first[0], 1);

  const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(config).sort(), ['activation', 'bias', 'd_model', 'ff_dim', 'max_len', 'n_heads', 'n_layers', 'norm', 'norm_eps', 'rope_style', 'rope_theta', 'tie_embeddings', 'vocab_size']);
  assert.equal(config.vocab_size, V);
  assert.equal(config.rope_style, 'rotate_half');
  assert.equal(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'), TOKENIZER);
  rmSync(dir, { recursive: true });
});

test('tied embeddings + biases + rmsnorm: output.weight is the embedding, biases exported, via the CLI', { skip: hasNumpy ? false : 'python3 with numpy not found' }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vilm-export-'));
  const cfg: RunConfig = { ...base, model: { ...base.model, tie_embeddings: true, bias: true, norm: 'rmsnorm' } };
  const ck = checkpointFor(cfg);
  await saveCheckpoint(path.join(dir, 'run'), ck);
  execFileSync('node', ['--import', 'tsx', 'src/cli/main.ts', 'export', 'safetensors', '--checkpoint', path.join(dir, 'run'), '--out', path.join(dir, 'hf')], { stdio: 'pipe' });
  const py = loadWithNumpy(path.join(dir, 'hf', 'model.safetensors'));
  const V = cfg.model.vocab_size, d = cfg.model.d_model;
  assert.deepEqual(py.tensors['output.weight'].shape, [V, d]);
  assert.deepEqual(py.tensors['output.weight'].first, py.tensors['tok_embeddings.weight'].first);
  assert.equal(py.tensors['output.weight'].at_rev, ck.weights[V * d - 1]);
  assert.deepEqual(py.tensors['layers.0.attention.wq.bias'].shape, [d]);
  assert.deepEqual(py.tensors['layers.1.feed_forward.w1.bias'].shape, [cfg.model.ff_dim]);
  assert.equal('norm.bias' in py.tensors, false);
  const config = JSON.parse(readFileSync(path.join(dir, 'hf', 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(config.tie_embeddings, true);
  assert.equal(config.norm, 'rmsnorm');
  // the same command is reachable under `vilm model export safetensors`
  execFileSync('node', ['--import', 'tsx', 'src/cli/main.ts', 'model', 'export', 'safetensors', '--checkpoint', path.join(dir, 'run'), '--out', path.join(dir, 'hf2')], { stdio: 'pipe' });
  assert.deepEqual(readFileSync(path.join(dir, 'hf2', 'model.safetensors')), readFileSync(path.join(dir, 'hf', 'model.safetensors')));
  rmSync(dir, { recursive: true });
});

test('export of a missing checkpoint fails with one line', () => {
  const r = spawnSync('node', ['--import', 'tsx', 'src/cli/main.ts', 'export', 'safetensors', '--checkpoint', '/nonexistent/run', '--out', '/tmp/x'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr.trim(), /^vilm: \/nonexistent\/run: no such checkpoint or run directory/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});

/**
 * An independent forward pass in NumPy that reads ONLY the exported files (config.json keys and
 * the [out, in] tensors, y = x·Wᵀ as in PyTorch): its logits must match vilm's. This is what
 * "loads outside vilm" means in practice.
 */
const FORWARD_PY = String.raw`
import json, math, struct, sys
import numpy as np
d = sys.argv[1]
cfg = json.load(open(d + '/config.json'))
raw = open(d + '/model.safetensors', 'rb').read()
(n,) = struct.unpack('<Q', raw[:8]); hdr = json.loads(raw[8:8 + n]); hdr.pop('__metadata__', None); buf = raw[8 + n:]
W = {k: np.frombuffer(buf[v['data_offsets'][0]:v['data_offsets'][1]], dtype='<f4').reshape(v['shape']).astype(np.float64) for k, v in hdr.items()}
ids = json.loads(sys.argv[2]); T = len(ids)
D, H = cfg['d_model'], cfg['n_heads']; dk = D // H
def norm(x, p):
    if cfg['norm'] == 'layernorm': x = x - x.mean(-1, keepdims=True)
    y = x / np.sqrt((x * x).mean(-1, keepdims=True) + cfg['norm_eps']) * W[p + '.weight']
    return y + W[p + '.bias'] if cfg['norm'] == 'layernorm' else y
def lin(x, p):
    y = x @ W[p + '.weight'].T
    return y + W[p + '.bias'] if cfg['bias'] else y
def act(u):
    a = cfg['activation']
    if a == 'relu': return np.maximum(u, 0)
    if a == 'gelu': return 0.5 * u * (1 + np.vectorize(math.erf)(u / math.sqrt(2)))
    return 0.5 * u * (1 + np.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u ** 3)))
def rope(x):  # x [T, H, dk]
    half = dk // 2
    inv = cfg['rope_theta'] ** (-2 * np.arange(half) / dk)
    ang = np.arange(T)[:, None] * inv[None, :]; c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    if cfg['rope_style'] == 'rotate_half': a, b = x[..., :half], x[..., half:]
    else: a, b = x[..., 0::2], x[..., 1::2]
    ra, rb = a * c - b * s, b * c + a * s
    out = np.empty_like(x)
    if cfg['rope_style'] == 'rotate_half': out[..., :half], out[..., half:] = ra, rb
    else: out[..., 0::2], out[..., 1::2] = ra, rb
    return out
x = W['tok_embeddings.weight'][ids]
mask = np.triu(np.full((T, T), -np.inf), 1)
for i in range(cfg['n_layers']):
    p = 'layers.%d' % i
    h = norm(x, p + '.attention_norm')
    q = rope(lin(h, p + '.attention.wq').reshape(T, H, dk)); k = rope(lin(h, p + '.attention.wk').reshape(T, H, dk))
    v = lin(h, p + '.attention.wv').reshape(T, H, dk)
    att = np.einsum('thd,shd->hts', q, k) / math.sqrt(dk) + mask
    att = np.exp(att - att.max(-1, keepdims=True)); att /= att.sum(-1, keepdims=True)
    x = x + lin(np.einsum('hts,shd->thd', att, v).reshape(T, D), p + '.attention.wo')
    x = x + lin(act(lin(norm(x, p + '.ffn_norm'), p + '.feed_forward.w1')), p + '.feed_forward.w2')
logits = norm(x, 'norm') @ W['output.weight'].T
ours = np.fromfile(sys.argv[3], dtype='<f4').reshape(T, -1)
print(json.dumps({'maxDiff': float(np.abs(logits - ours).max()), 'maxAbs': float(np.abs(logits).max())}))
`;

test('a NumPy forward pass over the exported files reproduces vilm\'s logits', { skip: hasNumpy ? false : 'python3 with numpy not found' }, async () => {
  await initBackend('wasm');
  const ids = [1, 40, 300, 7, 7, 511, 99, 2, 150, 260, 3];
  const variants: RunConfig[] = [
    base,
    { ...base, model: { ...base.model, norm: 'rmsnorm', activation: 'relu', rope_style: 'interleaved', bias: true, tie_embeddings: true } },
  ];
  for (const cfg of variants) {
    const dir = mkdtempSync(path.join(tmpdir(), 'vilm-export-fwd-'));
    const ck = checkpointFor(cfg);
    // give norms and biases non-trivial values so they matter
    const layout = buildLayout(cfg.model);
    for (const p of layout.params) if (p.kind === 'norm' || p.kind === 'bias') for (let i = 0; i < p.size; i++) ck.weights[p.offset + i] = (p.kind === 'norm' ? 1 : 0) + 0.1 * Math.sin(i + p.offset);
    await exportSafetensors(ck, dir);
    const model = createModel(cfg.model);
    const logits = model.forwardLogits(ck.weights, ids, 1, ids.length);
    model.dispose();
    writeFileSync(path.join(dir, 'ours.f32'), new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
    const r = JSON.parse(execFileSync('python3', ['-c', FORWARD_PY, dir, JSON.stringify(ids), path.join(dir, 'ours.f32')], { encoding: 'utf8' })) as { maxDiff: number; maxAbs: number };
    assert.ok(r.maxAbs > 0.01, `logits should not be trivial (${r.maxAbs})`);
    assert.ok(r.maxDiff < 1e-4 * Math.max(1, r.maxAbs), `${cfg.model.norm}/${cfg.model.rope_style}: max |numpy − vilm| = ${r.maxDiff} (max |logit| ${r.maxAbs})`);
    rmSync(dir, { recursive: true });
  }
});
