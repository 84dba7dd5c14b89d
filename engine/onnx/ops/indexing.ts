/** Indexing ops: Gather and GatherElements. */
import { sizeOf } from '../../shape';
import * as E from '../../ops';
import { Tensor } from '../../tensor';
import { allocate } from '../../dtype';
import { layout } from '../helpers';
import { OpHandler, axisOf, need } from './common';

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
  GatherElements: {
    nonDiff: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      const idx = need(ctx, inputs, 1, 'indices');
      const axis = axisOf(ctx, ctx.attrs.int('axis', 0), x.rank);
      if (idx.rank !== x.rank) ctx.fail('INVALID_MODEL', `indices rank ${idx.rank} differs from data rank ${x.rank}`);
      // Flat positions into x, then one engine gather on the flattened data.
      const xStrides = x.shape.map((_, i) => sizeOf(x.shape.slice(i + 1)));
      const flat = allocate('int32', idx.size);
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
      const positions = new Tensor(flat, idx.shape);
      return layout([x], ([t]) => E.gather(E.reshape(t, [t.size]), positions, 0));
    },
  },
};
