import { Tensor } from '../tensor';
import { record } from '../autograd';
import { getBackend } from '../backend/registry';
import { normalizeAxis, sizeOf } from '../shape';
import { dataAs, floatDtype, fromData } from './util';

function softmaxOp(name: string, x: Tensor, axis: number, log: boolean): Tensor {
  const dtype = floatDtype(name, x);
  const ax = normalizeAxis(axis, x.rank);
  const outer = sizeOf(x.shape.slice(0, ax));
  const n = x.shape[ax];
  const inner = sizeOf(x.shape.slice(ax + 1));
  const backend = getBackend();
  const out = fromData(backend.softmax(x.floatData, outer, n, inner, log, dtype), x.shape);
  return record(name, [x], out, (g) => [
    fromData(backend.softmaxBackward(out.floatData, dataAs(g, dtype), outer, n, inner, log, dtype), x.shape),
  ]);
}

/** Softmax along `axis` (max-subtracted; rows of all -inf give NaN, as in PyTorch). */
export function softmax(x: Tensor, axis = -1): Tensor {
  return softmaxOp('softmax', x, axis, false);
}

/** log(softmax(x)) computed stably in one pass. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return softmaxOp('log_softmax', x, axis, true);
}
