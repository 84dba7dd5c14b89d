/**
 * Resize (and the older Upsample): nearest, linear and cubic interpolation with every ONNX coordinate
 * transformation, nearest rounding mode, antialiasing, exclude_outside, axes, keep_aspect_ratio_policy
 * and tf_crop_and_resize. Interpolation is separable, so each resized axis becomes one engine
 * resampleAxis (a gather of tap indices and a weighted sum): differentiable in X on every backend.
 * The taps follow the ONNX reference implementation (onnx/reference/ops/op_resize.py) step by step.
 */
import { Tensor } from '../../tensor';
import { formatShape } from '../../shape';
import * as E from '../../ops';
import type { AxisTaps } from '../../ops';
import { OpContext, makeConstant } from '../context';
import { layout } from '../helpers';
import { OpHandler, axisOf, floatIn, isF, need, shapeValues } from './common';

type Coeffs = (ratio: number, scale: number) => number[];

function nearestCoeffs(mode: string): Coeffs {
  return (ratio, scale) => {
    if (ratio === 1) return [0, 1];
    switch (mode) {
      case 'round_prefer_floor': return ratio <= 0.5 ? [1, 0] : [0, 1];
      case 'round_prefer_ceil': return ratio < 0.5 ? [1, 0] : [0, 1];
      case 'floor': return [1, 0];
      case 'ceil': return [0, 1];
      // Resize-10 and Upsample (onnxruntime's rule): ceil when downsampling, floor otherwise.
      default: return scale < 1 ? [0, 1] : [1, 0];
    }
  };
}

function cubicCoeffs(a: number, antialias: boolean): Coeffs {
  const w = (x: number): number => {
    x = Math.abs(x);
    if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0;
  };
  if (!antialias) return (r) => [w(r + 1), w(r), w(1 - r), w(2 - r)];
  return (r, scale) => {
    const s = Math.min(scale, 1);
    const start = Math.floor(-2 / s) + 1;
    const c: number[] = [];
    for (let i = start; i < 2 - start; i++) c.push(w(s * (i - r)));
    const total = c.reduce((p, q) => p + q, 0);
    return c.map((v) => v / total);
  };
}

function linearCoeffs(antialias: boolean): Coeffs {
  if (!antialias) return (r) => [1 - r, r];
  return (r, scale) => {
    const s = Math.min(scale, 1);
    const start = Math.floor(-1 / s) + 1;
    const c: number[] = [];
    for (let i = start; i < 2 - start; i++) c.push(Math.min(Math.max(1 - Math.abs((i - r) * s), 0), 1));
    const total = c.reduce((p, q) => p + q, 0);
    return c.map((v) => v / total);
  };
}

interface AxisPlan {
  inLen: number;
  outLen: number;
  scale: number;
  roi: [number, number] | null;
}

/** Source coordinate of output position y, or null when tf_crop_and_resize extrapolates there. */
function sourceCoord(ctx: OpContext, mode: string, y: number, p: AxisPlan): number | null {
  const { inLen, outLen, scale } = p;
  const outWidth = scale * inLen;
  switch (mode) {
    case 'align_corners': return outWidth === 1 ? 0 : (y * (inLen - 1)) / (outWidth - 1);
    case 'asymmetric': return y / scale;
    case 'pytorch_half_pixel': return outWidth === 1 ? -0.5 : (y + 0.5) / scale - 0.5;
    case 'half_pixel': return (y + 0.5) / scale - 0.5;
    case 'half_pixel_symmetric': {
      const offset = (inLen / 2) * (1 - outLen / outWidth);
      return offset + (y + 0.5) / scale - 0.5;
    }
    case 'tf_crop_and_resize': {
      const [r0, r1] = p.roi ?? [0, 1];
      const x = (outWidth === 1 ? ((r1 - r0) * (inLen - 1)) / 2 : (y * (r1 - r0) * (inLen - 1)) / (outWidth - 1)) + r0 * (inLen - 1);
      return x < 0 || x > inLen - 1 ? null : x;
    }
    default: return ctx.fail('INVALID_MODEL', `unknown coordinate_transformation_mode '${mode}'`);
  }
}

/** The taps of one axis (and which outputs extrapolate), as the reference's _interpolate_1d_along_axis. */
function axisTaps(ctx: OpContext, p: AxisPlan, coordMode: string, coeffs: Coeffs, excludeOutside: boolean, oneHot: boolean): { taps: AxisTaps; outside: boolean[] | null } {
  const { inLen, outLen } = p;
  const rows: number[][] = [];
  const idxRows: number[][] = [];
  let outside: boolean[] | null = null;
  for (let y = 0; y < outLen; y++) {
    let x = sourceCoord(ctx, coordMode, y, p);
    if (x === null) {
      outside ??= new Array<boolean>(outLen).fill(false);
      outside[y] = true;
      x = 0; // any in-range taps; the output is replaced by extrapolation_value
    }
    const xi = Math.floor(x);
    const ratio = x === xi ? 1 : x - xi;
    const c = coeffs(ratio, p.scale);
    const n = c.length;
    // The n input positions nearest x (ties to the smaller), found on an edge-padded axis.
    const pad = Math.ceil(n / 2);
    const xp = x + pad;
    const pp = Math.floor(xp);
    const frac = xp - pp;
    const offset = n % 2 === 0 ? (frac === 0 ? -(n / 2) : -(n / 2) + 1) : frac <= 0.5 ? -((n - 1) / 2) : -((n - 1) / 2) + 1;
    const idx = c.map((_, t) => pp + offset + t - pad);
    if (excludeOutside) {
      idx.forEach((i, t) => { if (i < 0 || i >= inLen) c[t] = 0; });
      const total = c.reduce((a, b) => a + b, 0) || 1;
      for (let t = 0; t < n; t++) c[t] /= total;
    }
    rows.push(c);
    idxRows.push(idx.map((i) => Math.min(Math.max(i, 0), inLen - 1)));
  }
  const n = rows[0]?.length ?? 1;
  if (oneHot && rows.every((r) => r.includes(1))) {
    // Nearest: each output copies exactly one input (no 0 * x terms, so inf / NaN neighbours stay out).
    const indices = Int32Array.from(idxRows, (r, o) => r[rows[o].indexOf(1)]);
    return { taps: { outLen, taps: 1, indices, weights: null }, outside };
  }
  return { taps: { outLen, taps: n, indices: Int32Array.from(idxRows.flat()), weights: Float64Array.from(rows.flat()) }, outside };
}

/** A non-empty optional input, or null (ONNX passes "" or an empty tensor for "not given"). */
function given(inputs: readonly (Tensor | null)[], i: number): Tensor | null {
  const t = inputs[i];
  return t && t.size > 0 ? t : null;
}

function resize(ctx: OpContext, x: Tensor, scalesIn: number[] | null, sizesIn: number[] | null, roiIn: number[] | null, legacy: boolean): Tensor {
  const a = ctx.attrs;
  const rank = x.rank;
  const mode = a.string('mode', 'nearest');
  const coordMode = legacy ? 'asymmetric' : a.string('coordinate_transformation_mode', 'half_pixel');
  const nearestMode = legacy ? 'legacy' : a.string('nearest_mode', 'round_prefer_floor');
  const antialias = a.flag('antialias', false);
  const excludeOutside = a.flag('exclude_outside', false);
  const extrapolation = a.float('extrapolation_value', 0);
  const policy = a.string('keep_aspect_ratio_policy', 'stretch');
  const axes = a.has('axes') ? a.ints('axes').map((d) => axisOf(ctx, d, rank)) : x.shape.map((_, i) => i);
  if (new Set(axes).size !== axes.length) ctx.fail('INVALID_MODEL', `Resize axes ${formatShape(axes)} repeat an axis`);
  if (!scalesIn && !sizesIn) ctx.fail('INVALID_MODEL', 'Resize needs scales or sizes');
  if (scalesIn && sizesIn) ctx.fail('INVALID_MODEL', 'Resize takes scales or sizes, not both');
  const perAxis = (scalesIn ?? sizesIn)!;
  if (perAxis.length !== axes.length) ctx.fail('INVALID_MODEL', `Resize ${scalesIn ? 'scales' : 'sizes'} ${formatShape(perAxis)} must have one entry per resized axis (${axes.length}) of ${formatShape(x.shape)}`);
  if (roiIn && roiIn.length !== 2 * axes.length) ctx.fail('INVALID_MODEL', `Resize roi has ${roiIn.length} values, expected ${2 * axes.length}`);

  let coeffs: Coeffs;
  if (mode === 'nearest' || (legacy && mode !== 'linear' && mode !== 'bilinear')) {
    if (mode !== 'nearest') ctx.fail('INVALID_MODEL', `unknown Upsample mode '${mode}'`);
    if (antialias) ctx.fail('INVALID_MODEL', 'Resize: antialias is not defined for nearest');
    coeffs = nearestCoeffs(nearestMode);
  } else if (mode === 'linear' || mode === 'bilinear') coeffs = linearCoeffs(antialias);
  else if (mode === 'cubic') coeffs = cubicCoeffs(a.float('cubic_coeff_a', -0.75), antialias);
  else return ctx.fail('INVALID_MODEL', `unknown Resize mode '${mode}'`);

  // Scales and output lengths per resized axis (the reference's _interpolate_nd).
  let scales: number[];
  let outLens: number[];
  if (sizesIn) {
    outLens = [...sizesIn];
    scales = axes.map((d, i) => outLens[i] / x.shape[d]);
    if (policy !== 'stretch') {
      if (policy !== 'not_larger' && policy !== 'not_smaller') ctx.fail('INVALID_MODEL', `unknown keep_aspect_ratio_policy '${policy}'`);
      const s = policy === 'not_larger' ? Math.min(...scales) : Math.max(...scales);
      scales = axes.map(() => s);
      outLens = axes.map((d) => Math.floor(s * x.shape[d] + 0.5));
    }
  } else {
    scales = [...scalesIn!];
    if (scales.some((s) => !(s > 0))) ctx.fail('INVALID_MODEL', `Resize scales ${formatShape(scales)} must be positive`);
    outLens = axes.map((d, i) => Math.trunc(scales[i] * x.shape[d]));
  }
  if (outLens.some((n) => !Number.isInteger(n) || n < 0)) ctx.fail('INVALID_MODEL', `Resize output sizes ${formatShape(outLens)} are not valid`);

  if (!isF(x) && mode !== 'nearest') ctx.fail('UNSUPPORTED_DTYPE', `Resize (${mode}) of a ${x.dtype} tensor is not supported (nearest is)`);
  let y = x;
  axes.forEach((d, i) => {
    const roi: [number, number] | null = roiIn ? [roiIn[i], roiIn[i + axes.length]] : null;
    const identity = Math.abs(scales[i] - 1) <= 1e-9 && outLens[i] === x.shape[d] && (coordMode !== 'tf_crop_and_resize' || !roi || (Math.abs(roi[0]) <= 1e-9 && Math.abs(roi[1] - 1) <= 1e-9));
    if (identity) return;
    if (outLens[i] === 0 || x.shape[d] === 0) ctx.fail('UNSUPPORTED_FEATURE', `Resize to or from an empty axis (${formatShape(x.shape)} -> ${outLens[i]} on axis ${d})`);
    const { taps, outside } = axisTaps(ctx, { inLen: x.shape[d], outLen: outLens[i], scale: scales[i], roi }, coordMode, coeffs, excludeOutside, mode === 'nearest');
    y = layout([y], ([t]) => E.resampleAxis(t, d, taps));
    if (outside) {
      // Per axis, as the reference: later axes interpolate the extrapolated values too.
      if (!isF(y)) ctx.fail('UNSUPPORTED_DTYPE', `tf_crop_and_resize extrapolation on a ${y.dtype} tensor is not supported`);
      const shape = x.shape.map((_, k) => (k === d ? outLens[i] : 1));
      y = E.where(makeConstant(outside.map((o) => (o ? 1 : 0)), shape, 'bool'), extrapolation, y);
    }
  });
  return y;
}

const GRID_MODES: Record<string, E.GridSampleMode> = { bilinear: 'linear', linear: 'linear', nearest: 'nearest', bicubic: 'cubic', cubic: 'cubic' };

export const RESIZE_OPS: Readonly<Record<string, OpHandler>> = {
  GridSample: {
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'X');
      const grid = floatIn(ctx, need(ctx, inputs, 1, 'grid'), 'GridSample grid');
      if (!isF(x)) ctx.fail('UNSUPPORTED_DTYPE', `GridSample on a ${x.dtype} input is not supported (float inputs only)`);
      const modeName = ctx.attrs.string('mode', 'bilinear');
      const mode = GRID_MODES[modeName];
      // Opset 16 names the modes bilinear/bicubic, opset 20 linear/cubic; both are accepted.
      if (!mode) ctx.fail('INVALID_MODEL', `unknown GridSample mode '${modeName}'`);
      const padding = ctx.attrs.string('padding_mode', 'zeros') as E.GridSamplePadding;
      if (padding !== 'zeros' && padding !== 'border' && padding !== 'reflection') ctx.fail('INVALID_MODEL', `unknown GridSample padding_mode '${padding}'`);
      if (x.rank < 3) ctx.fail('INVALID_MODEL', `GridSample input must be [N, C, spatial...], got ${formatShape(x.shape)}`);
      if (mode === 'cubic' && x.rank !== 4) ctx.fail('UNSUPPORTED_FEATURE', `GridSample cubic mode on ${x.rank - 2}-D data is not supported (2-D only, as the ONNX spec)`);
      if (grid.rank !== x.rank || grid.shape[0] !== x.shape[0] || grid.shape[grid.rank - 1] !== x.rank - 2) {
        ctx.fail('INVALID_MODEL', `GridSample grid ${formatShape(grid.shape)} does not fit input ${formatShape(x.shape)}: want [N, out..., ${x.rank - 2}]`);
      }
      return E.gridSample(x, grid, { mode, padding, alignCorners: ctx.attrs.int('align_corners', 0) !== 0 });
    },
  },
  Resize: {
    nonDiff: [1, 2, 3],
    shapeFrom: [1, 2, 3],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'X');
      if (ctx.opset < 11) {
        const scales = need(ctx, inputs, 1, 'scales');
        return resize(ctx, x, Array.from(scales.data), null, null, true);
      }
      const roi = given(inputs, 1);
      const scales = given(inputs, 2);
      const sizes = given(inputs, 3);
      return resize(ctx, x, scales ? Array.from(scales.data) : null, sizes ? shapeValues(ctx, sizes, 'sizes') : null, roi ? Array.from(roi.data) : null, false);
    },
  },
  Upsample: {
    nonDiff: [1],
    shapeFrom: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'X');
      const scales = ctx.opset >= 9 ? Array.from(need(ctx, inputs, 1, 'scales').data) : ctx.attrs.floats('scales');
      return resize(ctx, x, scales, null, null, true);
    },
  },
};
