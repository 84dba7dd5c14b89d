import { Tensor } from '../tensor';
import { record } from '../autograd';
import { softmaxBackwardK, softmaxK } from '../backend/dispatch';
import { normalizeAxis, sizeOf } from '../shape';
import { floatDtype } from './util';

function softmaxOp(name: string, x: Tensor, axis: number, log: boolean): Tensor {
  floatDtype(name, x);
  const ax = normalizeAxis(axis, x.rank);
  const outer = sizeOf(x.shape.slice(0, ax));
  const n = x.shape[ax];
  const inner = sizeOf(x.shape.slice(ax + 1));
  const out = softmaxK(x, outer, n, inner, log);
  return record(name, [x], out, (g) => [softmaxBackwardK(out, g, outer, n, inner, log)]);
}

/** Softmax along `axis` (max-subtracted; rows of all -inf give NaN, as in PyTorch). */
export function softmax(x: Tensor, axis = -1): Tensor {
  return softmaxOp('softmax', x, axis, false);
}

/** log(softmax(x)) computed stably in one pass. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return softmaxOp('log_softmax', x, axis, true);
}
