import { Tensor } from '../tensor';
import { normalizeAxis } from '../shape';
import { gather } from './indexing';
import { mul } from './elementwise';
import { sum } from './reduce';
import { floatDtype } from './util';

/**
 * How each output position along one axis reads the input: `taps` input indices per output position
 * (row-major [outLen, taps], each in [0, inLen)) and, for more than one tap, their weights. Nearest
 * neighbour is one tap without weights; linear two, cubic four, antialiased filters more.
 */
export interface AxisTaps {
  outLen: number;
  taps: number;
  indices: Int32Array;
  weights: Float64Array | null;
}

/**
 * Separable resampling along one axis: out[.., o, ..] = sum_t weights[o, t] * x[.., indices[o, t], ..].
 * Shape: x.shape with `axis` replaced by taps.outLen. One gather of [outLen, taps] indices, a weighted
 * sum over the tap axis: composite, so it runs on every backend and autograd gives the VJP (the
 * gather's scatter-add spreads each output gradient back to its taps by their weights).
 */
export function resampleAxis(x: Tensor, axis: number, taps: AxisTaps): Tensor {
  floatDtype('resampleAxis', x);
  const ax = normalizeAxis(axis, x.rank);
  const { outLen, taps: n, indices, weights } = taps;
  if (indices.length !== outLen * n) throw new RangeError(`resampleAxis: ${indices.length} indices for ${outLen} outputs x ${n} taps`);
  if (n > 1 && (!weights || weights.length !== indices.length)) throw new RangeError('resampleAxis: more than one tap needs one weight per index');
  const idx = new Tensor(indices, n === 1 ? [outLen] : [outLen, n]);
  const picked = gather(x, idx, ax);
  if (n === 1 && !weights) return picked;
  const wShape = x.shape.map((_, i) => (i === ax ? outLen : 1));
  wShape.splice(ax + 1, 0, n);
  const w = new Tensor(x.dtype === 'float64' ? Float64Array.from(weights!) : Float32Array.from(weights!), wShape);
  return sum(mul(picked, w), ax + 1);
}
