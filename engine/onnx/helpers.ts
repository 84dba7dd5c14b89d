/**
 * Small non-differentiable helpers the op registry needs and the engine has no op for: broadcast
 * maps over int/bool data (shape arithmetic, comparisons, masks) and dtype moves. Integer math
 * runs on plain JS numbers and is stored back as int32 with a range check.
 */
import { Tensor } from '../tensor';
import { DType, FloatDType, allocate, allocateFrom, isFloat } from '../dtype';
import { broadcastShapes, broadcastStrides, sizeOf } from '../shape';
import { noGrad } from '../autograd';
import * as E from '../ops';
import { toInt32 } from './tensors';

/** Largest tensor the importer creates on its own (sample inputs, constants, expands): 2^28 elements. */
export const MAX_ELEMENTS = 2 ** 28;

/** Throws before allocating a tensor of absurd size (a corrupt or hostile shape). */
export function checkSize(n: number, what: string): void {
  if (!(n <= MAX_ELEMENTS)) throw new RangeError(`${what} would have ${n} elements (limit ${MAX_ELEMENTS})`);
}

/** Output element kind of a helper: a float (in the given dtype), int32 or bool. */
export type Kind = FloatDType | 'int32' | 'bool';

/** Elementwise fn over broadcast inputs (no gradient). Results are checked to fit int32. */
export function broadcastMap(inputs: readonly Tensor[], out: Kind, fn: (...v: number[]) => number, what = 'value'): Tensor {
  const shape = broadcastShapes(...inputs.map((t) => t.shape));
  const n = sizeOf(shape);
  checkSize(n, `${what} tensor ${JSON.stringify(shape)}`);
  const data = allocate(out, n);
  const store = (i: number, v: number) => (data[i] = out === 'int32' ? toInt32(v, what) : out === 'bool' ? (v ? 1 : 0) : v);
  // Inputs of the output's size need no index walk (masks of HardSwish/Clip run this per step on whole activations).
  if (inputs.length === 1 && inputs[0].size === n) {
    const a = inputs[0].data;
    for (let i = 0; i < n; i++) store(i, fn(a[i]));
    return new Tensor(data, shape);
  }
  if (inputs.length === 2 && inputs[0].size === n && inputs[1].size === n) {
    const a = inputs[0].data;
    const b = inputs[1].data;
    for (let i = 0; i < n; i++) store(i, fn(a[i], b[i]));
    return new Tensor(data, shape);
  }
  const strides = inputs.map((t) => broadcastStrides(t.shape, shape));
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  const offs = new Array<number>(inputs.length).fill(0);
  const args = new Array<number>(inputs.length);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < inputs.length; k++) args[k] = inputs[k].data[offs[k]];
    store(i, fn(...args));
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      for (let k = 0; k < inputs.length; k++) offs[k] += strides[k][d];
      if (idx[d] < shape[d]) break;
      for (let k = 0; k < inputs.length; k++) offs[k] -= strides[k][d] * shape[d];
      idx[d] = 0;
    }
  }
  return new Tensor(data, shape);
}

export function mapValues(x: Tensor, out: Kind, fn: (v: number) => number, what = 'value'): Tensor {
  return broadcastMap([x], out, fn, what);
}

/** A float64 copy of an int/bool tensor, so engine layout ops (float-only) can move its data exactly. */
export function asFloat64(t: Tensor): Tensor {
  return t.dtype === 'float64' ? t : new Tensor(allocateFrom('float64', t.data), t.shape);
}

/** Converts data to `dtype` (floats truncate toward zero into int32). No gradient. */
export function convert(t: Tensor, dtype: DType, what = 'value'): Tensor {
  if (t.dtype === dtype) return t;
  if (dtype === 'int32') {
    const out = allocate('int32', t.size);
    for (let i = 0; i < t.size; i++) out[i] = toInt32(Math.trunc(t.data[i]), what);
    return new Tensor(out, t.shape);
  }
  return new Tensor(allocateFrom(dtype, t.data), t.shape);
}

/**
 * Runs a float-only engine layout op (permute, slice, concat, gather, expand...) on tensors of any
 * dtype: int/bool data travels as float64 (exact for int32) and comes back in its own dtype.
 */
export function layout(inputs: readonly Tensor[], fn: (xs: Tensor[]) => Tensor): Tensor {
  if (inputs.every((t) => isFloat(t.dtype))) return fn([...inputs]);
  const dtype = inputs[0].dtype;
  const out = noGrad(() => fn(inputs.map(asFloat64)));
  return convert(out, dtype);
}

/** Tensors of one dtype (any: floats, ints, bool) stacked along a new `axis`. */
export function stackAlong(list: readonly Tensor[], axis: number): Tensor {
  return layout(list, (xs) => E.concat(xs.map((x) => E.unsqueeze(x, axis)), axis));
}

/** Consecutive pieces of `x` along `axis`, of the given sizes (Split, SplitToSequence); `squeeze` drops the axis. */
export function chunksAlong(x: Tensor, axis: number, sizes: readonly number[], squeeze = false): Tensor[] {
  let at = 0;
  return sizes.map((n) => {
    const start = at;
    at += n;
    return layout([x], ([t]) => {
      const part = E.slice(t, { starts: [start], ends: [start + n], axes: [axis] });
      return squeeze ? E.squeeze(part, axis) : part;
    });
  });
}

/** Plain numbers of a (small) tensor: shapes, axes, scalars. */
export function numbers(t: Tensor): number[] {
  return Array.from(t.data);
}
