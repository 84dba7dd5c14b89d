import { Tensor } from '../tensor';
import { record } from '../autograd';
import { concatK, hostKernelsRun, onHost, stridedK, stridedScatterAddK } from '../backend/dispatch';
import { isFloat } from '../dtype';
import { Shape, broadcastShapes, broadcastStrides, formatShape, normalizeAxis, shapeEquals, sizeOf, stridesOf } from '../shape';
import { floatDtype } from './util';
import { unbroadcast } from './elementwise';

/**
 * Reshape with PyTorch rules: one dimension may be -1 (inferred). Shares data, no copy.
 * Works for int/bool tensors too (shape subgraphs, masks); only float tensors carry gradients.
 */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const target = resolveReshape(x.shape, shape);
  if (shapeEquals(target, x.shape)) return x;
  const out = x.view(target);
  return record('reshape', [x], out, (g) => [reshape(g, x.shape)]);
}

export function resolveReshape(from: Shape, shape: Shape): number[] {
  const total = sizeOf(from);
  const inferred = shape.indexOf(-1);
  if (shape.filter((d) => d === -1).length > 1) throw new RangeError(`reshape: only one dimension can be -1, got ${formatShape(shape)}`);
  const known = shape.reduce((n, d) => (d === -1 ? n : n * d), 1);
  const out = [...shape];
  if (inferred >= 0) {
    if (known === 0 || total % known !== 0) throw new RangeError(`reshape: cannot reshape ${formatShape(from)} into ${formatShape(shape)}`);
    out[inferred] = total / known;
  }
  if (sizeOf(out) !== total || out.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new RangeError(`reshape: cannot reshape ${formatShape(from)} (${total} elements) into ${formatShape(shape)}`);
  }
  return out;
}

/** Flattens dims start..end (inclusive, torch.flatten). */
export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.rank === 0) return reshape(x, [1]);
  const s = normalizeAxis(startDim, x.rank);
  const e = normalizeAxis(endDim, x.rank);
  return reshape(x, [...x.shape.slice(0, s), sizeOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

/** Copy of a strided view of `x`: the shared forward of permute, slice and expand. */
function stridedCopy(x: Tensor, outShape: Shape, strides: readonly number[], offset: number): Tensor {
  return stridedK(x, outShape, strides, offset);
}

export function permute(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.rank) throw new RangeError(`permute: ${formatShape(perm)} is not a permutation of ${x.rank} dims`);
  const p = perm.map((a) => normalizeAxis(a, x.rank));
  if (new Set(p).size !== p.length) throw new RangeError(`permute: ${formatShape(perm)} repeats a dimension`);
  if (p.every((a, i) => a === i)) return x;
  const own = stridesOf(x.shape);
  const out = x.rank === 2 ? transpose2d(x) : stridedCopy(x, p.map((a) => x.shape[a]), p.map((a) => own[a]), 0);
  const inverse = new Array<number>(p.length);
  p.forEach((a, i) => (inverse[a] = i));
  return record('permute', [x], out, (g) => [permute(g, inverse)]);
}

/**
 * The transpose of 2-D `x` as data: on host backends a lazy tensor tagged `transposeOf` (matmul reads the source
 * transposed and the values are only computed if something else reads them), the transpose of a tagged tensor
 * is its source's values (no copy), and on device backends the strided copy.
 */
function transpose2d(x: Tensor): Tensor {
  const shape = [x.shape[1], x.shape[0]];
  if (!hostKernelsRun() || !x.hasHostData || !isFloat(x.dtype)) return stridedCopy(x, shape, [1, x.shape[1]], 0);
  if (x.transposeOf) return x.transposeOf.view(shape);
  const source = x.view(x.shape); // a snapshot: the host array x holds now
  return Tensor.transposed(source, () => onHost(() => stridedCopy(source, shape, [1, source.shape[1]], 0)).data);
}

export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  const perm = x.shape.map((_, i) => i);
  const a = normalizeAxis(dim0, x.rank);
  const b = normalizeAxis(dim1, x.rank);
  [perm[a], perm[b]] = [perm[b], perm[a]];
  return permute(x, perm);
}

/** Removes the given size-1 dims (all size-1 dims when omitted). Non-1 dims named in `dims` are left, as torch does. */
export function squeeze(x: Tensor, dims?: number | readonly number[] | null): Tensor {
  const list = dims == null ? null : (typeof dims === 'number' ? [dims] : dims).map((d) => normalizeAxis(d, x.rank));
  return reshape(x, x.shape.filter((d, i) => d !== 1 || (list !== null && !list.includes(i))));
}

/** Inserts a size-1 dim at `dim` (negative counts from the end of the result, as torch). */
export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normalizeAxis(dim, x.rank + 1);
  return reshape(x, [...x.shape.slice(0, d), 1, ...x.shape.slice(d)]);
}

/** Broadcasts `x` to `shape` (torch.expand / ONNX Expand after shape broadcasting). VJP sums back. */
export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  const target = broadcastShapes(x.shape, shape);
  if (!shapeEquals(target, shape)) throw new RangeError(`expand: cannot expand ${formatShape(x.shape)} to ${formatShape(shape)}`);
  if (shapeEquals(x.shape, shape)) return x;
  const out = stridedCopy(x, shape, broadcastStrides(x.shape, shape), 0);
  return record('expand', [x], out, (g) => [unbroadcast(g, x.shape)]);
}

export const expand = broadcastTo;

export interface SliceSpec {
  starts: readonly number[];
  ends: readonly number[];
  axes?: readonly number[];
  steps?: readonly number[];
}

/** Resolved start, length and step of one axis under ONNX Slice clamping rules. */
function sliceAxis(dim: number, start: number, end: number, step: number): { start: number; length: number } {
  if (step === 0) throw new RangeError('slice: step cannot be 0');
  const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
  let s = start < 0 ? start + dim : start;
  let e = end < 0 ? end + dim : end;
  if (step > 0) {
    s = clamp(s, 0, dim);
    e = clamp(e, 0, dim);
    return { start: s, length: Math.max(0, Math.ceil((e - s) / step)) };
  }
  s = clamp(s, -1, dim - 1);
  e = clamp(e, -1, dim - 1);
  return { start: s, length: Math.max(0, Math.ceil((s - e) / -step)) };
}

/** ONNX Slice: per-axis starts/ends (clamped, negative wraps) and steps (may be negative). */
export function slice(x: Tensor, spec: SliceSpec): Tensor {
  const axes = (spec.axes ?? spec.starts.map((_, i) => i)).map((a) => normalizeAxis(a, x.rank));
  if (spec.starts.length !== axes.length || spec.ends.length !== axes.length) {
    throw new RangeError('slice: starts, ends and axes must have the same length');
  }
  const own = stridesOf(x.shape);
  const outShape = [...x.shape];
  const strides = [...own];
  let offset = 0;
  axes.forEach((a, i) => {
    const step = spec.steps?.[i] ?? 1;
    const { start, length } = sliceAxis(x.shape[a], spec.starts[i], spec.ends[i], step);
    outShape[a] = length;
    strides[a] = own[a] * step;
    if (length > 0) offset += start * own[a];
  });
  const out = stridedCopy(x, outShape, strides, offset);
  return record('slice', [x], out, (g) => [stridedScatterAddK(g, outShape, strides, offset, x)]);
}

/** Concatenation along `axis`; the VJP slices the gradient back into pieces. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new RangeError('concat: needs at least one tensor');
  const rank = xs[0].rank;
  const ax = normalizeAxis(axis, rank);
  for (const t of xs) {
    if (t.rank !== rank || t.shape.some((d, i) => i !== ax && d !== xs[0].shape[i])) {
      throw new RangeError(`concat: shapes ${xs.map((t) => formatShape(t.shape)).join(', ')} differ outside axis ${axis}`);
    }
  }
  floatDtype('concat', ...xs);
  const outer = sizeOf(xs[0].shape.slice(0, ax));
  const inner = sizeOf(xs[0].shape.slice(ax + 1));
  const sizes = xs.map((t) => t.shape[ax] * inner);
  const outShape = [...xs[0].shape];
  outShape[ax] = xs.reduce((n, t) => n + t.shape[ax], 0);
  const out = concatK(xs, outer, sizes, outShape);
  return record('concat', xs, out, (g) => {
    let at = 0;
    return xs.map((t) => {
      const start = at;
      at += t.shape[ax];
      return t.requiresGrad ? slice(g, { starts: [start], ends: [at], axes: [ax] }) : null;
    });
  });
}

/** Splits along `axis` into pieces of the given sizes (or `n` equal pieces). Each piece is a slice. */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  const ax = normalizeAxis(axis, x.rank);
  const dim = x.shape[ax];
  let list: number[];
  if (typeof sizes === 'number') {
    if (sizes <= 0 || dim % sizes !== 0) throw new RangeError(`split: ${dim} does not divide into ${sizes} equal parts`);
    list = new Array<number>(sizes).fill(dim / sizes);
  } else {
    list = [...sizes];
  }
  if (list.reduce((a, b) => a + b, 0) !== dim) throw new RangeError(`split: sizes ${formatShape(list)} do not add up to ${dim}`);
  let at = 0;
  return list.map((n) => {
    const start = at;
    at += n;
    return slice(x, { starts: [start], ends: [at], axes: [ax] });
  });
}
