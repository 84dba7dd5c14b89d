/** Softmax, LogSoftmax and Hardmax, with the 2-D coercion of opsets < 13. */
import { Tensor } from '../../tensor';
import { sizeOf } from '../../shape';
import * as E from '../../ops';
import { OpContext } from '../context';
import { OpHandler, axisOf, floatIn, need } from './common';
import { computedConstant } from '../context';


/** Softmax-like op along `axis`, with the 2-D coercion of opsets < 13. */
function softmaxLike(ctx: OpContext, x: Tensor, fn: (x: Tensor, axis: number) => Tensor): Tensor {
  if (ctx.opset >= 13) return fn(x, axisOf(ctx, ctx.attrs.int('axis', -1), x.rank));
  const axis = axisOf(ctx, ctx.attrs.int('axis', 1), x.rank);
  const rows = sizeOf(x.shape.slice(0, axis));
  const y = fn(E.reshape(x, [rows, x.size / Math.max(rows, 1)]), 1);
  return E.reshape(y, x.shape);
}

function hardmax(x: Tensor, axis: number): Tensor {
  const outer = sizeOf(x.shape.slice(0, axis));
  const len = x.shape[axis];
  const inner = sizeOf(x.shape.slice(axis + 1));
  return computedConstant(x.shape, x.dtype, (out) => {
    if (len === 0) return;
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let best = 0;
        for (let k = 1; k < len; k++) if (x.data[(o * len + k) * inner + i] > x.data[(o * len + best) * inner + i]) best = k;
        out[(o * len + best) * inner + i] = 1;
      }
    }
  });
}

export const SOFTMAX_OPS: Readonly<Record<string, OpHandler>> = {
  Softmax: { run: (ctx, inputs) => softmaxLike(ctx, floatIn(ctx, need(ctx, inputs, 0, 'input'), 'Softmax input'), E.softmax) },
  LogSoftmax: { run: (ctx, inputs) => softmaxLike(ctx, floatIn(ctx, need(ctx, inputs, 0, 'input'), 'LogSoftmax input'), E.logSoftmax) },
  Hardmax: { nonDiff: 'all', run: (ctx, inputs) => softmaxLike(ctx, need(ctx, inputs, 0, 'input'), hardmax) },
};
