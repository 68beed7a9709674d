/**
 * Kernel fixes for the TensorFlow.js wasm (and cpu) backends, installed once per thread by
 * `initBackend` (src/backend/index.ts; which set a backend gets is its `kernelFixes` in
 * ./registry.ts). Each one addresses a measured problem (see ../shared/notes/tfjs-on-this-machine.md)
 * and has a test in test/backend-kernels.test.ts:
 *
 *  1. `UnsortedSegmentSum` (the gradient of `tf.gather`) is missing on wasm and loops over every
 *     segment on cpu (minutes at 10k rows). Replaced by a scatter-add over the ids, written here in
 *     plain JS because it is one linear pass that no library kernel offers on wasm.
 *  2. `BatchMatMul` with transposeA/transposeB is 9–20× slower on wasm than an explicit transpose
 *     followed by a plain matmul; autodiff of matMul emits exactly those. The wasm kernel is wrapped
 *     so a transposed matmul becomes Transpose + plain BatchMatMul.
 *  3. `OneHot` with dtype float32 writes the int bit pattern on wasm (1.4e-45 instead of 1). The
 *     wasm kernel is replaced by a JS fill that honours the dtype.
 *  4. `Slice` (and `Unpack`, which slices once per output) copies the WHOLE input out of the wasm
 *     heap on every call (`readSync`), so unstacking [64,128,128] into 64 slices copied 256 MB.
 *     Replaced by a strided copy straight from heap views (no intermediate copy).
 *  5. `Exp` over [tokens, vocab] logits is slow and the stock softmax cross-entropy builds a V-wide
 *     one-hot. `VilmSoftmaxCrossEntropy` is one fused kernel: XNNPACK softmax (wasm) then, in place,
 *     grad = (p − onehot)·mask and loss = −log p[label]·mask. `softmaxCrossEntropy` (the op) wraps
 *     it with a custom gradient so autodiff code gets the cheap gradient too.
 *
 * The kernels read and write tensor memory directly: the wasm heap through
 * `backend.typedArrayFromHeap`, the cpu backend through its `data` store. Heap views are taken
 * only after every output has been allocated, because an allocation can grow (and detach) the heap.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DataType, KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';

type Backend = object;
type Typed = Float32Array | Int32Array | Uint8Array;

/** The few internals of BackendWasm used here. */
interface WasmLike {
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Typed;
  disposeData(dataId: object, force?: boolean): boolean;
}
/** The few internals of MathBackendCPU used here. */
interface CpuLike {
  makeTensorInfo(shape: number[], dtype: DataType, values?: Typed): TensorInfo;
  data: { get(dataId: object): { values: Typed } };
  disposeIntermediateTensorInfo(t: TensorInfo): void;
}

function isWasm(b: Backend): b is WasmLike {
  return typeof (b as Partial<WasmLike>).typedArrayFromHeap === 'function';
}

function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function newArray(dtype: DataType, n: number): Typed {
  if (dtype === 'float32') return new Float32Array(n);
  if (dtype === 'int32') return new Int32Array(n);
  if (dtype === 'bool') return new Uint8Array(n);
  throw new Error(`vilm kernels: unsupported dtype ${dtype}`);
}

/** Allocate an output tensor (zero-filled on cpu; uninitialised on wasm — callers fill it). */
function alloc(b: Backend, shape: number[], dtype: DataType): TensorInfo {
  if (isWasm(b)) return b.makeOutput(shape, dtype);
  return (b as CpuLike).makeTensorInfo(shape, dtype, newArray(dtype, sizeOf(shape)));
}

/** A live view of a tensor's memory (no copy). Take views after all allocations. */
function view(b: Backend, t: TensorInfo): Typed {
  if (isWasm(b)) return b.typedArrayFromHeap(t);
  return (b as CpuLike).data.get(t.dataId).values;
}

function disposeInfo(b: Backend, t: TensorInfo): void {
  if (isWasm(b)) b.disposeData(t.dataId);
  else (b as CpuLike).disposeIntermediateTensorInfo(t);
}

/**
 * A float32 tensor's values without a copy where the backend keeps them in JS-reachable memory
 * (a view of the wasm heap), else `dataSync()` (a copy). A heap view is valid only until the next
 * tensor allocation (which can grow the heap): read it at once. Used to add a pass's gradients
 * into the flat gradient, where a copy per tensor allocated ~3 MB of garbage per segment.
 */
export function readFloats(t: tf.Tensor): Float32Array {
  const b = tf.backend() as Backend;
  if (t.dtype === 'float32' && isWasm(b)) return view(b, t) as Float32Array;
  return t.dataSync() as Float32Array;
}

// ---------------------------------------------------------------------------------------------
// 1. UnsortedSegmentSum: out[ids[i], :] += x[i, :]   (x [n, ...rest], ids [n] → out [numSegments, ...rest])

const unsortedSegmentSum: KernelFunc = ({ inputs, backend, attrs }) => {
  const x = inputs.x as TensorInfo, ids = inputs.segmentIds as TensorInfo;
  const numSegments = (attrs as NamedAttrMap).numSegments as number;
  const n = ids.shape.reduce((a, c) => a * c, 1);
  const inner = sizeOf(x.shape) / Math.max(n, 1);
  const outShape = [numSegments, ...x.shape.slice(ids.shape.length)];
  const out = alloc(backend, outShape, x.dtype);
  const o = view(backend, out), xv = view(backend, x), iv = view(backend, ids);
  o.fill(0);
  for (let i = 0; i < n; i++) {
    const s = iv[i];
    if (s < 0 || s >= numSegments) continue; // TF semantics: out-of-range ids are dropped
    const src = i * inner, dst = s * inner;
    for (let j = 0; j < inner; j++) o[dst + j] += xv[src + j];
  }
  return out;
};

// ---------------------------------------------------------------------------------------------
// 2. BatchMatMul with transposes → Transpose + plain BatchMatMul (wasm)

function wrapBatchMatMul(stock: KernelFunc, transpose: KernelFunc): KernelFunc {
  return (args) => {
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    if (!transposeA && !transposeB) return stock(args);
    const { backend } = args;
    const swapLast = (t: TensorInfo): TensorInfo => {
      const r = t.shape.length;
      const perm = [...Array(r).keys()];
      perm[r - 2] = r - 1; perm[r - 1] = r - 2;
      return transpose({ inputs: { x: t }, backend, attrs: { perm } }) as TensorInfo;
    };
    const a0 = args.inputs.a as TensorInfo, b0 = args.inputs.b as TensorInfo;
    const a = transposeA ? swapLast(a0) : a0;
    const b = transposeB ? swapLast(b0) : b0;
    const out = stock({ inputs: { a, b }, backend, attrs: { ...args.attrs, transposeA: false, transposeB: false } });
    if (transposeA) disposeInfo(backend, a);
    if (transposeB) disposeInfo(backend, b);
    return out;
  };
}

// ---------------------------------------------------------------------------------------------
// 3. OneHot honouring the dtype: out[..., indices[i]] = onValue, elsewhere offValue

const oneHot: KernelFunc = ({ inputs, backend, attrs }) => {
  const indices = inputs.indices as TensorInfo;
  const { depth, onValue, offValue, dtype } = attrs as { depth: number; onValue: number; offValue: number; dtype: DataType };
  const out = alloc(backend, [...indices.shape, depth], dtype);
  const o = view(backend, out), iv = view(backend, indices);
  o.fill(offValue);
  for (let i = 0; i < iv.length; i++) {
    const k = iv[i];
    if (k >= 0 && k < depth) o[i * depth + k] = onValue;
  }
  return out;
};

// ---------------------------------------------------------------------------------------------
// 4. Slice / Unpack reading the heap in place: out = x[begin : begin+size] (row-major, any rank)

/** Copy the box `begin..begin+size` of `src` (shape `shape`) into `dst` (dense), starting at dstOff. */
function copyBox(src: Typed, shape: number[], begin: number[], size: number[], dst: Typed, dstOff: number): void {
  const rank = shape.length;
  const strides = new Array<number>(rank);
  strides[rank - 1] = 1;
  for (let i = rank - 2; i >= 0; i--) strides[i] = strides[i + 1] * shape[i + 1];
  // Collapse the trailing dims that are copied whole into one contiguous run.
  let k = rank - 1;
  while (k > 0 && begin[k] === 0 && size[k] === shape[k]) k--;
  const run = size[k] * strides[k];
  const outer = size.slice(0, k);
  const idx = new Array<number>(k).fill(0);
  const total = outer.reduce((a, b) => a * b, 1);
  let o = dstOff;
  for (let n = 0; n < total; n++) {
    let off = begin[k] * strides[k];
    for (let i = 0; i < k; i++) off += (begin[i] + idx[i]) * strides[i];
    dst.set(src.subarray(off, off + run), o);
    o += run;
    for (let i = k - 1; i >= 0; i--) { if (++idx[i] < outer[i]) break; idx[i] = 0; }
  }
}

const sliceKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const x = inputs.x as TensorInfo;
  const a = attrs as { begin: number[] | number; size: number[] | number };
  const rank = x.shape.length;
  const begin = typeof a.begin === 'number' ? [a.begin, ...new Array(rank - 1).fill(0)] : [...a.begin];
  const size = typeof a.size === 'number' ? [a.size, ...new Array(rank - 1).fill(-1)] : [...a.size];
  while (begin.length < rank) begin.push(0);
  while (size.length < rank) size.push(-1);
  for (let i = 0; i < rank; i++) if (size[i] === -1) size[i] = x.shape[i] - begin[i];
  const out = alloc(backend, size, x.dtype);
  if (sizeOf(size) > 0) copyBox(view(backend, x), x.shape, begin, size, view(backend, out), 0);
  return out;
};

const unpackKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const x = inputs.value as TensorInfo;
  let axis = (attrs as { axis: number }).axis;
  if (axis < 0) axis += x.shape.length;
  const n = x.shape[axis];
  const outShape = x.shape.filter((_, i) => i !== axis);
  const size = [...x.shape];
  size[axis] = 1;
  const outs: TensorInfo[] = [];
  for (let i = 0; i < n; i++) outs.push(alloc(backend, outShape, x.dtype));
  const src = view(backend, x); // after all allocations
  const begin = new Array<number>(x.shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    begin[axis] = i;
    if (sizeOf(outShape) > 0) copyBox(src, x.shape, begin, size, view(backend, outs[i]), 0);
  }
  return outs;
};

// ---------------------------------------------------------------------------------------------
// 5. Fused softmax cross-entropy: logits [n, V], labels [n] int32, mask [n] float32 →
//    loss [n] = −log softmax(logits)[label] · mask,   grad [n, V] = (softmax − onehot(label)) · mask

export const SOFTMAX_CE = 'VilmSoftmaxCrossEntropy';

/** Exact −log softmax(row)[label] from the logits, for a row whose softmax underflowed to 0. */
function exactNll(logits: Typed, off: number, V: number, label: number): number {
  let m = -Infinity;
  for (let j = 0; j < V; j++) m = Math.max(m, logits[off + j]);
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(logits[off + j] - m);
  return m + Math.log(s) - logits[off + label];
}

function softmaxCEKernel(stockSoftmax: KernelFunc | undefined): KernelFunc {
  return ({ inputs, backend }) => {
    const logits = inputs.logits as TensorInfo, labels = inputs.labels as TensorInfo, mask = inputs.mask as TensorInfo;
    const [n, V] = logits.shape;
    // Softmax: XNNPACK's vectorised kernel on wasm (~4× faster than Exp alone); plain JS on cpu.
    let grad: TensorInfo;
    if (stockSoftmax) {
      grad = stockSoftmax({ inputs: { logits }, backend, attrs: { dim: 1 } }) as TensorInfo; // dim must be non-negative here
    } else {
      grad = alloc(backend, [n, V], 'float32');
      const p = view(backend, grad), x = view(backend, logits);
      for (let i = 0; i < n; i++) {
        const off = i * V;
        let m = -Infinity;
        for (let j = 0; j < V; j++) m = Math.max(m, x[off + j]);
        let s = 0;
        for (let j = 0; j < V; j++) { const e = Math.exp(x[off + j] - m); p[off + j] = e; s += e; }
        const inv = 1 / s;
        for (let j = 0; j < V; j++) p[off + j] *= inv;
      }
    }
    const loss = alloc(backend, [n], 'float32');
    const p = view(backend, grad), l = view(backend, loss), lab = view(backend, labels), w = view(backend, mask);
    for (let i = 0; i < n; i++) {
      const off = i * V, wi = w[i];
      if (wi === 0) { p.fill(0, off, off + V); l[i] = 0; continue; }
      const k = lab[i];
      if (!(k >= 0 && k < V)) throw new Error(`${SOFTMAX_CE}: label ${k} out of range [0, ${V})`);
      const pk = p[off + k];
      l[i] = (pk > 0 ? -Math.log(pk) : exactNll(view(backend, logits), off, V, k)) * wi;
      p[off + k] = pk - 1;
      if (wi !== 1) for (let j = off; j < off + V; j++) p[j] *= wi;
    }
    return [loss, grad];
  };
}

/**
 * Fused softmax cross-entropy, forward and gradient in one kernel (no autodiff involved).
 * logits [n, V] float32, labels [n] int32, mask [n] float32 (0 masks a row).
 * Returns loss [n] (masked −log p) and grad [n, V] = d(Σ loss)/d logits = (p − onehot)·mask.
 */
export function softmaxCrossEntropyWithGrad(logits: tf.Tensor2D, labels: tf.Tensor1D, mask: tf.Tensor1D): { loss: tf.Tensor1D; grad: tf.Tensor2D } {
  if (!tf.getKernel(SOFTMAX_CE, tf.getBackend())) return softmaxCrossEntropyComposite(logits, labels, mask);
  const [loss, grad] = tf.engine().runKernel(SOFTMAX_CE, { logits, labels, mask }) as unknown as tf.Tensor[];
  return { loss: loss as tf.Tensor1D, grad: grad as tf.Tensor2D };
}

/**
 * The same result from stock ops, for backends where the JS kernel cannot reach tensor memory
 * (tfjs-node keeps tensors inside libtensorflow, whose kernels are fast anyway).
 */
export function softmaxCrossEntropyComposite(logits: tf.Tensor2D, labels: tf.Tensor1D, mask: tf.Tensor1D): { loss: tf.Tensor1D; grad: tf.Tensor2D } {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);                                            // [n, V]
    const onehot = tf.cast(tf.oneHot(labels, logits.shape[1]), 'float32');         // [n, V]
    const loss = tf.mul(tf.neg(tf.sum(tf.mul(logp, onehot), 1)), mask) as tf.Tensor1D;
    const grad = tf.mul(tf.sub(tf.exp(logp), onehot), tf.expandDims(mask, 1)) as tf.Tensor2D;
    return { loss, grad };
  });
}

/**
 * Per-row softmax cross-entropy loss [n] with a cheap custom gradient ((p − onehot)·mask·dy), for
 * autodiff code (tf.grads / tf.variableGrads). labels and mask get zero gradients.
 */
export const softmaxCrossEntropy: (logits: tf.Tensor2D, labels: tf.Tensor1D, mask: tf.Tensor1D) => tf.Tensor1D =
  tf.customGrad((...args: unknown[]) => {
    const [logits, labels, mask, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D, (ts: tf.Tensor[]) => void];
    const { loss, grad } = softmaxCrossEntropyWithGrad(logits, labels, mask);
    save([grad]);
    return {
      value: loss,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
        tf.mul(saved[0], tf.expandDims(dy, 1)), tf.zerosLike(labels), tf.zerosLike(mask),
      ],
    };
  }) as unknown as (logits: tf.Tensor2D, labels: tf.Tensor1D, mask: tf.Tensor1D) => tf.Tensor1D;

// ---------------------------------------------------------------------------------------------

function replaceKernel(config: KernelConfig): void {
  if (tf.getKernel(config.kernelName, config.backendName)) tf.unregisterKernel(config.kernelName, config.backendName);
  tf.registerKernel(config);
}

let useStock = false;
/**
 * Route every patched kernel that has a stock version back to the stock kernel (true) or to the
 * fix (false, the default). Only for benchmarks that measure "stock tfjs" side by side; kernels with
 * no stock version on the backend (the wasm gather gradient) stay patched since nothing runs without them.
 */
export function setStockKernels(on: boolean): void { useStock = on; }

/** Register `fixed` in place of the backend's kernel, keeping the stock one reachable via setStockKernels. */
function patch(kernelName: string, backendName: string, fixed: KernelFunc): void {
  const stock = tf.getKernel(kernelName, backendName)?.kernelFunc;
  replaceKernel({ kernelName, backendName, kernelFunc: (args) => (useStock && stock ? stock(args) : fixed(args)) });
}

const installed = new Set<string>();

/**
 * Which fixes a backend gets (declared per backend in ./registry.ts): `wasm` (all five, reading the
 * wasm heap), `cpu` (the gather gradient and the fused cross-entropy, reading the cpu data store),
 * `none` (e.g. tfjs-node: libtensorflow has all of these natively).
 */
export type KernelFixSet = 'wasm' | 'cpu' | 'none';

/**
 * Install the fixes `set` for one backend, once per thread. Must run AFTER the backend is
 * initialised: the stock wasm kernels being wrapped need their setup (cwrap) to have run.
 */
export function installKernelFixes(backendName: string, set: KernelFixSet): void {
  if (installed.has(backendName)) return;
  installed.add(backendName);
  switch (set) {
    case 'none':
      return;
    case 'wasm': {
      patch('UnsortedSegmentSum', backendName, unsortedSegmentSum);
      const stockMatMul = tf.getKernel('BatchMatMul', 'wasm').kernelFunc;
      const transpose = tf.getKernel('Transpose', 'wasm').kernelFunc;
      patch('BatchMatMul', backendName, wrapBatchMatMul(stockMatMul, transpose));
      patch('OneHot', backendName, oneHot);
      patch('Slice', backendName, sliceKernel);
      patch('Unpack', backendName, unpackKernel);
      const stockSoftmax = tf.getKernel('Softmax', 'wasm').kernelFunc;
      replaceKernel({ kernelName: SOFTMAX_CE, backendName, kernelFunc: softmaxCEKernel(stockSoftmax) });
      return;
    }
    case 'cpu':
      patch('UnsortedSegmentSum', backendName, unsortedSegmentSum);
      replaceKernel({ kernelName: SOFTMAX_CE, backendName, kernelFunc: softmaxCEKernel(undefined) });
      return;
    default: {
      const _exhaustive: never = set;
      throw new Error(`installKernelFixes: unknown fix set '${String(_exhaustive)}'`);
    }
  }
}
