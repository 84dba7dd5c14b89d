/**
 * Tensor-level kernels: the one place that knows about both host backends (typed arrays) and device
 * backends (WebGPU buffers). Ops call these instead of the backend, so the same op code runs on
 * either. A kernel runs on the device when the active backend is a device backend, no host scope is
 * open (constant folding) and every float operand is float32; float64 work always stays on the host.
 * Device results are device-only tensors: host code reading their `.data` gets TensorOnDeviceError.
 */
import { Tensor, DeviceStorage, TensorOnDeviceError, readTransient } from '../tensor';
import { FloatDType, TypedArray } from '../dtype';
import { Shape, broadcastShapes } from '../shape';
import { BinaryKernel, Conv2dGeometry, MatmulPlan, ReduceKernel, UnaryKernel } from './backend';
import { getBackend } from './registry';
import { DeviceKernels, isDeviceBackend } from './device';
import { dataAs, floatDtype, transientFloatData } from '../ops/util';
import { claimOutput } from '../recycling';

let hostDepth = 0;

/** Runs `fn` with host kernels even when a device backend is active (constant folding, shape math). */
export function onHost<T>(fn: () => T): T {
  hostDepth++;
  try {
    return fn();
  } finally {
    hostDepth--;
  }
}

/** True when kernels run on the host now (no device backend, or inside onHost): host-only fused paths may run. */
export function hostKernelsRun(): boolean {
  return !isDeviceBackend(getBackend()) || hostDepth > 0;
}

/**
 * A host kernel's output as a tensor: a recycling scope may reuse the array once the tensor is released. Kernels
 * read their operands through dataAs / transientFloatData (readTransient): a kernel copies what it reads and keeps
 * no reference, so the operands' arrays stay recyclable too (engine/recycling.ts). Closures that run later (VJPs)
 * read again through the tensor, which throws if a recycling scope released it meanwhile.
 */
function wrap(values: TypedArray, shape: Shape): Tensor {
  claimOutput(values);
  return new Tensor(values, shape);
}

/** Device buffers created since the innermost scope opened (released when it closes). */
const scopes: DeviceStorage[][] = [];

function track(s: DeviceStorage): DeviceStorage {
  scopes[scopes.length - 1]?.push(s);
  return s;
}

/**
 * Runs `fn` and then releases every device buffer created inside it: device memory is not garbage
 * collected promptly. Read what you need (readTensors) inside `fn`; afterwards device-only tensors
 * from the scope throw TensorOnDeviceError. A no-op on host backends.
 */
export async function deviceScope<T>(fn: () => Promise<T>): Promise<T> {
  const list: DeviceStorage[] = [];
  scopes.push(list);
  const b = getBackend();
  try {
    // Device errors (validation, out of memory, lost) fail the run instead of leaving wrong values.
    return isDeviceBackend(b) ? await b.device.guard(fn) : await fn();
  } finally {
    scopes.splice(scopes.lastIndexOf(list), 1);
    for (const b of list) b.release();
  }
}

/** Kernel calls while a device backend was active: on the device, on the host for folding, on the host otherwise (float64). */
const counts = { device: 0, folded: 0, host: 0 };

/** Counts of kernel calls by where they ran under a device backend since the last reset (tests check `host`). */
export function dispatchCounts(reset = false): { device: number; folded: number; host: number } {
  const c = { ...counts };
  if (reset) counts.device = counts.folded = counts.host = 0;
  return c;
}

/** Resolves when the active device backend has finished the work submitted so far (at once on host backends). */
export async function deviceIdle(): Promise<void> {
  const b = getBackend();
  if (isDeviceBackend(b)) await b.device.sync();
}

/** The device kernels to use for operands `ts`, or null for the host path. */
function deviceFor(ts: readonly Tensor[]): DeviceKernels | null {
  const b = getBackend();
  if (!isDeviceBackend(b)) return null;
  if (hostDepth > 0) {
    counts.folded++;
    return null;
  }
  if (ts.every((t) => t.dtype === 'float32')) {
    counts.device++;
    return b.device;
  }
  counts.host++;
  return null;
}

/** The device copy of `t`, uploading host values once (cached on the tensor). */
function dev(d: DeviceKernels, t: Tensor): DeviceStorage {
  const cached = t.deviceCopy(d);
  if (cached) return cached;
  if (!t.hasHostData) throw new TensorOnDeviceError(t, `upload to ${d.name}`);
  const s = track(d.upload(t.data as Float32Array));
  t.setDeviceCopy(d, s);
  return s;
}

function out(d: DeviceKernels, s: DeviceStorage, shape: Shape): Tensor {
  return Tensor.onDevice(track(s), d, shape, 'float32');
}

export function unaryK(op: UnaryKernel, x: Tensor, param = 0, name: string = op): Tensor {
  const dtype = floatDtype(name, x);
  const d = deviceFor([x]);
  if (d) return out(d, d.unary(op, dev(d, x), param), x.shape);
  return wrap(getBackend().unary(op, transientFloatData(x), param, dtype), x.shape);
}

/** Binary kernel with broadcasting; the result dtype is the operands' promoted float type. */
export function binaryK(op: BinaryKernel, a: Tensor, b: Tensor, param = 0, name: string = op): Tensor {
  const dtype = floatDtype(name, a, b);
  const shape = broadcastShapes(a.shape, b.shape);
  const d = deviceFor([a, b]);
  if (d) return out(d, d.binary(op, dev(d, a), a.shape, dev(d, b), b.shape, shape, param), shape);
  return wrap(getBackend().binary(op, dataAs(a, dtype), a.shape, dataAs(b, dtype), b.shape, shape, dtype, param), shape);
}

/** cond ? a : b broadcast to `shape`; `cond` is a host mask (bool or nonzero values). */
export function whereK(cond: Tensor, a: Tensor, b: Tensor, shape: Shape): Tensor {
  const dtype = floatDtype('where', a, b);
  const mask = boolData(cond);
  const d = deviceFor([a, b]);
  if (d) return out(d, d.where(mask, cond.shape, dev(d, a), a.shape, dev(d, b), b.shape, shape), shape);
  return wrap(getBackend().where(mask, cond.shape, dataAs(a, dtype), a.shape, dataAs(b, dtype), b.shape, shape, dtype), shape);
}

function boolData(cond: Tensor): Uint8Array {
  if (!cond.hasHostData) throw new TensorOnDeviceError(cond, 'where (condition computed on the device)');
  if (cond.dtype === 'bool') return cond.data as Uint8Array;
  const m = new Uint8Array(cond.size);
  const c = readTransient(cond);
  for (let i = 0; i < cond.size; i++) m[i] = c[i] ? 1 : 0;
  return m;
}

export function reduceK(op: ReduceKernel, x: Tensor, axes: readonly number[], outShape: Shape): Tensor {
  const dtype = floatDtype(op, x);
  const d = deviceFor([x]);
  if (d) return out(d, d.reduce(op, dev(d, x), x.shape, axes), outShape);
  return wrap(getBackend().reduce(op, transientFloatData(x), x.shape, axes, dtype), outShape);
}

export function matmulK(a: Tensor, b: Tensor, plan: MatmulPlan, outShape: Shape): Tensor {
  const dtype = floatDtype('matmul', a, b);
  const d = deviceFor([a, b]);
  if (d) return out(d, d.matmul(dev(d, a), dev(d, b), plan), outShape);
  return wrap(getBackend().matmul(dataAs(a, dtype), dataAs(b, dtype), plan, dtype), outShape);
}

export function stridedK(x: Tensor, outShape: Shape, strides: readonly number[], offset: number): Tensor {
  const dtype = floatDtype('view', x);
  const d = deviceFor([x]);
  if (d) return out(d, d.strided(dev(d, x), outShape, strides, offset), outShape);
  return wrap(getBackend().strided(transientFloatData(x), outShape, strides, offset, dtype), outShape);
}

/** VJP of stridedK: `g` (shape gShape) added at the strided positions of zeros shaped like `like`. */
export function stridedScatterAddK(g: Tensor, gShape: Shape, strides: readonly number[], offset: number, like: Tensor): Tensor {
  const dtype = floatDtype('slice', like);
  const d = like.dtype === 'float32' ? deviceFor([g]) : null;
  if (d) return out(d, d.stridedScatterAdd(dev(d, g), gShape, strides, offset, like.size), like.shape);
  return wrap(getBackend().stridedScatterAdd(dataAs(g, dtype), gShape, strides, offset, like.size, dtype), like.shape);
}

export function concatK(xs: readonly Tensor[], outer: number, sizes: readonly number[], outShape: Shape): Tensor {
  const dtype = floatDtype('concat', ...xs);
  const d = deviceFor(xs);
  if (d) return out(d, d.concat(xs.map((x) => dev(d, x)), outer, sizes), outShape);
  return wrap(getBackend().concat(xs.map((t) => dataAs(t, dtype)), outer, sizes, dtype), outShape);
}

export function softmaxK(x: Tensor, outer: number, n: number, inner: number, log: boolean): Tensor {
  const dtype = floatDtype(log ? 'log_softmax' : 'softmax', x);
  const d = deviceFor([x]);
  if (d) return out(d, d.softmax(dev(d, x), outer, n, inner, log), x.shape);
  return wrap(getBackend().softmax(transientFloatData(x), outer, n, inner, log, dtype), x.shape);
}

export function softmaxBackwardK(y: Tensor, g: Tensor, outer: number, n: number, inner: number, log: boolean): Tensor {
  const dtype = floatDtype(log ? 'log_softmax' : 'softmax', y);
  const d = deviceFor([y, g]);
  if (d) return out(d, d.softmaxBackward(dev(d, y), dev(d, g), outer, n, inner, log), y.shape);
  return wrap(getBackend().softmaxBackward(transientFloatData(y), dataAs(g, dtype), outer, n, inner, log, dtype), y.shape);
}

export interface NormGrads { gx: Tensor; gw: Tensor; gb: Tensor }

/**
 * Layer (RMS) norm forward; the returned `backward` keeps the per-row statistics where they were
 * computed (host Float64Arrays or device buffers).
 */
export function layerNormK(
  x: Tensor, weight: Tensor | null, bias: Tensor | null, rows: number, n: number, eps: number, rms: boolean, dtype: FloatDType,
): { y: Tensor; backward: (g: Tensor) => NormGrads } {
  const nShape = [n];
  const d = deviceFor([x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])]);
  if (d) {
    const xs = dev(d, x);
    const ws = weight ? dev(d, weight) : null;
    const r = d.layerNorm(xs, ws, bias ? dev(d, bias) : null, rows, n, eps, rms);
    track(r.mean);
    track(r.rstd);
    return {
      y: out(d, r.y, x.shape),
      backward: (g) => {
        const b = d.layerNormBackward(xs, ws, dev(d, g), r.mean, r.rstd, rows, n, rms);
        return { gx: out(d, b.gx, x.shape), gw: out(d, b.gw, nShape), gb: out(d, b.gb, nShape) };
      },
    };
  }
  const backend = getBackend();
  const { y, mean, rstd } = backend.layerNorm(dataAs(x, dtype), weight ? dataAs(weight, dtype) : null, bias ? dataAs(bias, dtype) : null, rows, n, eps, rms, dtype);
  return {
    y: wrap(y, x.shape),
    backward: (g) => {
      const b = backend.layerNormBackward(dataAs(x, dtype), weight ? dataAs(weight, dtype) : null, dataAs(g, dtype), mean, rstd, rows, n, rms, dtype);
      return { gx: wrap(b.gx, x.shape), gw: wrap(b.gw, nShape), gb: wrap(b.gb, nShape) };
    },
  };
}

/**
 * Training-mode batch norm of x [outer, c, inner] on a host backend: y, the per-channel batch statistics
 * (float64) and the VJP. Null when a device backend would run it: the caller composes device ops instead.
 */
export function batchNormK(
  x: Tensor, weight: Tensor | null, bias: Tensor | null, outer: number, c: number, inner: number, eps: number, dtype: FloatDType,
): { y: Tensor; mean: Float64Array; rstd: Float64Array; backward: (g: Tensor) => NormGrads } | null {
  if (!hostKernelsRun()) return null;
  const backend = getBackend();
  const { y, mean, rstd } = backend.batchNorm(dataAs(x, dtype), weight ? dataAs(weight, dtype) : null, bias ? dataAs(bias, dtype) : null, outer, c, inner, eps, dtype);
  return {
    y: wrap(y, x.shape),
    mean,
    rstd,
    backward: (g) => {
      const b = backend.batchNormBackward(dataAs(x, dtype), weight ? dataAs(weight, dtype) : null, dataAs(g, dtype), mean, rstd, outer, c, inner, dtype);
      return { gx: wrap(b.gx, x.shape), gw: wrap(b.gw, [c]), gb: wrap(b.gb, [c]) };
    },
  };
}

export function im2colK(x: Tensor, geo: Conv2dGeometry, outShape: Shape): Tensor {
  const dtype = floatDtype('conv2d', x);
  const d = deviceFor([x]);
  if (d) return out(d, d.im2col(dev(d, x), geo), outShape);
  return wrap(getBackend().im2col(transientFloatData(x), geo, dtype), outShape);
}

export function col2imK(cols: Tensor, geo: Conv2dGeometry, like: Tensor): Tensor {
  const dtype = floatDtype('conv2d', like);
  const d = like.dtype === 'float32' ? deviceFor([cols]) : null;
  if (d) return out(d, d.col2im(dev(d, cols), geo), like.shape);
  return wrap(getBackend().col2im(dataAs(cols, dtype), geo, dtype), like.shape);
}

/**
 * Depthwise convolution on a host backend (x [n, c, h, w], filters [c, 1, kh, kw]): the output and the two
 * gradients, as DepthwiseKernels. Null when a device backend would run the convolution: the caller composes
 * im2col and matmul, which the device implements.
 */
export function depthwiseConv2dK(x: Tensor, weight: Tensor, geo: Conv2dGeometry, outShape: Shape): DepthwiseKernels | null {
  if (!hostKernelsRun()) return null;
  const backend = getBackend();
  const dtype = floatDtype('conv2d', x, weight);
  const host = backend; // a device backend under onHost() proxies its host kernels
  return {
    y: wrap(host.depthwiseConv2d('forward', transientFloatData(x), transientFloatData(weight), geo, dtype), outShape),
    inputGrad: (g) => wrap(host.depthwiseConv2d('inputGrad', dataAs(g, dtype), transientFloatData(weight), geo, dtype), x.shape),
    weightGrad: (g) => wrap(host.depthwiseConv2d('weightGrad', transientFloatData(x), dataAs(g, dtype), geo, dtype), weight.shape),
  };
}

/**
 * Dense (grouped) convolution on a host backend with the im2col columns kept inside the kernel (Backend.conv2d):
 * the output and the two gradients, as DepthwiseKernels. Null when a device backend would run the convolution.
 */
export function conv2dK(x: Tensor, weight: Tensor, geo: Conv2dGeometry, groups: number, outShape: Shape): DepthwiseKernels | null {
  if (!hostKernelsRun()) return null;
  const host = getBackend();
  const dtype = floatDtype('conv2d', x, weight);
  const o = weight.shape[0];
  return {
    y: wrap(host.conv2d('forward', transientFloatData(x), transientFloatData(weight), geo, groups, o, dtype), outShape),
    inputGrad: (g) => wrap(host.conv2d('inputGrad', dataAs(g, dtype), transientFloatData(weight), geo, groups, o, dtype), x.shape),
    weightGrad: (g) => wrap(host.conv2d('weightGrad', dataAs(g, dtype), transientFloatData(x), geo, groups, o, dtype), weight.shape),
  };
}

/**
 * Hard sigmoid / hard swish on a host backend (Backend.hardSigmoid): the output and its VJP. Null when a device
 * backend would run it (the caller composes kernels the device has).
 */
export function hardSigmoidK(x: Tensor, alpha: number, beta: number, swish: boolean): { y: Tensor; backward: (g: Tensor) => Tensor } | null {
  if (!hostKernelsRun()) return null;
  const host = getBackend();
  const dtype = floatDtype(swish ? 'hard_swish' : 'hard_sigmoid', x);
  return {
    y: wrap(host.hardSigmoid(transientFloatData(x), null, alpha, beta, swish, dtype), x.shape),
    backward: (g) => wrap(host.hardSigmoid(transientFloatData(x), dataAs(g, dtype), alpha, beta, swish, dtype), x.shape),
  };
}

/** VJP of x sigmoid(x) on a host backend (Backend.swishBackward); null when a device backend would run it. */
export function swishBackwardK(x: Tensor, g: Tensor): Tensor | null {
  if (!hostKernelsRun()) return null;
  const dtype = floatDtype('silu', x, g);
  return wrap(getBackend().swishBackward(dataAs(x, dtype), dataAs(g, dtype), dtype), x.shape);
}

export interface DepthwiseKernels {
  y: Tensor;
  inputGrad(g: Tensor): Tensor;
  weightGrad(g: Tensor): Tensor;
}

/** Gather along the middle axis of [outer, axisLen, inner] with host indices (range-checked by the caller). */
export function gatherK(x: Tensor, outer: number, axisLen: number, inner: number, idx: Int32Array, outShape: Shape): Tensor {
  const dtype = floatDtype('gather', x);
  const d = deviceFor([x]);
  if (d) return out(d, d.gather(dev(d, x), outer, axisLen, inner, idx), outShape);
  return wrap(getBackend().gather(transientFloatData(x), outer, axisLen, inner, idx, dtype), outShape);
}

export function scatterAddK(g: Tensor, outer: number, axisLen: number, inner: number, idx: Int32Array, like: Tensor): Tensor {
  const dtype = floatDtype('gather', like);
  const d = like.dtype === 'float32' ? deviceFor([g]) : null;
  if (d) return out(d, d.scatterAdd(dev(d, g), outer, axisLen, inner, idx), like.shape);
  return wrap(getBackend().scatterAdd(dataAs(g, dtype), outer, axisLen, inner, idx, dtype), like.shape);
}

/** Max pooling; `backward` sends each window's gradient to its max (argmax stays where it was computed). */
export function maxPool2dK(x: Tensor, geo: Conv2dGeometry, outShape: Shape): { y: Tensor; backward: (g: Tensor) => Tensor } {
  const dtype = floatDtype('max_pool2d', x);
  const d = deviceFor([x]);
  if (d) {
    const r = d.maxPool2d(dev(d, x), geo);
    track(r.argmax);
    return { y: out(d, r.y, outShape), backward: (g) => out(d, d.maxPool2dBackward(dev(d, g), r.argmax, geo), x.shape) };
  }
  const backend = getBackend();
  const { y, argmax } = backend.maxPool2d(transientFloatData(x), geo, dtype);
  return { y: wrap(y, outShape), backward: (g) => wrap(backend.scatterAdd(dataAs(g, dtype), 1, x.size, 1, argmax, dtype), x.shape) };
}

export function avgPool2dK(x: Tensor, geo: Conv2dGeometry, countIncludePad: boolean, outShape: Shape): Tensor {
  const dtype = floatDtype('avg_pool2d', x);
  const d = deviceFor([x]);
  if (d) return out(d, d.avgPool2d(dev(d, x), geo, countIncludePad), outShape);
  return wrap(getBackend().avgPool2d(transientFloatData(x), geo, countIncludePad, dtype), outShape);
}

export function avgPool2dBackwardK(g: Tensor, geo: Conv2dGeometry, countIncludePad: boolean, like: Tensor): Tensor {
  const dtype = floatDtype('avg_pool2d', like);
  const d = like.dtype === 'float32' ? deviceFor([g]) : null;
  if (d) return out(d, d.avgPool2dBackward(dev(d, g), geo, countIncludePad), like.shape);
  return wrap(getBackend().avgPool2dBackward(dataAs(g, dtype), geo, countIncludePad, dtype), like.shape);
}
