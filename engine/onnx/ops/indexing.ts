/** Indexing ops: Gather, GatherElements, GatherND and TopK. */
import { formatShape, sizeOf } from '../../shape';
import * as E from '../../ops';
import { Tensor } from '../../tensor';
import { allocate } from '../../dtype';
import { layout } from '../helpers';
import { makeConstant } from '../context';
import { OpHandler, axisOf, isF, need, scalarOf } from './common';

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
  TopK: {
    nonDiff: [1],
    shapeFrom: [1],
    // Values are a gather of X at the selected flat positions (differentiable); indices are chosen on the
    // host: largest (or smallest) first, equal values by lower index, as the ONNX reference. No device
    // kernel sorts: on a device-only X this throws TensorOnDeviceError and a WebGPU run repeats on the host
    // backend (webview/runWithFallback.ts), saying why.
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'X');
      const a = ctx.attrs;
      const axis = axisOf(ctx, a.int('axis', -1), x.rank);
      const k = ctx.opset < 10 ? a.int('k') : scalarOf(ctx, need(ctx, inputs, 1, 'K'), 'K');
      const largest = a.flag('largest', true);
      const len = x.shape[axis];
      if (!Number.isInteger(k) || k < 0 || k > len) ctx.fail('INVALID_MODEL', `TopK k = ${k} is outside [0, ${len}] for axis ${axis} of ${formatShape(x.shape)}`);
      const inner = sizeOf(x.shape.slice(axis + 1));
      const outer = sizeOf(x.shape.slice(0, axis));
      const outShape = x.shape.map((d, i) => (i === axis ? k : d));
      const flat = new Array<number>(sizeOf(outShape));
      const picked = new Array<number>(flat.length);
      const order = Array.from({ length: len }, (_, i) => i);
      for (let o = 0; o < outer; o++) {
        for (let n = 0; n < inner; n++) {
          const at = (i: number) => x.data[(o * len + i) * inner + n];
          // NaN sorts as the largest value, as numpy.
          const key = (i: number) => (Number.isNaN(at(i)) ? Infinity : at(i));
          order.sort((p, q) => (key(p) === key(q) ? p - q : largest ? key(q) - key(p) : key(p) - key(q)) || p - q);
          for (let j = 0; j < k; j++) {
            const dst = (o * k + j) * inner + n;
            picked[dst] = order[j];
            flat[dst] = (o * len + order[j]) * inner + n;
          }
          order.sort((p, q) => p - q);
        }
      }
      const values = layout([x], ([t]) => E.gather(E.reshape(t, [t.size]), makeConstant(flat, outShape, 'int32'), 0));
      return [values, makeConstant(picked, outShape, 'int32')];
    },
  },
};
