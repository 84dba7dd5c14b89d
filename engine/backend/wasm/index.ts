/**
 * The WebAssembly SIMD backend ('wasm-simd') and backend selection.
 *
 * Kernels are AssemblyScript (./assembly), compiled to float32 WebAssembly with 128-bit SIMD by
 * `npm run build:wasm` into build/wasm/ (and copied to dist/ by `npm run build`). This module holds no
 * Node or DOM imports: it takes the kernel bytes, so it runs in Node, a webview and a web worker;
 * ./node.ts reads the bytes from disk, `loadWasmBackend` fetches them from a URL.
 *
 * Memory: the module's linear memory is a scratch arena. Each kernel call lays out its inputs,
 * outputs and scratch past heapBase(), growing memory when a call needs more (it never shrinks),
 * copies the inputs in, runs, and copies the outputs out into typed arrays the caller owns, as the
 * Backend interface requires: fresh ones, or inside a recycling scope (engine/recycling.ts) arrays of an earlier
 * step that nothing can see any more. The one exception: matmul operands that are parameters' host arrays (weights;
 * isParameterData: never mutated in place) are copied in once and kept in a pinned heap below the arena,
 * freed when the array is garbage-collected, up to PIN_BUDGET bytes (weights were half the bytes copied in
 * per training step of the real-model set). Keeping every tensor resident instead would need tensors to
 * hold wasm pointers rather than typed arrays: memory.grow detaches every view of the old buffer.
 *
 * float64: the kernels are float32 only. Calls with dtype 'float64' (the gradient-check path) go
 * to the TypeScript reference backend unchanged, so float64 results are the reference's exactly.
 * concat and gather are pure block copies and also run in TypeScript (TypedArray.set is already a
 * memcpy; copying through wasm memory would only add work).
 */
import { FloatArray, FloatDType } from '../../dtype';
import { Shape, broadcastStrides, mergeDims, mergeReduce, sizeOf, stridesOf } from '../../shape';
import { Backend, BinaryKernel, Conv2dGeometry, Conv2dMode, DepthwiseMode, MatmulPlan, ReduceKernel, UnaryKernel } from '../backend';
import { referenceBackend } from '../reference';
import { isParameterData } from '../../tensor';
import { WEIGHT_CACHE_BYTES } from '../../memory';
import { outputArray, recyclingActive } from '../../recycling';

/** Most bytes of parameter arrays kept in wasm memory between calls (beyond it, weights are copied per call). */
export const PIN_BUDGET = WEIGHT_CACHE_BYTES;

/** Raw exports of the kernel module (pointers are byte offsets into `memory`). */
interface Kernels {
  memory: WebAssembly.Memory;
  heapBase(): number;
  relaxedSimd(): number;
  matmulScratchBytes(batch: number, m: number, k: number, n: number): number;
  matmul(a: number, b: number, c: number, batch: number, m: number, k: number, n: number, aOff: number, bOff: number, transA: number, transB: number, work: number): void;
  unary(op: number, x: number, out: number, n: number, param: number): void;
  powScalar(x: number, out: number, n: number, e: number): void;
  binary(op: number, a: number, b: number, out: number, desc: number, param: number): void;
  where(cond: number, a: number, b: number, out: number, desc: number): void;
  reduce3(op: number, x: number, out: number, outer: number, r: number, inner: number, work: number): void;
  reduceGeneral(op: number, x: number, out: number, desc: number, outSize: number, acc: number): void;
  argReduce(op: number, x: number, out: number, desc: number, outSize: number, best: number): void;
  softmax(x: number, out: number, outer: number, n: number, inner: number, log: number, work: number): void;
  softmaxBackward(y: number, g: number, out: number, outer: number, n: number, inner: number, log: number, work: number): void;
  layerNorm(x: number, w: number, b: number, y: number, mean: number, rstd: number, rows: number, n: number, eps: number, rms: number): void;
  layerNormBackward(x: number, w: number, g: number, mean: number, rstd: number, gx: number, gw: number, gb: number, rows: number, n: number, rms: number, work: number): void;
  batchNorm(x: number, w: number, b: number, y: number, mean: number, rstd: number, outer: number, c: number, inner: number, eps: number): void;
  batchNormBackward(x: number, w: number, g: number, mean: number, rstd: number, gx: number, gw: number, gb: number, outer: number, c: number, inner: number): void;
  strided(x: number, out: number, desc: number, offset: number): void;
  stridedScatterAdd(g: number, out: number, desc: number, offset: number, size: number): void;
  scatterAdd(g: number, out: number, outer: number, axisLen: number, inner: number, indices: number, k: number): void;
  im2col(x: number, cols: number, ...geo: number[]): void;
  maxPoolChannelsLast(x: number, y: number, argmax: number, n: number, c: number, ...geoAndScratch: number[]): void;
  maxPoolChannelsLastScratchBytes(c: number, h: number, w: number, kh: number, kw: number, oh: number, ow: number): number;
  swishBackward(x: number, g: number, out: number, n: number): void;
  hardSigmoid(x: number, g: number, out: number, n: number, alpha: number, beta: number, swish: number, backward: number): void;
  conv2dScratchBytes(mode: number, n: number, c: number, o: number, groups: number, kh: number, kw: number, oh: number, ow: number): number;
  conv2d(mode: number, a: number, b: number, out: number, n: number, c: number, o: number, groups: number, ...geoAndWork: number[]): void;
  col2im(cols: number, img: number, ...geo: number[]): void;
  /** The trailing argument is scratch for the padded-plane path (0: the tap-at-a-time loop). */
  depthwiseConv2d(mode: number, a: number, b: number, out: number, acc: number, n: number, c: number, ...geoAndScratch: number[]): void;
  depthwisePaddedFits(kh: number, kw: number, sh: number, sw: number, ph: number, pw: number, dh: number, dw: number): number;
  depthwisePaddedScratchBytes(mode: number, h: number, w: number, kh: number, kw: number, oh: number, ow: number): number;
  depthwiseChannelsLast(mode: number, a: number, b: number, out: number, n: number, c: number, ...geoAndScratch: number[]): void;
  depthwiseChannelsLastScratchBytes(c: number, h: number, w: number, kh: number, kw: number, oh: number, ow: number): number;
  maxPool2d(x: number, y: number, argmax: number, planes: number, ...geo: number[]): void;
  avgPool2d(x: number, y: number, planes: number, ...geoAndCip: number[]): void;
  avgPool2dBackward(g: number, out: number, planes: number, ...geoAndCip: number[]): void;
}

const UNARY_CODES: Record<UnaryKernel, number> = {
  neg: 0, exp: 1, log: 2, sqrt: 3, rsqrt: 4, abs: 5, sign: 6, square: 7, reciprocal: 8, tanh: 9,
  sigmoid: 10, relu: 11, erf: 12, gelu: 13, geluTanh: 14, leakyRelu: 15, powScalar: 16, scale: 17, addScalar: 18,
  sin: 19, cos: 20, tan: 21, asin: 22, acos: 23, atan: 24,
};

const BINARY_CODES: Record<BinaryKernel, number> = {
  add: 0, sub: 1, mul: 2, div: 3, pow: 4, max: 5, min: 6, eq: 7, reluGrad: 8, leakyReluGrad: 9,
  absGrad: 10, tanhGrad: 11, sigmoidGrad: 12, erfGrad: 13, geluGrad: 14, geluTanhGrad: 15,
};

const REDUCE_CODES: Record<ReduceKernel, number> = { sum: 0, max: 1, min: 2 };

const DEPTHWISE_CODES: Record<DepthwiseMode, number> = { forward: 0, inputGrad: 1, weightGrad: 2 };

/** A function returning i8x16.popcnt(i8x16.splat(0)): validates where 128-bit SIMD is supported. */
export const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);
/** A function returning i8x16.relaxed_swizzle of two splats: validates where relaxed SIMD is enabled. */
export const RELAXED_SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 15, 1, 13, 0, 65, 1, 253, 15, 65, 2, 253, 15, 253, 128, 2, 11]);

/** Kernel file names produced by engine/backend/wasm/build.mjs. */
export const WASM_KERNEL_FILES = { simd: 'kernels.wasm', relaxed: 'kernels-relaxed.wasm' } as const;

export function wasmSimdSupported(wasm: typeof WebAssembly | undefined = globalThis.WebAssembly): boolean {
  try {
    return !!wasm && wasm.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

export function wasmRelaxedSimdSupported(wasm: typeof WebAssembly | undefined = globalThis.WebAssembly): boolean {
  try {
    return !!wasm && wasm.validate(RELAXED_SIMD_PROBE);
  } catch {
    return false;
  }
}

/** Which kernel file this engine should load: the relaxed-SIMD build where it validates, else the SIMD128 one. */
export function preferredKernelFile(wasm: typeof WebAssembly | undefined = globalThis.WebAssembly): string {
  return wasmRelaxedSimdSupported(wasm) ? WASM_KERNEL_FILES.relaxed : WASM_KERNEL_FILES.simd;
}

// ---------------------------------------------------------------- dimension merging

/** [rank, shape..., strides of each operand...] as Int32. */
function descriptor(shape: number[], strides: number[][]): Int32Array {
  const r = shape.length;
  const d = new Int32Array(1 + r * (1 + strides.length));
  d[0] = r;
  d.set(shape, 1);
  strides.forEach((s, k) => d.set(s, 1 + r * (k + 1)));
  return d;
}

function geoArgs(g: Conv2dGeometry): number[] {
  return [g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.oh, g.ow];
}

/**
 * Which depthwise kernel runs: the channels-last one (all channels' lanes busy, only in-bounds taps) except on
 * large stride-1 planes, where the plane kernel's padded rows already fill their lanes (measured per layer of
 * MobileNetV3, EfficientNet-B0 and ConvNeXt: channels-last 2.5-10x faster on stride-2 layers and planes of at most
 * 16x16, 10-40% slower on 32x32 stride-1 planes), and with fewer than 8 channels, where most of its lanes are empty.
 */
/** Most bytes one conv2d call may lay out in wasm memory (its kernel computes sizes in i32). */
const CONV_BYTES_LIMIT = 1.5 * 2 ** 30;

function depthwiseChannelsLastPays(geo: Conv2dGeometry, paddedFits: boolean): boolean {
  if (geo.c < 8) return false;
  return !(paddedFits && geo.oh * geo.ow > 256);
}

// ---------------------------------------------------------------- the backend

class WasmSimdBackend implements Backend {
  readonly name = 'wasm-simd';
  /** True when the loaded kernels use relaxed SIMD (FMA in matmul). */
  readonly relaxedSimd: boolean;
  private readonly k: Kernels;
  private readonly memory: WebAssembly.Memory;
  private readonly base: number;
  private top = 0;
  /** End of the pinned heap [base, pinTop); the per-call arena starts there. */
  private pinTop: number;
  /** Free blocks inside the pinned heap, sorted by address, never adjacent. */
  private readonly freeBlocks: { ptr: number; bytes: number }[] = [];
  private readonly pins = new WeakMap<FloatArray, number>();
  private pinned = 0;
  private readonly unpinOnCollect = new FinalizationRegistry<{ ptr: number; bytes: number }>((block) => this.unpin(block));

  constructor(k: Kernels) {
    this.k = k;
    this.memory = k.memory;
    this.base = k.heapBase();
    this.pinTop = this.base;
    this.relaxedSimd = k.relaxedSimd() === 1;
  }

  /** Bytes of parameter arrays currently kept in wasm memory. */
  get pinnedBytes(): number {
    return this.pinned;
  }

  // -- pinned heap: parameters' arrays copied in once (first fit over the free blocks, else at the top).

  /** Where `x` lives in wasm memory if it is (or now becomes) pinned, else -1 (copy it per call). */
  private pin(x: FloatArray): number {
    const have = this.pins.get(x);
    if (have !== undefined) return have;
    if (!(x instanceof Float32Array) || x.length === 0 || !isParameterData(x)) return -1;
    const bytes = (x.length * 4 + 63) & ~63;
    if (this.pinned + bytes > PIN_BUDGET) return -1;
    let ptr = -1;
    const i = this.freeBlocks.findIndex((b) => b.bytes >= bytes);
    if (i >= 0) {
      const b = this.freeBlocks[i];
      ptr = b.ptr;
      b.ptr += bytes;
      b.bytes -= bytes;
      if (b.bytes === 0) this.freeBlocks.splice(i, 1);
    } else {
      ptr = this.pinTop;
      this.pinTop += bytes;
      this.ensure(this.pinTop);
    }
    this.f32(ptr, x.length).set(x);
    this.pins.set(x, ptr);
    this.pinned += bytes;
    this.unpinOnCollect.register(x, { ptr, bytes });
    return ptr;
  }

  private unpin(block: { ptr: number; bytes: number }): void {
    this.pinned -= block.bytes;
    const list = this.freeBlocks;
    let i = list.findIndex((b) => b.ptr > block.ptr);
    if (i < 0) i = list.length;
    list.splice(i, 0, { ...block });
    // Merge with the next and the previous block, then give a free tail back to the arena.
    if (i + 1 < list.length && list[i].ptr + list[i].bytes === list[i + 1].ptr) {
      list[i].bytes += list[i + 1].bytes;
      list.splice(i + 1, 1);
    }
    if (i > 0 && list[i - 1].ptr + list[i - 1].bytes === list[i].ptr) {
      list[i - 1].bytes += list[i].bytes;
      list.splice(i, 1);
      i--;
    }
    if (list[i].ptr + list[i].bytes === this.pinTop) {
      this.pinTop = list[i].ptr;
      list.splice(i, 1);
    }
  }

  // -- arena: reserve() lays out a call's buffers, commit() grows memory once, then views are stable.

  private reset(): void {
    this.top = this.pinTop;
  }

  private reserve(bytes: number): number {
    const p = this.top;
    this.top += (bytes + 63) & ~63;
    return p;
  }

  private commit(): void {
    this.ensure(this.top);
  }

  /** Grows memory to at least `end` bytes. */
  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const need = Math.ceil((end - have) / 65536);
    // Grow by at least half the current size so a sequence of growing calls stays cheap.
    const pages = Math.max(need, Math.ceil(have / 65536 / 2));
    try {
      this.memory.grow(pages);
    } catch {
      this.memory.grow(need);
    }
  }

  private f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, n);
  }

  private put(ptr: number, data: ArrayLike<number> & { length: number }): void {
    if (data.length > 0) this.f32(ptr, data.length).set(data as Float32Array);
  }

  private putI32(ptr: number, data: Int32Array): void {
    if (data.length > 0) new Int32Array(this.memory.buffer, ptr, data.length).set(data);
  }

  /** A kernel's output copied out of wasm memory: into a recycled array inside a recycling scope (engine/recycling.ts). */
  private take(ptr: number, n: number): Float32Array {
    if (!recyclingActive()) return this.f32(ptr, n).slice();
    const out = outputArray(n);
    out.set(this.f32(ptr, n));
    return out;
  }

  // -- kernels

  unary(op: UnaryKernel, x: FloatArray, param: number, dtype: FloatDType): FloatArray {
    if (dtype === 'float64' || x.length === 0) return referenceBackend.unary(op, x, param, dtype);
    const n = x.length;
    this.reset();
    const px = this.reserve(n * 4);
    const po = this.reserve(n * 4);
    this.commit();
    this.put(px, x);
    if (op === 'powScalar') this.k.powScalar(px, po, n, param);
    else this.k.unary(UNARY_CODES[op], px, po, n, param);
    return this.take(po, n);
  }

  binary(op: BinaryKernel, a: FloatArray, aShape: Shape, b: FloatArray, bShape: Shape, outShape: Shape, dtype: FloatDType, param = 0): FloatArray {
    const size = sizeOf(outShape);
    if (dtype === 'float64' || size === 0) return referenceBackend.binary(op, a, aShape, b, bShape, outShape, dtype, param);
    const m = mergeDims(outShape, [broadcastStrides(aShape, outShape), broadcastStrides(bShape, outShape)]);
    const desc = descriptor(m.shape, m.strides);
    this.reset();
    const pa = this.reserve(a.length * 4);
    const pb = this.reserve(b.length * 4);
    const po = this.reserve(size * 4);
    const pd = this.reserve(desc.length * 4);
    this.commit();
    this.put(pa, a);
    this.put(pb, b);
    this.putI32(pd, desc);
    this.k.binary(BINARY_CODES[op], pa, pb, po, pd, param);
    return this.take(po, size);
  }

  reduce(op: ReduceKernel, x: FloatArray, shape: Shape, axes: readonly number[], dtype: FloatDType): FloatArray {
    const outSize = sizeOf(shape.map((d, i) => (axes.includes(i) ? 1 : d)));
    if (dtype === 'float64' || x.length === 0) return referenceBackend.reduce(op, x, shape, axes, dtype);
    const { sizes, reduced } = mergeReduce(shape, axes);
    const groups = reduced.filter((r) => r).length;
    if (groups === 0) return Float32Array.from(x);
    this.reset();
    const px = this.reserve(x.length * 4);
    const po = this.reserve(outSize * 4);
    if (groups === 1) {
      const at = reduced.indexOf(true);
      const outer = sizeOf(sizes.slice(0, at));
      const inner = sizeOf(sizes.slice(at + 1));
      const work = this.reserve(inner * 8);
      this.commit();
      this.put(px, x);
      this.k.reduce3(REDUCE_CODES[op], px, po, outer, sizes[at], inner, work);
    } else {
      const desc = this.reduceDescriptor(sizes, reduced);
      const pd = this.reserve(desc.length * 4);
      const acc = this.reserve(outSize * 8);
      this.commit();
      this.put(px, x);
      this.putI32(pd, desc);
      this.k.reduceGeneral(REDUCE_CODES[op], px, po, pd, outSize, acc);
    }
    return this.take(po, outSize);
  }

  /** [rank, sizes, output strides (0 on reduced dims)]. */
  private reduceDescriptor(sizes: number[], reduced: boolean[]): Int32Array {
    const keptStrides = stridesOf(sizes.map((s, i) => (reduced[i] ? 1 : s)));
    return descriptor(sizes, [sizes.map((_, i) => (reduced[i] ? 0 : keptStrides[i]))]);
  }

  argReduce(op: 'max' | 'min', x: FloatArray, shape: Shape, axes: readonly number[]): Int32Array {
    const outSize = sizeOf(shape.map((d, i) => (axes.includes(i) ? 1 : d)));
    if (x instanceof Float64Array || x.length === 0) return referenceBackend.argReduce(op, x, shape, axes);
    // Merging keeps flat input indices intact: dims are only dropped (size 1) or fused in order.
    const { sizes, reduced } = mergeReduce(shape, axes);
    if (sizes.length === 0) return new Int32Array(outSize);
    const desc = this.reduceDescriptor(sizes, reduced);
    this.reset();
    const px = this.reserve(x.length * 4);
    const po = this.reserve(outSize * 4);
    const pd = this.reserve(desc.length * 4);
    const best = this.reserve(outSize * 4);
    this.commit();
    this.put(px, x);
    this.putI32(pd, desc);
    this.k.argReduce(REDUCE_CODES[op], px, po, pd, outSize, best);
    return new Int32Array(this.memory.buffer, po, outSize).slice();
  }

  matmul(a: FloatArray, b: FloatArray, plan: MatmulPlan, dtype: FloatDType): FloatArray {
    const { batch, m, k, n } = plan;
    const size = batch * m * n;
    if (dtype === 'float64') return referenceBackend.matmul(a, b, plan, dtype);
    if (size === 0) return new Float32Array(0);
    const pinA = this.pin(a);
    const pinB = this.pin(b);
    this.reset();
    const pa = pinA >= 0 ? pinA : this.reserve(a.length * 4);
    const pb = pinB >= 0 ? pinB : this.reserve(b.length * 4);
    const pc = this.reserve(size * 4);
    const pao = this.reserve(batch * 4);
    const pbo = this.reserve(batch * 4);
    const work = this.reserve(this.k.matmulScratchBytes(batch, m, k, n));
    this.commit();
    if (pinA < 0) this.put(pa, a);
    if (pinB < 0) this.put(pb, b);
    this.putI32(pao, plan.aOffsets);
    this.putI32(pbo, plan.bOffsets);
    this.k.matmul(pa, pb, pc, batch, m, k, n, pao, pbo, plan.transA ? 1 : 0, plan.transB ? 1 : 0, work);
    return this.take(pc, size);
  }

  strided(x: FloatArray, outShape: Shape, strides: readonly number[], offset: number, dtype: FloatDType): FloatArray {
    const size = sizeOf(outShape);
    if (dtype === 'float64' || size === 0) return referenceBackend.strided(x, outShape, strides, offset, dtype);
    const m = mergeDims(outShape, [[...strides]]);
    const desc = descriptor(m.shape, m.strides);
    this.reset();
    const px = this.reserve(x.length * 4);
    const po = this.reserve(size * 4);
    const pd = this.reserve(desc.length * 4);
    this.commit();
    this.put(px, x);
    this.putI32(pd, desc);
    this.k.strided(px, po, pd, offset);
    return this.take(po, size);
  }

  stridedScatterAdd(g: FloatArray, gShape: Shape, strides: readonly number[], offset: number, size: number, dtype: FloatDType): FloatArray {
    if (dtype === 'float64' || g.length === 0 || size === 0) return referenceBackend.stridedScatterAdd(g, gShape, strides, offset, size, dtype);
    const m = mergeDims(gShape, [[...strides]]);
    const desc = descriptor(m.shape, m.strides);
    this.reset();
    const pg = this.reserve(g.length * 4);
    const po = this.reserve(size * 4);
    const pd = this.reserve(desc.length * 4);
    this.commit();
    this.put(pg, g);
    this.putI32(pd, desc);
    this.k.stridedScatterAdd(pg, po, pd, offset, size);
    return this.take(po, size);
  }

  concat(parts: readonly FloatArray[], outer: number, sizes: readonly number[], dtype: FloatDType): FloatArray {
    return referenceBackend.concat(parts, outer, sizes, dtype);
  }

  softmax(x: FloatArray, outer: number, n: number, inner: number, log: boolean, dtype: FloatDType): FloatArray {
    if (dtype === 'float64' || x.length === 0) return referenceBackend.softmax(x, outer, n, inner, log, dtype);
    this.reset();
    const px = this.reserve(x.length * 4);
    const po = this.reserve(x.length * 4);
    const work = this.reserve(inner * 12);
    this.commit();
    this.put(px, x);
    this.k.softmax(px, po, outer, n, inner, log ? 1 : 0, work);
    return this.take(po, x.length);
  }

  softmaxBackward(y: FloatArray, g: FloatArray, outer: number, n: number, inner: number, log: boolean, dtype: FloatDType): FloatArray {
    if (dtype === 'float64' || y.length === 0) return referenceBackend.softmaxBackward(y, g, outer, n, inner, log, dtype);
    this.reset();
    const py = this.reserve(y.length * 4);
    const pg = this.reserve(g.length * 4);
    const po = this.reserve(y.length * 4);
    const work = this.reserve(inner * 4);
    this.commit();
    this.put(py, y);
    this.put(pg, g);
    this.k.softmaxBackward(py, pg, po, outer, n, inner, log ? 1 : 0, work);
    return this.take(po, y.length);
  }

  layerNorm(x: FloatArray, weight: FloatArray | null, bias: FloatArray | null, rows: number, n: number, eps: number, rms: boolean, dtype: FloatDType) {
    if (dtype === 'float64' || x.length === 0) return referenceBackend.layerNorm(x, weight, bias, rows, n, eps, rms, dtype);
    this.reset();
    const px = this.reserve(x.length * 4);
    const pw = weight ? this.reserve(n * 4) : 0;
    const pb = bias ? this.reserve(n * 4) : 0;
    const py = this.reserve(x.length * 4);
    const pm = this.reserve(rows * 8);
    const pr = this.reserve(rows * 8);
    this.commit();
    this.put(px, x);
    if (weight) this.put(pw, weight);
    if (bias) this.put(pb, bias);
    this.k.layerNorm(px, pw, pb, py, pm, pr, rows, n, eps, rms ? 1 : 0);
    return {
      y: this.take(py, x.length),
      mean: new Float64Array(this.memory.buffer, pm, rows).slice(),
      rstd: new Float64Array(this.memory.buffer, pr, rows).slice(),
    };
  }

  layerNormBackward(x: FloatArray, weight: FloatArray | null, g: FloatArray, mean: Float64Array, rstd: Float64Array, rows: number, n: number, rms: boolean, dtype: FloatDType) {
    if (dtype === 'float64' || x.length === 0) return referenceBackend.layerNormBackward(x, weight, g, mean, rstd, rows, n, rms, dtype);
    this.reset();
    const px = this.reserve(x.length * 4);
    const pw = weight ? this.reserve(n * 4) : 0;
    const pg = this.reserve(g.length * 4);
    const pm = this.reserve(rows * 8);
    const pr = this.reserve(rows * 8);
    const pgx = this.reserve(x.length * 4);
    const pgw = this.reserve(n * 4);
    const pgb = this.reserve(n * 4);
    const work = this.reserve(n * 20);
    this.commit();
    this.put(px, x);
    if (weight) this.put(pw, weight);
    this.put(pg, g);
    new Float64Array(this.memory.buffer, pm, rows).set(mean);
    new Float64Array(this.memory.buffer, pr, rows).set(rstd);
    this.k.layerNormBackward(px, pw, pg, pm, pr, pgx, pgw, pgb, rows, n, rms ? 1 : 0, work);
    return { gx: this.take(pgx, x.length), gw: this.take(pgw, n), gb: this.take(pgb, n) };
  }

  batchNorm(x: FloatArray, weight: FloatArray | null, bias: FloatArray | null, outer: number, c: number, inner: number, eps: number, dtype: FloatDType) {
    if (dtype === 'float64' || x.length === 0) return referenceBackend.batchNorm(x, weight, bias, outer, c, inner, eps, dtype);
    this.reset();
    const px = this.reserve(x.length * 4);
    const pw = weight ? this.reserve(c * 4) : 0;
    const pb = bias ? this.reserve(c * 4) : 0;
    const py = this.reserve(x.length * 4);
    const pm = this.reserve(c * 8);
    const pr = this.reserve(c * 8);
    this.commit();
    this.put(px, x);
    if (weight) this.put(pw, weight);
    if (bias) this.put(pb, bias);
    this.k.batchNorm(px, pw, pb, py, pm, pr, outer, c, inner, eps);
    return {
      y: this.take(py, x.length),
      mean: new Float64Array(this.memory.buffer, pm, c).slice(),
      rstd: new Float64Array(this.memory.buffer, pr, c).slice(),
    };
  }

  batchNormBackward(x: FloatArray, weight: FloatArray | null, g: FloatArray, mean: Float64Array, rstd: Float64Array, outer: number, c: number, inner: number, dtype: FloatDType) {
    if (dtype === 'float64' || x.length === 0) return referenceBackend.batchNormBackward(x, weight, g, mean, rstd, outer, c, inner, dtype);
    this.reset();
    const px = this.reserve(x.length * 4);
    const pw = weight ? this.reserve(c * 4) : 0;
    const pg = this.reserve(g.length * 4);
    const pm = this.reserve(c * 8);
    const pr = this.reserve(c * 8);
    const pgx = this.reserve(x.length * 4);
    const pgw = this.reserve(c * 4);
    const pgb = this.reserve(c * 4);
    this.commit();
    this.put(px, x);
    if (weight) this.put(pw, weight);
    this.put(pg, g);
    new Float64Array(this.memory.buffer, pm, c).set(mean);
    new Float64Array(this.memory.buffer, pr, c).set(rstd);
    this.k.batchNormBackward(px, pw, pg, pm, pr, pgx, pgw, pgb, outer, c, inner);
    return { gx: this.take(pgx, x.length), gw: this.take(pgw, c), gb: this.take(pgb, c) };
  }

  im2col(x: FloatArray, geo: Conv2dGeometry, dtype: FloatDType): FloatArray {
    const size = geo.n * geo.c * geo.kh * geo.kw * geo.oh * geo.ow;
    if (dtype === 'float64' || size === 0) return referenceBackend.im2col(x, geo, dtype);
    this.reset();
    const px = this.reserve(x.length * 4);
    const po = this.reserve(size * 4);
    this.commit();
    this.put(px, x);
    this.k.im2col(px, po, geo.n, geo.c, ...geoArgs(geo));
    return this.take(po, size);
  }

  col2im(cols: FloatArray, geo: Conv2dGeometry, dtype: FloatDType): FloatArray {
    const size = geo.n * geo.c * geo.h * geo.w;
    if (dtype === 'float64' || size === 0 || cols.length === 0) return referenceBackend.col2im(cols, geo, dtype);
    this.reset();
    const pc = this.reserve(cols.length * 4);
    const po = this.reserve(size * 4);
    this.commit();
    this.put(pc, cols);
    this.k.col2im(pc, po, geo.n, geo.c, ...geoArgs(geo));
    return this.take(po, size);
  }

  /** Dense convolution with the im2col columns kept in wasm scratch (assembly/conv.ts); the weight may be pinned. */
  conv2d(mode: Conv2dMode, a: FloatArray, b: FloatArray, geo: Conv2dGeometry, groups: number, o: number, dtype: FloatDType): FloatArray {
    const size = mode === 'forward' ? geo.n * o * geo.oh * geo.ow : mode === 'inputGrad' ? geo.n * geo.c * geo.h * geo.w : o * (geo.c / groups) * geo.kh * geo.kw;
    if (dtype === 'float64' || size === 0 || a.length === 0 || b.length === 0) return referenceBackend.conv2d(mode, a, b, geo, groups, o, dtype);
    // The kernel sizes its scratch in i32 bytes: refuse (clearly) what would not fit rather than wrap around.
    const columnsBytes = geo.c * geo.kh * geo.kw * geo.n * geo.oh * geo.ow * 4;
    const totalBytes = columnsBytes + (a.length + b.length + 2 * size + o * geo.n * geo.oh * geo.ow) * 4;
    if (totalBytes > CONV_BYTES_LIMIT) {
      throw new RangeError(`conv2d: input [${geo.n}, ${geo.c}, ${geo.h}, ${geo.w}] with a ${geo.kh}x${geo.kw} kernel needs ${(totalBytes / 2 ** 30).toFixed(1)} GiB of wasm memory for its im2col columns (at most ${CONV_BYTES_LIMIT / 2 ** 30} GiB); use a smaller batch or input`);
    }
    const code = DEPTHWISE_CODES[mode];
    const pinB = mode === 'weightGrad' ? -1 : this.pin(b);
    this.reset();
    const pa = this.reserve(a.length * 4);
    const pb = pinB >= 0 ? pinB : this.reserve(b.length * 4);
    const po = this.reserve(size * 4);
    const work = this.reserve(this.k.conv2dScratchBytes(code, geo.n, geo.c, o, groups, geo.kh, geo.kw, geo.oh, geo.ow));
    this.commit();
    this.put(pa, a);
    if (pinB < 0) this.put(pb, b);
    this.k.conv2d(code, pa, pb, po, geo.n, geo.c, o, groups, ...geoArgs(geo), work);
    return this.take(po, size);
  }

  depthwiseConv2d(mode: DepthwiseMode, a: FloatArray, b: FloatArray, geo: Conv2dGeometry, dtype: FloatDType): FloatArray {
    const taps = geo.kh * geo.kw;
    const size = mode === 'forward' ? geo.n * geo.c * geo.oh * geo.ow : mode === 'inputGrad' ? geo.n * geo.c * geo.h * geo.w : geo.c * taps;
    if (dtype === 'float64' || size === 0 || a.length === 0 || b.length === 0) return referenceBackend.depthwiseConv2d(mode, a, b, geo, dtype);
    const padded = this.k.depthwisePaddedFits(geo.kh, geo.kw, geo.sh, geo.sw, geo.ph, geo.pw, geo.dh, geo.dw) === 1;
    if (depthwiseChannelsLastPays(geo, padded)) return this.depthwiseChannelsLast(mode, a, b, geo, size);
    this.reset();
    const pa = this.reserve(a.length * 4);
    const pb = this.reserve(b.length * 4);
    const po = this.reserve(size * 4);
    const acc = this.reserve(mode === 'weightGrad' ? geo.c * taps * 8 : 0);
    const scratch = padded ? this.reserve(this.k.depthwisePaddedScratchBytes(DEPTHWISE_CODES[mode], geo.h, geo.w, geo.kh, geo.kw, geo.oh, geo.ow)) : 0;
    this.commit();
    this.put(pa, a);
    this.put(pb, b);
    this.k.depthwiseConv2d(DEPTHWISE_CODES[mode], pa, pb, po, acc, geo.n, geo.c, ...geoArgs(geo), scratch);
    return this.take(po, size);
  }

  /** Hard sigmoid / hard swish and their VJP (assembly/activation.ts). */
  hardSigmoid(x: FloatArray, g: FloatArray | null, alpha: number, beta: number, swish: boolean, dtype: FloatDType): FloatArray {
    const n = x.length;
    if (dtype === 'float64' || n === 0) return referenceBackend.hardSigmoid(x, g, alpha, beta, swish, dtype);
    this.reset();
    const px = this.reserve(n * 4);
    const pg = g ? this.reserve(n * 4) : 0;
    const po = this.reserve(n * 4);
    this.commit();
    this.put(px, x);
    if (g) this.put(pg, g);
    this.k.hardSigmoid(px, pg, po, n, alpha, beta, swish ? 1 : 0, g ? 1 : 0);
    return this.take(po, n);
  }

  /** VJP of x sigmoid(x) (assembly/activation.ts). */
  swishBackward(x: FloatArray, g: FloatArray, dtype: FloatDType): FloatArray {
    const n = x.length;
    if (dtype === 'float64' || n === 0) return referenceBackend.swishBackward(x, g, dtype);
    this.reset();
    const px = this.reserve(n * 4);
    const pg = this.reserve(n * 4);
    const po = this.reserve(n * 4);
    this.commit();
    this.put(px, x);
    this.put(pg, g);
    this.k.swishBackward(px, pg, po, n);
    return this.take(po, n);
  }

  /** depthwiseConv2d through the channels-last kernel (assembly/depthwise.ts). */
  private depthwiseChannelsLast(mode: DepthwiseMode, a: FloatArray, b: FloatArray, geo: Conv2dGeometry, size: number): FloatArray {
    this.reset();
    const pa = this.reserve(a.length * 4);
    const pb = this.reserve(b.length * 4);
    const po = this.reserve(size * 4);
    const scratch = this.reserve(this.k.depthwiseChannelsLastScratchBytes(geo.c, geo.h, geo.w, geo.kh, geo.kw, geo.oh, geo.ow));
    this.commit();
    this.put(pa, a);
    this.put(pb, b);
    this.k.depthwiseChannelsLast(DEPTHWISE_CODES[mode], pa, pb, po, geo.n, geo.c, ...geoArgs(geo), scratch);
    return this.take(po, size);
  }

  gather(x: FloatArray, outer: number, axisLen: number, inner: number, indices: Int32Array, dtype: FloatDType): FloatArray {
    return referenceBackend.gather(x, outer, axisLen, inner, indices, dtype);
  }

  scatterAdd(g: FloatArray, outer: number, axisLen: number, inner: number, indices: Int32Array, dtype: FloatDType): FloatArray {
    const size = outer * axisLen * inner;
    if (dtype === 'float64' || size === 0) return referenceBackend.scatterAdd(g, outer, axisLen, inner, indices, dtype);
    this.reset();
    const pg = this.reserve(g.length * 4);
    const pi = this.reserve(indices.length * 4);
    const po = this.reserve(size * 4);
    this.commit();
    this.put(pg, g);
    this.putI32(pi, indices);
    this.k.scatterAdd(pg, po, outer, axisLen, inner, pi, indices.length);
    return this.take(po, size);
  }

  maxPool2d(x: FloatArray, geo: Conv2dGeometry, dtype: FloatDType): { y: FloatArray; argmax: Int32Array } {
    const size = geo.n * geo.c * geo.oh * geo.ow;
    if (dtype === 'float64' || size === 0) return referenceBackend.maxPool2d(x, geo, dtype);
    this.reset();
    const px = this.reserve(x.length * 4);
    const py = this.reserve(size * 4);
    const pa = this.reserve(size * 4);
    // 8+ channels: vectorised across channels (assembly/pool.ts), else one window element at a time.
    const channelsLast = geo.c >= 8;
    const scratch = channelsLast ? this.reserve(this.k.maxPoolChannelsLastScratchBytes(geo.c, geo.h, geo.w, geo.kh, geo.kw, geo.oh, geo.ow)) : 0;
    this.commit();
    this.put(px, x);
    if (channelsLast) this.k.maxPoolChannelsLast(px, py, pa, geo.n, geo.c, ...geoArgs(geo), scratch);
    else this.k.maxPool2d(px, py, pa, geo.n * geo.c, ...geoArgs(geo));
    return { y: this.take(py, size), argmax: new Int32Array(this.memory.buffer, pa, size).slice() };
  }

  avgPool2d(x: FloatArray, geo: Conv2dGeometry, countIncludePad: boolean, dtype: FloatDType): FloatArray {
    const size = geo.n * geo.c * geo.oh * geo.ow;
    if (dtype === 'float64' || size === 0) return referenceBackend.avgPool2d(x, geo, countIncludePad, dtype);
    this.reset();
    const px = this.reserve(x.length * 4);
    const py = this.reserve(size * 4);
    this.commit();
    this.put(px, x);
    this.k.avgPool2d(px, py, geo.n * geo.c, ...geoArgs(geo), countIncludePad ? 1 : 0);
    return this.take(py, size);
  }

  avgPool2dBackward(g: FloatArray, geo: Conv2dGeometry, countIncludePad: boolean, dtype: FloatDType): FloatArray {
    const size = geo.n * geo.c * geo.h * geo.w;
    if (dtype === 'float64' || size === 0 || g.length === 0) return referenceBackend.avgPool2dBackward(g, geo, countIncludePad, dtype);
    this.reset();
    const pg = this.reserve(g.length * 4);
    const po = this.reserve(size * 4);
    this.commit();
    this.put(pg, g);
    this.k.avgPool2dBackward(pg, po, geo.n * geo.c, ...geoArgs(geo), countIncludePad ? 1 : 0);
    return this.take(po, size);
  }

  where(cond: Uint8Array, condShape: Shape, a: FloatArray, aShape: Shape, b: FloatArray, bShape: Shape, outShape: Shape, dtype: FloatDType): FloatArray {
    const size = sizeOf(outShape);
    if (dtype === 'float64' || size === 0) return referenceBackend.where(cond, condShape, a, aShape, b, bShape, outShape, dtype);
    const m = mergeDims(outShape, [broadcastStrides(condShape, outShape), broadcastStrides(aShape, outShape), broadcastStrides(bShape, outShape)]);
    const desc = descriptor(m.shape, m.strides);
    this.reset();
    const pc = this.reserve(cond.length);
    const pa = this.reserve(a.length * 4);
    const pb = this.reserve(b.length * 4);
    const po = this.reserve(size * 4);
    const pd = this.reserve(desc.length * 4);
    this.commit();
    new Uint8Array(this.memory.buffer, pc, cond.length).set(cond);
    this.put(pa, a);
    this.put(pb, b);
    this.putI32(pd, desc);
    this.k.where(pc, pa, pb, po, pd);
    return this.take(po, size);
  }
}

export type WasmBytes = Uint8Array | ArrayBuffer;

/** The WebAssembly SIMD backend from kernel bytes (build/wasm/kernels*.wasm). Rejects if the engine lacks SIMD. */
export async function createWasmBackend(wasmBytes: WasmBytes): Promise<Backend & { readonly relaxedSimd: boolean }> {
  const bytes = wasmBytes instanceof Uint8Array ? wasmBytes : new Uint8Array(wasmBytes);
  const { instance } = await WebAssembly.instantiate(bytes as BufferSource, {
    env: {
      abort(_msg: number, _file: number, line: number, col: number) {
        throw new Error(`wasm kernel abort at ${line}:${col}`);
      },
    },
  });
  return new WasmSimdBackend(instance.exports as unknown as Kernels);
}

/**
 * Browser/worker loader: `source` is the kernel bytes, a URL of one kernel file, or the URL of the
 * folder holding both files (ending in '/'), from which the relaxed-SIMD build is taken when the
 * engine supports it.
 */
export async function loadWasmBackend(source: WasmBytes | string | URL): Promise<Backend & { readonly relaxedSimd: boolean }> {
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) return createWasmBackend(source);
  let url = source.toString();
  if (url.endsWith('/')) url += preferredKernelFile();
  const response = await fetch(url);
  if (!response.ok) throw new Error(`fetching ${url}: HTTP ${response.status}`);
  return createWasmBackend(await response.arrayBuffer());
}

// ---------------------------------------------------------------- backend selection

export type BackendKind = 'webgpu' | 'wasm' | 'typescript';

export interface BackendPreferences {
  /** Order to try; the TypeScript reference always ends the list. Default: webgpu, wasm, typescript. */
  order?: readonly BackendKind[];
  /** Creates the WebGPU backend (it lives elsewhere); without it WebGPU is skipped. May return null (no adapter). */
  webgpu?: () => Promise<Backend | null>;
  /** Kernel bytes, a URL (see loadWasmBackend), or a function returning the bytes (e.g. ./node.ts readKernelBytes). */
  wasm?: WasmBytes | string | URL | (() => Promise<WasmBytes> | WasmBytes);
}

export interface BackendEnvironment {
  /** The WebAssembly namespace to probe (default globalThis.WebAssembly; pass undefined to simulate none). */
  WebAssembly?: typeof WebAssembly;
  /** navigator.gpu, when the caller has it (default globalThis.navigator?.gpu). */
  gpu?: unknown;
}

export interface BackendAttempt {
  kind: BackendKind;
  ok: boolean;
  reason: string;
}

export interface BackendSelection {
  backend: Backend;
  /** backend.name: 'webgpu...', 'wasm-simd' or 'typescript'. */
  name: string;
  kind: BackendKind;
  /** Why this backend runs, including why the ones before it did not. */
  reason: string;
  /** Every backend tried, in order, with the outcome. */
  tried: BackendAttempt[];
}

function defaultEnvironment(): BackendEnvironment {
  const nav = (globalThis as { navigator?: { gpu?: unknown } }).navigator;
  return { WebAssembly: globalThis.WebAssembly, gpu: nav?.gpu };
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Picks the first backend that works, in the order WebGPU, WebAssembly SIMD, TypeScript (or
 * `preferences.order`), and reports which one runs and why the others did not.
 */
export async function selectBackend(preferences: BackendPreferences = {}, env: BackendEnvironment = defaultEnvironment()): Promise<BackendSelection> {
  const order = [...(preferences.order ?? ['webgpu', 'wasm', 'typescript'])];
  if (!order.includes('typescript')) order.push('typescript');
  const tried: BackendAttempt[] = [];
  const done = (kind: BackendKind, backend: Backend, why: string): BackendSelection => {
    tried.push({ kind, ok: true, reason: why });
    const skipped = tried.filter((t) => !t.ok).map((t) => `${t.kind}: ${t.reason}`);
    return {
      backend,
      name: backend.name,
      kind,
      reason: `${backend.name}: ${why}${skipped.length ? ` (skipped ${skipped.join('; ')})` : ''}`,
      tried,
    };
  };
  for (const kind of order) {
    if (kind === 'webgpu') {
      if (!preferences.webgpu) {
        tried.push({ kind, ok: false, reason: 'no WebGPU backend factory supplied' });
        continue;
      }
      if (!env.gpu) {
        tried.push({ kind, ok: false, reason: 'navigator.gpu is not available' });
        continue;
      }
      try {
        const backend = await preferences.webgpu();
        if (backend) return done(kind, backend, 'WebGPU adapter and device available');
        tried.push({ kind, ok: false, reason: 'no WebGPU adapter' });
      } catch (e) {
        tried.push({ kind, ok: false, reason: `WebGPU backend failed to start: ${message(e)}` });
      }
    } else if (kind === 'wasm') {
      if (!env.WebAssembly) {
        tried.push({ kind, ok: false, reason: 'WebAssembly is not available' });
        continue;
      }
      if (!wasmSimdSupported(env.WebAssembly)) {
        tried.push({ kind, ok: false, reason: 'WebAssembly 128-bit SIMD is not supported by this engine' });
        continue;
      }
      const source = preferences.wasm;
      if (source === undefined) {
        tried.push({ kind, ok: false, reason: 'no WebAssembly kernel bytes or URL supplied' });
        continue;
      }
      try {
        const resolved = typeof source === 'function' ? await source() : source;
        const backend = await loadWasmBackend(resolved);
        return done(kind, backend, `WebAssembly SIMD supported${backend.relaxedSimd ? ', relaxed-SIMD FMA kernels' : ''}`);
      } catch (e) {
        tried.push({ kind, ok: false, reason: `WebAssembly kernels failed to load: ${message(e)}` });
      }
    } else {
      return done('typescript', referenceBackend, 'TypeScript reference backend (always available)');
    }
  }
  return done('typescript', referenceBackend, 'TypeScript reference backend (always available)');
}
