import { Tensor } from '../tensor';
import { formatShape, normalizeAxis, sizeOf } from '../shape';
import { gather } from './indexing';
import { add, addScalar, mul, mulScalar, neg, sub } from './elementwise';
import { permute, reshape, slice } from './layout';
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

export type GridSampleMode = 'linear' | 'nearest' | 'cubic';
export type GridSamplePadding = 'zeros' | 'border' | 'reflection';

export interface GridSampleOptions {
  mode?: GridSampleMode;
  padding?: GridSamplePadding;
  alignCorners?: boolean;
}

/** Reflects v into [lo, hi] by the near border until inside (the ONNX reference's _gs_reflect); returns dv'/dv too. */
function reflect(v: number, lo: number, hi: number): [number, number] {
  const range = hi - lo;
  if (v < lo) {
    const d = lo - v;
    const n = Math.trunc(d / range);
    const r = d - n * range;
    return n % 2 === 0 ? [lo + r, -1] : [hi - r, 1];
  }
  if (v > hi) {
    const d = v - hi;
    const n = Math.trunc(d / range);
    const r = d - n * range;
    return n % 2 === 0 ? [hi - r, -1] : [lo + r, 1];
  }
  return [v, 1];
}

/** Keys' cubic convolution weights (a = -0.75) of the four taps at offsets -1, 0, 1, 2 from floor(v), t = v - floor(v). */
function cubicWeights(t: Tensor): Tensor[] {
  const A = -0.75;
  const far = (u: Tensor) => addScalar(mul(addScalar(mul(addScalar(mulScalar(u, A), -5 * A), u), 8 * A), u), -4 * A);
  const near = (u: Tensor) => addScalar(mul(mul(addScalar(mulScalar(u, A + 2), -(A + 3)), u), u), 1);
  const oneMinus = addScalar(neg(t), 1);
  return [far(addScalar(t, 1)), near(t), near(oneMinus), far(addScalar(oneMinus, 1))];
}

/**
 * Samples x [N, C, D1..Dn] at the normalised coordinates of grid [N, O1..Ok, n] (last axis: the innermost
 * spatial axis first, as torch.nn.functional.grid_sample and ONNX GridSample; -1 and 1 are the edges or the
 * edge pixels' centres with alignCorners) -> [N, C, O1..Ok]. Follows the ONNX reference exactly: nearest
 * rounds half to even, out-of-range coordinates are clamped (border) or reflected (reflection) before the
 * taps are taken, and taps outside the input read 0 (zeros), the edge (border) or their reflection.
 * PyTorch agrees (test/fixtures/ops.json grid_sample_*) except cubic with border padding at a coordinate
 * outside the input: PyTorch clamps each tap instead of the coordinate; the ONNX semantics are kept.
 *
 * Composite: tap indices and the clamp/reflection slopes are computed from the coordinate values on the
 * host (a device-computed grid throws TensorOnDeviceError: the run repeats on the host); each tap is a
 * gather of x and its weight a polynomial of the coordinate built from engine ops, so autograd gives the
 * VJP for both x and the grid (zero grid gradient for nearest and where a coordinate was clamped, as PyTorch).
 */
export function gridSample(x: Tensor, grid: Tensor, options: GridSampleOptions = {}): Tensor {
  const dtype = floatDtype('gridSample', x, grid);
  const mode = options.mode ?? 'linear';
  const padding = options.padding ?? 'zeros';
  const align = options.alignCorners ?? false;
  const n = x.rank - 2;
  if (n < 1 || grid.rank !== n + 2 || grid.shape[n + 1] !== n || grid.shape[0] !== x.shape[0]) {
    throw new RangeError(`gridSample: grid ${formatShape(grid.shape)} does not fit input ${formatShape(x.shape)} (want [N, out..., ${n}] for ${n} spatial axes)`);
  }
  const [batch, channels] = x.shape;
  const dims = x.shape.slice(2);
  const outSpatial = grid.shape.slice(1, -1);
  const points = sizeOf(outSpatial);
  const count = batch * points;
  const spatial = sizeOf(dims);
  // Coordinates in pixels, per spatial axis (grid's last axis runs innermost axis first), each [N * points].
  const flatGrid = reshape(grid, [count, n]);
  const gv = grid.data;
  // Coordinates outside [lo, hi(i)] are clamped or reflected (the ONNX reference's borders).
  const lo = align ? 0 : -0.5;
  const hi = (i: number) => (align ? dims[i] - 1 : dims[i] - 0.5);
  const coords: { v: Tensor; values: Float64Array }[] = [];
  for (let i = 0; i < n; i++) {
    const len = dims[i];
    const [low, high] = [lo, hi(i)];
    const g = reshape(slice(flatGrid, { starts: [n - 1 - i], ends: [n - i], axes: [1] }), [count]);
    const scale = align ? (len - 1) / 2 : len / 2;
    const v = addScalar(mulScalar(g, scale), align ? (len - 1) / 2 : (len - 1) / 2);
    const values = new Float64Array(count);
    const slope = new Float64Array(count);
    const offset = new Float64Array(count);
    for (let p = 0; p < count; p++) {
      let u = gv[p * n + (n - 1 - i)] * scale + (len - 1) / 2;
      let s = 1;
      if (mode === 'nearest') {
        const r = Math.round(u);
        u = Math.abs(u % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
        s = 0;
      }
      if (u < low || u > high) {
        if (padding === 'border') [u, s] = [Math.min(Math.max(u, 0), len - 1), 0];
        else if (padding === 'reflection') {
          const [w, ds] = reflect(u, low, high);
          [u, s] = [w, s * ds];
        }
      }
      values[p] = u;
      slope[p] = s;
      offset[p] = u - s * (gv[p * n + (n - 1 - i)] * scale + (len - 1) / 2);
    }
    const c = (a: Float64Array) => new Tensor(dtype === 'float64' ? a : Float32Array.from(a), [count]);
    coords.push({ v: add(mul(v, c(slope)), c(offset)), values });
  }
  // Per axis: the taps (offsets from floor) and their weights as tensors [N * points].
  const taps = mode === 'nearest' ? [0] : mode === 'linear' ? [0, 1] : [-1, 0, 1, 2];
  const axes = coords.map(({ v, values }) => {
    const base = new Float64Array(count);
    for (let p = 0; p < count; p++) base[p] = mode === 'nearest' ? Math.trunc(values[p]) : Math.floor(values[p]);
    if (mode === 'nearest') return { base, weights: null };
    const t = sub(v, new Tensor(dtype === 'float64' ? base : Float32Array.from(base), [count]));
    return { base, weights: mode === 'linear' ? [addScalar(neg(t), 1), t] : cubicWeights(t) };
  });
  // x as rows [N * spatial, C]: each tap combination gathers N * points rows.
  const rows = reshape(permute(reshape(x, [batch, channels, spatial]), [0, 2, 1]), [batch * spatial, channels]);
  let out: Tensor | null = null;
  const combos = taps.length ** n;
  for (let k = 0; k < combos; k++) {
    const which = Array.from({ length: n }, (_, i) => Math.trunc(k / taps.length ** i) % taps.length);
    const index = new Int32Array(count);
    const valid = new Float64Array(count).fill(1);
    for (let p = 0; p < count; p++) {
      let flat = 0;
      for (let i = 0; i < n; i++) {
        const len = dims[i];
        let at = axes[i].base[p] + taps[which[i]];
        if (padding === 'zeros') {
          if (at < 0 || at >= len) {
            valid[p] = 0;
            at = 0;
          }
        } else if (padding === 'border') at = Math.min(Math.max(at, 0), len - 1);
        else at = Math.trunc(reflect(at, lo, hi(i))[0]);
        flat = flat * len + at;
      }
      index[p] = Math.trunc(p / points) * spatial + flat;
    }
    let term = gather(rows, new Tensor(index, [count]), 0);
    let w: Tensor | null = padding === 'zeros' ? new Tensor(dtype === 'float64' ? valid : Float32Array.from(valid), [count]) : null;
    for (let i = 0; i < n; i++) {
      const wi = axes[i].weights?.[which[i]];
      if (wi) w = w ? mul(w, wi) : wi;
    }
    if (w) term = mul(term, reshape(w, [count, 1]));
    out = out ? add(out, term) : term;
  }
  // [N * points, C] -> [N, C, out...]
  return reshape(permute(reshape(out!, [batch, points, channels]), [0, 2, 1]), [batch, channels, ...outSpatial]);
}
