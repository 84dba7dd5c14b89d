/** Indexing ops: Gather, GatherElements and GatherND. */
import { sizeOf } from '../../shape';
import * as E from '../../ops';
import { makeConstant } from '../context';
import { layout } from '../helpers';
import { OpHandler, axisOf, isF, need } from './common';

export const INDEXING_OPS: Readonly<Record<string, OpHandler>> = {
  Gather: {
    nonDiff: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      const idx = need(ctx, inputs, 1, 'indices');
      const axis = axisOf(ctx, ctx.attrs.int('axis', 0), x.rank);
      return layout([x], ([t]) => E.gather(t, idx, axis));
    },
  },
  GatherND: {
    nonDiff: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      const idx = need(ctx, inputs, 1, 'indices');
      if (isF(idx)) ctx.fail('INVALID_MODEL', `indices must be an integer tensor, got ${idx.dtype}`);
      const batchDims = ctx.opset >= 12 ? ctx.attrs.int('batch_dims', 0) : 0;
      return layout([x], ([t]) => E.gatherND(t, idx, batchDims));
    },
  },
  GatherElements: {
    nonDiff: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      const idx = need(ctx, inputs, 1, 'indices');
      const axis = axisOf(ctx, ctx.attrs.int('axis', 0), x.rank);
      if (idx.rank !== x.rank) ctx.fail('INVALID_MODEL', `indices rank ${idx.rank} differs from data rank ${x.rank}`);
      // Flat positions into x, then one engine gather on the flattened data.
      const xStrides = x.shape.map((_, i) => sizeOf(x.shape.slice(i + 1)));
      const flat = new Array<number>(idx.size);
      const coord = new Array<number>(idx.rank).fill(0);
      for (let i = 0; i < idx.size; i++) {
        let off = 0;
        for (let d = 0; d < idx.rank; d++) {
          let c = coord[d];
          if (d === axis) {
            c = idx.data[i];
            if (c < 0) c += x.shape[axis];
            if (c < 0 || c >= x.shape[axis]) ctx.fail('NODE_FAILED', `index ${idx.data[i]} is out of range for axis ${axis} of size ${x.shape[axis]}`);
          }
          off += c * xStrides[d];
        }
        flat[i] = off;
        for (let d = idx.rank - 1; d >= 0; d--) {
          if (++coord[d] < idx.shape[d]) break;
          coord[d] = 0;
        }
      }
      return layout([x], ([t]) => E.gather(E.reshape(t, [t.size]), makeConstant(flat, idx.shape, 'int32'), 0));
    },
  },
};
