/** Reductions: Reduce*, ArgMax and ArgMin, and the cumulative CumSum and CumProd. */
import { Tensor } from '../../tensor';
import { sizeOf } from '../../shape';
import { noGrad } from '../../autograd';
import * as E from '../../ops';
import { OpContext } from '../context';
import { Kind, convert, layout, mapValues } from '../helpers';
import { toInt32 } from '../tensors';
import { OpHandler, axesArg, axisOf, distinctAxes, isF, need, scalarOf } from './common';
import { allocate } from '../../dtype';


function reduceHandler(since: number, fn: (x: Tensor, axes: number[] | null, keep: boolean) => Tensor, intOk = true): OpHandler {
  return {
    nonDiff: [1],
    shapeFrom: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      let axes = axesArg(ctx, inputs, since);
      const keep = ctx.attrs.flag('keepdims', true);
      if (axes !== null && axes.length === 0) axes = null;
      if (axes === null && ctx.attrs.flag('noop_with_empty_axes', false)) return x;
      if (axes !== null) axes = distinctAxes(ctx, axes, x.rank);
      if (isF(x)) return fn(x, axes, keep);
      if (!intOk) ctx.fail('UNSUPPORTED_FEATURE', `${ctx.node.opType} of a ${x.dtype} tensor is not supported`);
      return layout([x], ([t]) => fn(t, axes, keep));
    },
  };
}

function logSumExp(x: Tensor, axes: number[] | null, keep: boolean): Tensor {
  const m = noGrad(() => E.max(x, axes, true)).detach();
  const finite = mapValues(m, m.dtype as Kind, (v) => (Number.isFinite(v) ? v : 0));
  const lse = E.add(E.log(E.sum(E.exp(E.sub(x, finite)), axes, true)), finite);
  return keep ? lse : E.reshape(lse, lse.shape.filter((_, i) => !(axes ?? x.shape.map((__, j) => j)).includes(i)));
}

function reduceProd(x: Tensor, axes: number[] | null, keep: boolean): Tensor {
  if (x.requiresGrad) throw new RangeError('ReduceProd has no gradient in the engine, and its input depends on trainable parameters');
  // exp(sum(log|x|)) with the sign and zeros tracked separately, on plain numbers.
  const ax = axes ?? x.shape.map((_, i) => i);
  const keepShape = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const out = (allocate('float64', sizeOf(keepShape)) as Float64Array).fill(1);
  const strides = keepShape.map((_, i) => sizeOf(keepShape.slice(i + 1)));
  const idx = new Array<number>(x.rank).fill(0);
  for (let i = 0; i < x.size; i++) {
    let o = 0;
    for (let d = 0; d < x.rank; d++) if (!ax.includes(d)) o += idx[d] * strides[d];
    out[o] *= x.data[i];
    for (let d = x.rank - 1; d >= 0; d--) {
      if (++idx[d] < x.shape[d]) break;
      idx[d] = 0;
    }
  }
  const shape = keep ? keepShape : x.shape.filter((_, i) => !ax.includes(i));
  return convert(new Tensor(out, shape), x.dtype);
}

function argReduce(ctx: OpContext, inputs: readonly (Tensor | null)[], better: (a: number, b: number) => boolean): Tensor {
  const x = need(ctx, inputs, 0, 'data');
  const axis = axisOf(ctx, ctx.attrs.int('axis', 0), x.rank);
  const keep = ctx.attrs.flag('keepdims', true);
  const last = ctx.attrs.flag('select_last_index', false);
  const outer = sizeOf(x.shape.slice(0, axis));
  const len = x.shape[axis];
  const inner = sizeOf(x.shape.slice(axis + 1));
  const out = allocate('int32', outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let best = 0;
      for (let k = 1; k < len; k++) {
        const v = x.data[(o * len + k) * inner + i];
        const bv = x.data[(o * len + best) * inner + i];
        if (better(v, bv) || (last && v === bv)) best = k;
      }
      out[o * inner + i] = best;
    }
  }
  const shape = keep ? x.shape.map((d, i) => (i === axis ? 1 : d)) : x.shape.filter((_, i) => i !== axis);
  return new Tensor(out, shape);
}

/** Integer cumulative sums / products on the host (position ids from attention masks), checked to fit int32. */
function intScan(x: Tensor, axis: number, options: E.ScanOptions, identity: number, combine: (a: number, b: number) => number, what: string): Tensor {
  const outer = sizeOf(x.shape.slice(0, axis));
  const len = x.shape[axis];
  const inner = sizeOf(x.shape.slice(axis + 1));
  const out = new Int32Array(x.size);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let acc = identity;
      for (let s = 0; s < len; s++) {
        const k = options.reverse ? len - 1 - s : s;
        const at = (o * len + k) * inner + i;
        if (!options.exclusive) acc = combine(acc, x.data[at]);
        out[at] = toInt32(acc, what);
        if (options.exclusive) acc = combine(acc, x.data[at]);
      }
    }
  }
  return new Tensor(out, x.shape);
}

function cumulative(identity: number, combine: (a: number, b: number) => number, floatOp: (x: Tensor, axis: number, o: E.ScanOptions) => Tensor): OpHandler {
  return {
    nonDiff: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'x');
      const axis = axisOf(ctx, scalarOf(ctx, need(ctx, inputs, 1, 'axis'), 'axis'), Math.max(x.rank, 1));
      const options = { exclusive: ctx.attrs.flag('exclusive', false), reverse: ctx.attrs.flag('reverse', false) };
      if (x.rank === 0) return x;
      if (isF(x)) return floatOp(x, axis, options);
      if (x.dtype === 'bool') ctx.fail('UNSUPPORTED_DTYPE', `${ctx.node.opType} of a bool tensor is not supported`);
      return intScan(x, axis, options, identity, combine, `${ctx.node.opType} result`);
    },
  };
}

export const REDUCE_OPS: Readonly<Record<string, OpHandler>> = {
  ReduceSum: reduceHandler(13, (x, axes, keep) => E.sum(x, axes, keep)),
  ReduceMean: reduceHandler(18, (x, axes, keep) => E.mean(x, axes, keep)),
  ReduceMax: reduceHandler(18, (x, axes, keep) => E.max(x, axes, keep)),
  ReduceMin: reduceHandler(18, (x, axes, keep) => E.neg(E.max(E.neg(x), axes, keep))),
  ReduceSumSquare: reduceHandler(18, (x, axes, keep) => E.sum(E.square(x), axes, keep)),
  ReduceL1: reduceHandler(18, (x, axes, keep) => E.sum(E.abs(x), axes, keep)),
  ReduceL2: reduceHandler(18, (x, axes, keep) => E.sqrt(E.sum(E.square(x), axes, keep))),
  ReduceLogSum: reduceHandler(18, (x, axes, keep) => E.log(E.sum(x, axes, keep))),
  ReduceLogSumExp: reduceHandler(18, logSumExp),
  ReduceProd: reduceHandler(18, reduceProd),
  ArgMax: { nonDiff: 'all', run: (ctx, inputs) => argReduce(ctx, inputs, (a, b) => a > b) },
  ArgMin: { nonDiff: 'all', run: (ctx, inputs) => argReduce(ctx, inputs, (a, b) => a < b) },
  CumSum: cumulative(0, (a, b) => a + b, E.cumsum),
  CumProd: cumulative(1, (a, b) => a * b, E.cumprod),
};
