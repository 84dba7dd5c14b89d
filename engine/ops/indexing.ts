import { Tensor, tensorFrom } from '../tensor';
import { record } from '../autograd';
import { gatherK, scatterAddK, whereK } from '../backend/dispatch';
import { broadcastShapes, normalizeAxis, sizeOf } from '../shape';
import { floatDtype, indexData } from './util';
import { unbroadcast, Operand } from './elementwise';
import { reshape } from './layout';

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

/**
 * ONNX GatherND: each row of the last axis of `indices` ([..., k]) addresses a slice of `x` through
 * its dims batchDims .. batchDims + k - 1; the first `batchDims` dims of x and indices are shared.
 * out.shape = indices.shape[:-1] + x.shape[batchDims + k:]. Negative indices wrap.
 * Written as one gather of the flat (batch, tuple) positions over x viewed as [rows, inner], so the
 * VJP is gather's scatter-add (repeated tuples accumulate) and every backend runs it.
 */
export function gatherND(x: Tensor, indices: Tensor, batchDims = 0): Tensor {
  floatDtype('gatherND', x);
  const b = batchDims;
  const q = indices.rank;
  if (q < 1) throw new RangeError('gatherND: indices must have rank >= 1');
  const k = indices.shape[q - 1];
  if (!(b >= 0 && b < Math.min(x.rank, q))) throw new RangeError(`gatherND: batch_dims ${b} must be less than both ranks (data ${x.rank}, indices ${q})`);
  if (k < 1 || b + k > x.rank) throw new RangeError(`gatherND: index tuples of length ${k} do not fit data of rank ${x.rank} with batch_dims ${b}`);
  for (let d = 0; d < b; d++) {
    if (indices.shape[d] !== x.shape[d]) throw new RangeError(`gatherND: batch dim ${d} is ${x.shape[d]} in data but ${indices.shape[d]} in indices`);
  }
  const addressed = x.shape.slice(b, b + k);
  const perBatch = sizeOf(addressed);
  const inner = sizeOf(x.shape.slice(b + k));
  const tuples = indices.size / k;
  const perBatchTuples = tuples / Math.max(1, sizeOf(indices.shape.slice(0, b)));
  const rows = new Int32Array(tuples);
  for (let t = 0; t < tuples; t++) {
    let row = 0;
    for (let j = 0; j < k; j++) {
      const size = addressed[j];
      const v = indices.data[t * k + j];
      if (!Number.isInteger(v) || v < -size || v >= size) throw new RangeError(`gatherND: index ${v} is out of range for dim ${b + j} of size ${size}`);
      row = row * size + (v < 0 ? v + size : v);
    }
    rows[t] = Math.floor(t / perBatchTuples) * perBatch + row;
  }
  const flat = reshape(x, [sizeOf(x.shape.slice(0, b + k)), inner]);
  const picked = gather(flat, new Tensor(rows, [tuples]), 0);
  return reshape(picked, [...indices.shape.slice(0, q - 1), ...x.shape.slice(b + k)]);
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
