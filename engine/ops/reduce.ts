import { Tensor } from '../tensor';
import { record } from '../autograd';
import { binaryK, reduceK } from '../backend/dispatch';
import { normalizeAxes, normalizeAxis, sizeOf } from '../shape';
import { FloatArray, FloatDType, allocateFloat } from '../dtype';
import { floatDtype, fromData } from './util';
import { broadcastTo, concat, reshape, slice } from './layout';
import { add, div, mul, mulScalar } from './elementwise';

export type Axes = number | readonly number[] | null | undefined;

function plan(x: Tensor, axes: Axes, keepdims: boolean) {
  const ax = normalizeAxes(typeof axes === 'number' ? [axes] : axes, x.rank);
  const keepShape = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const outShape = keepdims ? keepShape : x.shape.filter((_, i) => !ax.includes(i));
  const count = ax.reduce((n, a) => n * x.shape[a], 1);
  return { ax, keepShape, outShape, count };
}

/** Sum over `axes` (all when null). Shape: reduced axes removed, or kept as 1 with keepdims. */
export function sum(x: Tensor, axes: Axes = null, keepdims = false): Tensor {
  floatDtype('sum', x);
  const { ax, keepShape, outShape } = plan(x, axes, keepdims);
  const out = reduceK('sum', x, ax, outShape);
  return record('sum', [x], out, (g) => [broadcastTo(reshape(g, keepShape), x.shape)]);
}

/** Mean over `axes`: the sum scaled by 1/count (its VJP follows from the two). */
export function mean(x: Tensor, axes: Axes = null, keepdims = false): Tensor {
  const { count } = plan(x, axes, keepdims);
  return mulScalar(sum(x, axes, keepdims), 1 / count);
}

/**
 * Max over `axes` (PyTorch's amax). The gradient is split evenly between tied maxima, as PyTorch does.
 */
export function max(x: Tensor, axes: Axes = null, keepdims = false): Tensor {
  floatDtype('max', x);
  const { ax, keepShape, outShape } = plan(x, axes, keepdims);
  const out = reduceK('max', x, ax, outShape);
  return record('max', [x], out, (g) => {
    const m = broadcastTo(reshape(out, keepShape), x.shape);
    const mask = binaryK('eq', x, m, 0, 'max');
    const count = sum(mask, ax, true);
    return [mul(mask, broadcastTo(div(reshape(g, keepShape), count), x.shape))];
  });
}

export interface ScanOptions {
  /** Element i combines elements before i only (the first is the identity). */
  exclusive?: boolean;
  /** Accumulate from the end of the axis. */
  reverse?: boolean;
}

/**
 * Inclusive prefix combination along `axis` by Hillis-Steele doubling: log2(n) steps of
 * y = combine(y, y shifted by 2^k, the gap filled with the identity). Composite (slice, concat and the
 * combine op), so it runs on every backend and autograd derives the VJP, zeros included for products.
 */
function prefixScan(x: Tensor, axis: number, identity: number, combine: (a: Tensor, b: Tensor) => Tensor, options: ScanOptions): Tensor {
  floatDtype('cumulative op', x);
  const ax = normalizeAxis(axis, x.rank);
  const n = x.shape[ax];
  if (n === 0) return x;
  const flip = (t: Tensor) => slice(t, { starts: [-1], ends: [-n - 1], axes: [ax], steps: [-1] });
  /** t shifted by `by` along the axis, the first `by` positions filled with the identity. */
  const shift = (t: Tensor, by: number) => {
    const fillShape = [...t.shape];
    fillShape[ax] = by;
    const fill = fromData(filled(t.dtype as FloatDType, sizeOf(fillShape), identity), fillShape);
    return by >= n ? fromData(filled(t.dtype as FloatDType, t.size, identity), t.shape) : concat([fill, slice(t, { starts: [0], ends: [n - by], axes: [ax] })], ax);
  };
  let y = options.reverse ? flip(x) : x;
  if (options.exclusive) y = shift(y, 1);
  for (let d = 1; d < n; d *= 2) y = combine(y, shift(y, d));
  return options.reverse ? flip(y) : y;
}

function filled(dtype: FloatDType, size: number, value: number): FloatArray {
  const data = allocateFloat(dtype, size);
  if (value !== 0) data.fill(value);
  return data;
}

/** Cumulative sum along `axis` (torch.cumsum, ONNX CumSum with exclusive / reverse). */
export function cumsum(x: Tensor, axis: number, options: ScanOptions = {}): Tensor {
  return prefixScan(x, axis, 0, add, options);
}

/** Cumulative product along `axis` (torch.cumprod, ONNX CumProd); its gradient is exact at zeros too. */
export function cumprod(x: Tensor, axis: number, options: ScanOptions = {}): Tensor {
  return prefixScan(x, axis, 1, mul, options);
}
