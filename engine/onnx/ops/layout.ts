/** Shape and layout ops: reshapes, transposes, concat/split/slice, expand/tile/pad, triangle masks, Shape and Size. */
import { Tensor } from '../../tensor';
import { broadcastShapes, formatShape, sizeOf } from '../../shape';
import * as E from '../../ops';
import { OpContext, computedConstant, filledConstant, makeConstant } from '../context';
import { broadcastMap, checkSize, chunksAlong, convert, layout } from '../helpers';
import { AnyOpHandler, axesArg, axisOf, distinctAxes, isF, kindOf, need, scalarOf, shapeValues } from './common';

function reshapeTo(ctx: OpContext, x: Tensor, shape: number[], allowZero: boolean): Tensor {
  const target = shape.map((d, i) => (d === 0 && !allowZero ? (i < x.rank ? x.shape[i] : ctx.fail('INVALID_MODEL', `Reshape: shape ${formatShape(shape)} copies dim ${i} (0), which input ${formatShape(x.shape)} lacks`)) : d));
  return E.reshape(x, target);
}

function unsqueezeAxes(ctx: OpContext, x: Tensor, axes: number[]): Tensor {
  const outRank = x.rank + axes.length;
  const norm = distinctAxes(ctx, axes, outRank, 'Unsqueeze axes').sort((p, q) => p - q);
  const shape = [...x.shape];
  for (const a of norm) shape.splice(a, 0, 1);
  return E.reshape(x, shape);
}

function squeezeAxes(ctx: OpContext, x: Tensor, axes: number[] | null): Tensor {
  if (axes === null) return E.reshape(x, x.shape.filter((d) => d !== 1));
  const norm = distinctAxes(ctx, axes, x.rank, 'Squeeze axes');
  for (const a of norm) if (x.shape[a] !== 1) ctx.fail('INVALID_MODEL', `Squeeze: dim ${a} of ${formatShape(x.shape)} is ${x.shape[a]}, not 1`);
  return E.reshape(x, x.shape.filter((_, i) => !norm.includes(i)));
}

/** Checks a padded size before anything of it is built (edge/reflect pads build an index per output element). */
function checkPadded(ctx: OpContext, x: Tensor, axis: number, before: number, after: number): void {
  if (!Number.isInteger(before) || !Number.isInteger(after)) ctx.fail('INVALID_MODEL', `pads must be integers, got ${before} and ${after}`);
  const shape = [...x.shape];
  shape[axis] = x.shape[axis] + before + after;
  if (shape[axis] < 0) ctx.fail('INVALID_MODEL', `pads ${before}, ${after} crop more than dim ${axis} of ${formatShape(x.shape)} holds`);
  checkSize(sizeOf(shape), `Pad output ${formatShape(shape)}`);
}

/**
 * Pads axis `axis` by `before`/`after` (negative = crop): constant (value), edge or reflect.
 * Built from engine slice/concat/gather, so it is differentiable in x.
 */
export function padAxis(ctx: OpContext, x: Tensor, axis: number, before: number, after: number, mode: string, value: number): Tensor {
  checkPadded(ctx, x, axis, before, after);
  if (before < 0 || after < 0) {
    const dim = x.shape[axis];
    x = layout([x], ([t]) => E.slice(t, { starts: [Math.max(0, -before)], ends: [dim - Math.max(0, -after)], axes: [axis] }));
    before = Math.max(0, before);
    after = Math.max(0, after);
  }
  if (before === 0 && after === 0) return x;
  const dim = x.shape[axis];
  if (mode === 'constant') {
    const piece = (n: number) => {
      const shape = [...x.shape];
      shape[axis] = n;
      return filledConstant(shape, value, x.dtype);
    };
    const parts = [...(before ? [piece(before)] : []), x, ...(after ? [piece(after)] : [])];
    return layout(parts, (ps) => E.concat(ps, axis));
  }
  if (dim === 0) ctx.fail('INVALID_MODEL', `Pad (${mode}) of an empty axis`);
  if (mode !== 'edge' && mode !== 'reflect' && mode !== 'wrap') ctx.fail('UNSUPPORTED_FEATURE', `Pad mode '${mode}' is not supported (constant, edge, reflect, wrap)`);
  const length = before + dim + after;
  const idx = computedConstant([length], 'int32', (out) => {
    for (let k = 0; k < length; k++) {
      const i = k - before;
      if (mode === 'edge') out[k] = Math.min(Math.max(i, 0), dim - 1);
      else if (mode === 'wrap') out[k] = ((i % dim) + dim) % dim;
      else if (dim === 1) out[k] = 0;
      else {
        const period = 2 * (dim - 1);
        let j = ((i % period) + period) % period;
        if (j >= dim) j = period - j;
        out[k] = j;
      }
    }
  });
  return layout([x], ([t]) => E.gather(t, idx, axis));
}

/** Pads the trailing spatial dims: pads = [b0, b1, ..., e0, e1, ...] for dims starting at `first`. */
export function padSpatial(ctx: OpContext, x: Tensor, first: number, begins: number[], ends: number[], value: number): Tensor {
  let y = x;
  begins.forEach((b, i) => {
    y = padAxis(ctx, y, first + i, b, ends[i], 'constant', value);
  });
  return y;
}

/** DepthToSpace / SpaceToDepth on [N, C, H, W]: one reshape, permute, reshape (pixel shuffle and its inverse). */
function blockMove(ctx: OpContext, x: Tensor, toSpace: boolean): Tensor {
  const b = ctx.attrs.int('blocksize');
  if (x.rank !== 4) ctx.fail('INVALID_MODEL', `${ctx.node.opType} input must be [N, C, H, W], got ${formatShape(x.shape)}`);
  if (!(b >= 1)) ctx.fail('INVALID_MODEL', `blocksize must be >= 1, got ${b}`);
  const [n, c, h, w] = x.shape;
  if (toSpace) {
    if (c % (b * b) !== 0) ctx.fail('INVALID_MODEL', `DepthToSpace: ${c} channels do not divide by blocksize^2 = ${b * b}`);
    const crd = ctx.attrs.string('mode', 'DCR') === 'CRD';
    const split = crd ? [n, c / (b * b), b, b, h, w] : [n, b, b, c / (b * b), h, w];
    const perm = crd ? [0, 1, 4, 2, 5, 3] : [0, 3, 4, 1, 5, 2];
    return layout([x], ([t]) => E.reshape(E.permute(E.reshape(t, split), perm), [n, c / (b * b), h * b, w * b]));
  }
  if (h % b !== 0 || w % b !== 0) ctx.fail('INVALID_MODEL', `SpaceToDepth: ${h}x${w} does not divide by blocksize ${b}`);
  return layout([x], ([t]) => E.reshape(E.permute(E.reshape(t, [n, c, h / b, b, w / b, b]), [0, 3, 5, 1, 2, 4]), [n, c * b * b, h / b, w / b]));
}

export const LAYOUT_OPS: Readonly<Record<string, AnyOpHandler>> = {
  DepthToSpace: { run: (ctx, inputs) => blockMove(ctx, need(ctx, inputs, 0, 'input'), true) },
  SpaceToDepth: { run: (ctx, inputs) => blockMove(ctx, need(ctx, inputs, 0, 'input'), false) },
  // Any value passes through: tensors (with their autograd), sequences, optionals, string tensors.
  Identity: { runValues: (ctx, inputs) => inputs[0] ?? ctx.fail('INVALID_MODEL', 'required input 0 (input) is missing') },
  Reshape: {
    nonDiff: [1],
    shapeFrom: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      const shape = ctx.opset >= 5 ? shapeValues(ctx, need(ctx, inputs, 1, 'shape'), 'shape') : ctx.attrs.ints('shape');
      return reshapeTo(ctx, x, shape, ctx.attrs.flag('allowzero', false));
    },
  },
  Flatten: {
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'input');
      const axis = ctx.attrs.int('axis', 1);
      const ax = axis < 0 ? axis + x.rank : axis;
      if (ax < 0 || ax > x.rank) ctx.fail('INVALID_MODEL', `Flatten axis ${axis} is out of range for rank ${x.rank}`);
      return E.reshape(x, [sizeOf(x.shape.slice(0, ax)), sizeOf(x.shape.slice(ax))]);
    },
  },
  Squeeze: {
    nonDiff: [1],
    shapeFrom: [1],
    run: (ctx, inputs) => squeezeAxes(ctx, need(ctx, inputs, 0, 'data'), axesArg(ctx, inputs, 13)),
  },
  Unsqueeze: {
    nonDiff: [1],
    shapeFrom: [1],
    run(ctx, inputs) {
      const axes = axesArg(ctx, inputs, 13);
      if (!axes) return ctx.fail('INVALID_MODEL', 'Unsqueeze needs axes');
      return unsqueezeAxes(ctx, need(ctx, inputs, 0, 'data'), axes);
    },
  },
  Transpose: {
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      const perm = ctx.attrs.ints('perm', x.shape.map((_, i) => x.rank - 1 - i));
      if (perm.length !== x.rank) ctx.fail('INVALID_MODEL', `perm ${formatShape(perm)} must have one entry per dim of ${formatShape(x.shape)}`);
      const p = distinctAxes(ctx, perm, x.rank, 'perm');
      return layout([x], ([t]) => E.permute(t, p));
    },
  },
  Concat: {
    run(ctx, inputs) {
      const xs = inputs.filter((t): t is Tensor => t !== null);
      if (xs.length === 0) ctx.fail('INVALID_MODEL', 'Concat needs inputs');
      const rank = xs[0].rank;
      const axis = axisOf(ctx, ctx.attrs.int('axis'), rank);
      const mixed = xs.some(isF) && !xs.every(isF);
      const parts = mixed ? xs.map((t) => (isF(t) ? t : convert(t, ctx.dtype))) : xs;
      return layout(parts, (ps) => E.concat(ps, axis));
    },
  },
  Split: {
    nonDiff: [1],
    shapeFrom: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'input');
      const axis = axisOf(ctx, ctx.attrs.int('axis', 0), x.rank);
      const dim = x.shape[axis];
      const count = ctx.node.outputs.length;
      let sizes: number[];
      const given = ctx.opset >= 13 ? (inputs[1] ? shapeValues(ctx, inputs[1], 'split') : null) : ctx.attrs.has('split') ? ctx.attrs.ints('split') : null;
      if (given && given.length > 0) {
        sizes = given;
        if (sizes.some((n) => !Number.isInteger(n) || n < 0)) ctx.fail('INVALID_MODEL', `split sizes ${formatShape(sizes)} must be non-negative integers`);
        if (sizes.length !== count) ctx.fail('INVALID_MODEL', `split sizes ${formatShape(sizes)} give ${sizes.length} parts but the node has ${count} outputs`);
      } else {
        const parts = ctx.opset >= 18 && ctx.attrs.has('num_outputs') ? ctx.attrs.int('num_outputs') : count;
        if (!(Number.isInteger(parts) && parts >= 1)) ctx.fail('INVALID_MODEL', `num_outputs must be a positive integer, got ${parts}`);
        if (parts !== count) ctx.fail('INVALID_MODEL', `num_outputs is ${parts} but the node has ${count} outputs`);
        const chunk = Math.ceil(dim / parts);
        sizes = Array.from({ length: parts }, (_, i) => Math.max(0, Math.min(chunk, dim - i * chunk)));
      }
      if (sizes.reduce((p, q) => p + q, 0) !== dim) ctx.fail('INVALID_MODEL', `split sizes ${formatShape(sizes)} do not add up to dim ${axis} (${dim}) of ${formatShape(x.shape)}`);
      return chunksAlong(x, axis, sizes);
    },
  },
  Slice: {
    nonDiff: [1, 2, 3, 4],
    shapeFrom: [1, 2, 3, 4],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      let starts: number[];
      let ends: number[];
      let axes: number[] | undefined;
      let steps: number[] | undefined;
      if (ctx.opset < 10) {
        starts = ctx.attrs.ints('starts');
        ends = ctx.attrs.ints('ends');
        axes = ctx.attrs.has('axes') ? ctx.attrs.ints('axes') : undefined;
      } else {
        starts = shapeValues(ctx, need(ctx, inputs, 1, 'starts'), 'starts');
        ends = shapeValues(ctx, need(ctx, inputs, 2, 'ends'), 'ends');
        axes = inputs[3] ? shapeValues(ctx, inputs[3], 'axes') : undefined;
        steps = inputs[4] ? shapeValues(ctx, inputs[4], 'steps') : undefined;
      }
      if (axes) distinctAxes(ctx, axes, x.rank, 'Slice axes');
      return layout([x], ([t]) => E.slice(t, { starts, ends, axes, steps }));
    },
  },
  Expand: {
    nonDiff: [1],
    shapeFrom: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'input');
      const shape = shapeValues(ctx, need(ctx, inputs, 1, 'shape'), 'shape');
      if (shape.some((d) => d < 0)) ctx.fail('INVALID_MODEL', `Expand shape ${formatShape(shape)} has a negative dim`);
      const target = broadcastShapes(x.shape, shape);
      checkSize(sizeOf(target), `Expand output ${formatShape(target)}`);
      return layout([x], ([t]) => E.broadcastTo(t, target));
    },
  },
  Tile: {
    nonDiff: [1],
    shapeFrom: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'input');
      const reps = shapeValues(ctx, need(ctx, inputs, 1, 'repeats'), 'repeats');
      if (reps.length !== x.rank) ctx.fail('INVALID_MODEL', `repeats ${formatShape(reps)} must have one entry per dim of ${formatShape(x.shape)}`);
      if (reps.some((r) => r < 0)) ctx.fail('INVALID_MODEL', `repeats ${formatShape(reps)} must be non-negative`);
      checkSize(x.size * sizeOf(reps), `Tile output of ${formatShape(x.shape)} repeated ${formatShape(reps)}`);
      // [a, b] -> [1, a, 1, b] -> expand [ra, a, rb, b] -> [ra*a, rb*b]
      return layout([x], ([t]) => {
        const inter = E.reshape(t, t.shape.flatMap((d) => [1, d]));
        const expanded = E.broadcastTo(inter, t.shape.flatMap((d, i) => [reps[i], d]));
        return E.reshape(expanded, t.shape.map((d, i) => d * reps[i]));
      });
    },
  },
  Pad: {
    nonDiff: [1, 2, 3],
    shapeFrom: [1, 3],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      const mode = ctx.attrs.string('mode', 'constant');
      let pads: number[];
      let value = 0;
      let axes = x.shape.map((_, i) => i);
      if (ctx.opset < 11) {
        pads = ctx.attrs.ints(ctx.opset < 2 ? 'paddings' : 'pads');
        value = ctx.attrs.float('value', 0);
      } else {
        pads = shapeValues(ctx, need(ctx, inputs, 1, 'pads'), 'pads');
        if (inputs[2] && inputs[2].size > 0) value = scalarOf(ctx, inputs[2], 'constant_value');
        if (inputs[3]) axes = distinctAxes(ctx, shapeValues(ctx, inputs[3], 'axes'), x.rank, 'Pad axes');
      }
      if (pads.length !== 2 * axes.length) ctx.fail('INVALID_MODEL', `pads ${formatShape(pads)} must have 2 entries per padded axis (${axes.length})`);
      let y = x;
      axes.forEach((a, i) => {
        y = padAxis(ctx, y, a, pads[i], pads[i + axes.length], mode, value);
      });
      return y;
    },
  },
  Trilu: {
    nonDiff: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'input');
      const k = inputs[1] ? scalarOf(ctx, inputs[1], 'k') : 0;
      const upper = ctx.attrs.flag('upper', true);
      if (x.rank < 2) ctx.fail('INVALID_MODEL', `Trilu input must be at least 2-D, got ${formatShape(x.shape)}`);
      const [n, m] = x.shape.slice(-2);
      const mask = computedConstant([n, m], 'bool', (keep) => {
        for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) keep[i * m + j] = upper ? (j - i >= k ? 1 : 0) : j - i <= k ? 1 : 0;
      });
      if (isF(x)) return E.where(mask, x, 0);
      return broadcastMap([mask, x], kindOf(x), (c, v) => (c ? v : 0));
    },
  },
  Shape: {
    nonDiff: 'all',
    shapeOnly: true,
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      const r = x.rank;
      const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
      const start = clamp(ctx.attrs.int('start', 0));
      const end = ctx.attrs.has('end') ? clamp(ctx.attrs.int('end')) : r;
      const dims = x.shape.slice(start, Math.max(start, end));
      return makeConstant(dims, [dims.length], 'int32');
    },
  },
  Size: { nonDiff: 'all', shapeOnly: true, run: (ctx, inputs) => makeConstant([need(ctx, inputs, 0, 'data').size], [], 'int32') },
};
