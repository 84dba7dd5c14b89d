import { Tensor, tensorFrom } from '../tensor';
import { record } from '../autograd';
import { gatherK, scatterAddK, whereK } from '../backend/dispatch';
import { broadcastShapes, normalizeAxis, sizeOf } from '../shape';
import { floatDtype, indexData } from './util';
import { unbroadcast, Operand } from './elementwise';

/**
 * ONNX Gather (and so embedding lookup): out.shape = x.shape[:axis] + indices.shape + x.shape[axis+1:].
 * Negative indices wrap; out-of-range ones throw. The VJP scatter-adds, so repeated ids accumulate.
 */
export function gather(x: Tensor, indices: Tensor, axis = 0): Tensor {
  floatDtype('gather', x);
  const ax = normalizeAxis(axis, x.rank);
  const axisLen = x.shape[ax];
  const idx = indexData('gather', indices, axisLen);
  const outer = sizeOf(x.shape.slice(0, ax));
  const inner = sizeOf(x.shape.slice(ax + 1));
  const outShape = [...x.shape.slice(0, ax), ...indices.shape, ...x.shape.slice(ax + 1)];
  const out = gatherK(x, outer, axisLen, inner, idx, outShape);
  return record('gather', [x, indices], out, (g) => [scatterAddK(g, outer, axisLen, inner, idx, x), null]);
}

/** Embedding lookup: rows of `weight` [vocab, dim] picked by integer `ids`. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  return gather(weight, ids, 0);
}

/** cond ? a : b with broadcasting of all three; gradients flow to the selected side only. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  const like = a instanceof Tensor ? a : b instanceof Tensor ? b : null;
  const dt = like?.dtype === 'float64' ? 'float64' : 'float32';
  const ta = a instanceof Tensor ? a : tensorFrom([a], [], dt);
  const tb = b instanceof Tensor ? b : tensorFrom([b], [], dt);
  const dtype = floatDtype('where', ta, tb);
  const shape = broadcastShapes(cond.shape, ta.shape, tb.shape);
  const out = whereK(cond, ta, tb, shape);
  const zero = new Tensor(dtype === 'float64' ? new Float64Array(1) : new Float32Array(1), []);
  return record('where', [cond, ta, tb], out, (g) => {
    const ga = ta.requiresGrad ? unbroadcast(whereK(cond, g, zero, shape), ta.shape) : null;
    const gb = tb.requiresGrad ? unbroadcast(whereK(cond, zero, g, shape), tb.shape) : null;
    return [null, ga, gb];
  });
}

/** Lower-triangular causal mask [t, t]: true where column <= row. */
export function causalMask(t: number): Tensor {
  const m = new Uint8Array(t * t);
  for (let r = 0; r < t; r++) for (let c = 0; c <= r; c++) m[r * t + c] = 1;
  return new Tensor(m, [t, t]);
}
