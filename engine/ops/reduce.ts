import { Tensor } from '../tensor';
import { record } from '../autograd';
import { binaryK, reduceK } from '../backend/dispatch';
import { normalizeAxes } from '../shape';
import { floatDtype } from './util';
import { broadcastTo, reshape } from './layout';
import { div, mul, mulScalar } from './elementwise';

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
