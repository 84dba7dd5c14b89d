/** Convolution and pooling ops (1-D to 3-D, on the engine's 2-D kernels). */
import { Tensor } from '../../tensor';
import { formatShape, sizeOf } from '../../shape';
import * as E from '../../ops';
import { OpContext, computedConstant, filledConstant } from '../context';
import { allocate } from '../../dtype';
import { layout } from '../helpers';
import { OpHandler, constLike, floatIn, isF, need } from './common';
import { padSpatial } from './layout';


interface WindowSpec {
  kernel: number[];
  strides: number[];
  dilations: number[];
  begins: number[];
  ends: number[];
}

/** Resolves kernel, strides, dilations and (auto_pad) begin/end pads for `n` spatial dims. */
function windowSpec(ctx: OpContext, inShape: readonly number[], kernel: number[], n: number): WindowSpec {
  const a = ctx.attrs;
  const strides = a.ints('strides', new Array<number>(n).fill(1));
  const dilations = a.ints('dilations', new Array<number>(n).fill(1));
  const pads = a.ints('pads', new Array<number>(2 * n).fill(0));
  const autoPad = a.string('auto_pad', 'NOTSET');
  let begins = pads.slice(0, n);
  let ends = pads.slice(n, 2 * n);
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    begins = [];
    ends = [];
    for (let i = 0; i < n; i++) {
      const input = inShape[i];
      const out = Math.ceil(input / strides[i]);
      const total = Math.max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - input);
      const small = Math.floor(total / 2);
      begins.push(autoPad === 'SAME_UPPER' ? small : total - small);
      ends.push(autoPad === 'SAME_UPPER' ? total - small : small);
    }
  } else if (autoPad === 'VALID') {
    begins = new Array<number>(n).fill(0);
    ends = new Array<number>(n).fill(0);
  } else if (autoPad !== 'NOTSET') {
    ctx.fail('INVALID_MODEL', `unknown auto_pad '${autoPad}'`);
  }
  if (kernel.length !== n || strides.length !== n || dilations.length !== n || begins.length !== n || ends.length !== n) {
    ctx.fail('INVALID_MODEL', `kernel_shape/strides/dilations/pads do not match the ${n} spatial dims of input ${formatShape(inShape)}`);
  }
  const bad = (xs: number[], min: number) => xs.some((v) => !Number.isInteger(v) || v < min);
  if (bad(kernel, 1)) ctx.fail('INVALID_MODEL', `kernel_shape ${formatShape(kernel)} must be positive integers`);
  if (bad(strides, 1)) ctx.fail('INVALID_MODEL', `strides ${formatShape(strides)} must be positive integers`);
  if (bad(dilations, 1)) ctx.fail('INVALID_MODEL', `dilations ${formatShape(dilations)} must be positive integers`);
  if (bad(begins, 0) || bad(ends, 0)) ctx.fail('INVALID_MODEL', `pads ${formatShape([...begins, ...ends])} must be non-negative integers`);
  return { kernel, strides, dilations, begins, ends };
}

/** Spatial rank of an [N, C, ...spatial] input: 1-D and 3-D windows are built on the engine's 2-D kernels. */
function spatialRank(ctx: OpContext, x: Tensor, op: string): number {
  const n = x.rank - 2;
  if (n < 1) ctx.fail('INVALID_MODEL', `${op} input must be [N, C, ...spatial], got ${formatShape(x.shape)}`);
  if (n > 3) ctx.fail('UNSUPPORTED_FEATURE', `${n}-D ${op} (input ${formatShape(x.shape)}) is not supported: the engine builds 1-D to 3-D windows on its 2-D kernels`);
  return n;
}

/** 1-D windows run as 2-D ones over a height of 1. */
function to2d(x: Tensor, n: number): Tensor {
  return n === 1 ? E.reshape(x, [x.shape[0], x.shape[1], 1, x.shape[2]]) : x;
}
function from2d(y: Tensor, n: number): Tensor {
  return n === 1 ? E.reshape(y, [y.shape[0], y.shape[1], y.shape[3]]) : y;
}
function spec2d(s: WindowSpec, n: number): WindowSpec {
  if (n === 2) return s;
  return { kernel: [1, s.kernel[0]], strides: [1, s.strides[0]], dilations: [1, s.dilations[0]], begins: [0, s.begins[0]], ends: [0, s.ends[0]] };
}

/** Extra end padding that turns floor-mode output sizes into ceil-mode ones (PyTorch's rule). */
function ceilExtra(input: number, k: number, s: number, d: number, b: number, e: number): number {
  const span = (k - 1) * d + 1;
  let out = Math.ceil((input + b + e - span) / s) + 1;
  if ((out - 1) * s >= input + b) out--; // the last window must start inside the input or left pad
  return Math.max(0, (out - 1) * s + span - (input + b + e));
}

/** kernel_shape, which must agree with the weight's spatial dims when given (it is redundant with them). */
function checkKernel(ctx: OpContext, w: Tensor): number[] {
  const fromWeight = w.shape.slice(2);
  if (!ctx.attrs.has('kernel_shape')) return fromWeight;
  const kernel = ctx.attrs.ints('kernel_shape');
  if (kernel.length !== fromWeight.length || kernel.some((k, i) => k !== fromWeight[i])) {
    ctx.fail('INVALID_MODEL', `kernel_shape ${formatShape(kernel)} disagrees with the weight ${formatShape(w.shape)}, whose spatial dims are ${formatShape(fromWeight)}`);
  }
  return kernel;
}

const conv: OpHandler = {
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'Conv input');
    const w = floatIn(ctx, need(ctx, inputs, 1, 'W'), 'Conv weight');
    const b = inputs[2] ?? null;
    const n = spatialRank(ctx, x, 'Conv');
    if (w.rank !== n + 2) ctx.fail('INVALID_MODEL', `weight ${formatShape(w.shape)} must be [M, C/group, ${['k', 'kh, kw', 'kd, kh, kw'][n - 1]}] for input ${formatShape(x.shape)}`);
    const kernel = checkKernel(ctx, w);
    const groups = ctx.attrs.int('group', 1);
    if (n === 3) {
      const s3 = windowSpec(ctx, x.shape.slice(2), kernel, 3);
      const symmetric = s3.begins.every((b, i) => b === s3.ends[i]);
      const x3 = symmetric ? x : padSpatial(ctx, x, 2, s3.begins, s3.ends, 0);
      const triple = (v: number[]) => [v[0], v[1], v[2]] as [number, number, number];
      return E.conv3d(x3, w, b, { stride: triple(s3.strides), padding: symmetric ? triple(s3.begins) : [0, 0, 0], dilation: triple(s3.dilations), groups });
    }
    const s = spec2d(windowSpec(ctx, x.shape.slice(2), kernel, n), n);
    let x2 = to2d(x, n);
    const w2 = n === 1 ? E.reshape(w, [w.shape[0], w.shape[1], 1, w.shape[2]]) : w;
    let padding: [number, number] = [s.begins[0], s.begins[1]];
    if (s.begins[0] !== s.ends[0] || s.begins[1] !== s.ends[1]) {
      x2 = padSpatial(ctx, x2, 2, s.begins, s.ends, 0);
      padding = [0, 0];
    }
    const y = E.conv2d(x2, w2, b, { stride: [s.strides[0], s.strides[1]], padding, dilation: [s.dilations[0], s.dilations[1]], groups });
    return from2d(y, n);
  },
};

/**
 * ConvTranspose as a composition: zero-insertion for the stride (concat + reshape), padding, then a
 * stride-1 convolution (2-D, or 3-D on 2-D kernels) with the spatially flipped, in/out-swapped weight.
 * Differentiable in x, W and B. output_shape and SAME auto_pad set the pads by the spec's equations.
 */
const convTranspose: OpHandler = {
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'ConvTranspose input');
    const w = floatIn(ctx, need(ctx, inputs, 1, 'W'), 'ConvTranspose weight');
    const b = inputs[2] ?? null;
    const n = spatialRank(ctx, x, 'ConvTranspose');
    const a = ctx.attrs;
    const fill = (len: number, v: number) => new Array<number>(len).fill(v);
    const groups = a.int('group', 1);
    const kernel = a.ints('kernel_shape', w.shape.slice(2));
    const strides = a.ints('strides', fill(n, 1));
    const dil = a.ints('dilations', fill(n, 1));
    const outPad = a.ints('output_padding', fill(n, 0));
    const autoPad = a.string('auto_pad', 'NOTSET');
    let pads = a.ints('pads', fill(2 * n, 0));
    if (w.rank !== n + 2 || kernel.length !== n || strides.length !== n || dil.length !== n || outPad.length !== n || pads.length !== 2 * n) {
      ctx.fail('INVALID_MODEL', `ConvTranspose weight ${formatShape(w.shape)} and kernel_shape/strides/dilations/output_padding/pads do not match the ${n} spatial dims of input ${formatShape(x.shape)}`);
    }
    checkKernel(ctx, w);
    if (!(Number.isInteger(groups) && groups >= 1)) ctx.fail('INVALID_MODEL', `group must be a positive integer, got ${groups}`);
    if ([...strides, ...dil].some((v) => !Number.isInteger(v) || v < 1)) ctx.fail('INVALID_MODEL', `strides ${formatShape(strides)} and dilations ${formatShape(dil)} must be positive integers`);
    if (outPad.some((v, i) => !Number.isInteger(v) || v < 0 || v >= Math.max(strides[i], dil[i]))) ctx.fail('INVALID_MODEL', `output_padding ${formatShape(outPad)} must be non-negative and smaller than the stride or dilation`);
    const inShape = x.shape.slice(2);
    if (a.has('output_shape') || autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      let outShape = a.has('output_shape') ? a.ints('output_shape') : inShape.map((d, i) => d * strides[i]);
      if (outShape.length === n + 2) outShape = outShape.slice(2);
      if (outShape.length !== n) ctx.fail('INVALID_MODEL', `ConvTranspose output_shape ${formatShape(outShape)} does not match the ${n} spatial dims`);
      const total = inShape.map((d, i) => strides[i] * (d - 1) + outPad[i] + (kernel[i] - 1) * dil[i] + 1 - outShape[i]);
      const upper = autoPad === 'SAME_UPPER';
      const half = total.map((t) => Math.floor(t / 2));
      pads = [...total.map((t, i) => (upper ? half[i] : t - half[i])), ...total.map((t, i) => (upper ? t - half[i] : half[i]))];
    } else if (autoPad === 'VALID') {
      pads = fill(2 * n, 0);
    } else if (autoPad !== 'NOTSET') {
      ctx.fail('INVALID_MODEL', `unknown auto_pad '${autoPad}'`);
    }
    // 1-D runs as 2-D over a height of 1.
    const m = n === 1 ? 2 : n;
    const lift = (v: number[], one: number) => (n === 1 ? [one, v[0]] : v);
    let xs = to2d(x, n);
    let ws = n === 1 ? E.reshape(w, [w.shape[0], w.shape[1], 1, w.shape[2]]) : w;
    const s = lift(strides, 1);
    const d = lift(dil, 1);
    const op = lift(outPad, 0);
    const pb = lift(pads.slice(0, n), 0);
    const pe = lift(pads.slice(n), 0);
    const ks = ws.shape.slice(2);
    // 1. zero insertion: each spatial dim L -> (L-1)*s+1
    for (let i = 0; i < m; i++) {
      if (s[i] === 1) continue;
      const axis = 2 + i;
      const dim = xs.shape[axis];
      const expanded = E.unsqueeze(xs, axis + 1);
      const zshape = [...expanded.shape];
      zshape[axis + 1] = s[i] - 1;
      const z = filledConstant(zshape, 0, xs.dtype);
      const shape = [...xs.shape];
      shape[axis] = dim * s[i];
      xs = E.slice(E.reshape(E.concat([expanded, z], axis + 1), shape), { starts: [0], ends: [(dim - 1) * s[i] + 1], axes: [axis] });
    }
    // 2. full padding (k-1)*d - p on each side (+ output_padding at the end); negative crops.
    xs = padSpatial(ctx, xs, 2, ks.map((k, i) => (k - 1) * d[i] - pb[i]), ks.map((k, i) => (k - 1) * d[i] - pe[i] + op[i]), 0);
    // 3. weight [Cin, Cout/g, ...k] -> flipped [Cout, Cin/g, ...k]
    const [cin, coutG] = ws.shape;
    if (cin !== x.shape[1] || cin % groups !== 0) ctx.fail('INVALID_MODEL', `ConvTranspose weight ${formatShape(w.shape)} does not fit input ${formatShape(x.shape)} with ${groups} groups`);
    ks.forEach((k, i) => {
      ws = E.gather(ws, computedConstant([k], 'int32', (d) => d.forEach((_, j) => (d[j] = k - 1 - j))), 2 + i);
    });
    ws = E.reshape(E.permute(E.reshape(ws, [groups, cin / groups, coutG, ...ks]), [0, 2, 1, ...ks.map((_, i) => 3 + i)]), [groups * coutG, cin / groups, ...ks]);
    const y = m === 3
      ? E.conv3d(xs, ws, b, { dilation: [d[0], d[1], d[2]], groups })
      : E.conv2d(xs, ws, b, { stride: 1, padding: 0, dilation: [d[0], d[1]], groups });
    return from2d(y, n);
  },
};

type PoolKind = 'max' | 'avg' | 'sum';

/** Taps t in [0, k) of a window starting at `start` (padded coordinates) that land in [lo, hi). */
function tapsIn(start: number, k: number, d: number, lo: number, hi: number): number {
  let c = 0;
  for (let t = 0; t < k; t++) if (start + t * d >= lo && start + t * d < hi) c++;
  return c;
}

/**
 * One 2-D pooling stage over [N, C, H, W] with ONNX windows: pads (asymmetric allowed), ceil-mode
 * extra end padding and dilations. 'max' pads with -inf; 'avg' divides each window sum by its count
 * (padding included up to the declared pads with count_include_pad, else real elements only); 'sum'
 * is the plain window sum (LpPool).
 */
function poolStage(ctx: OpContext, x2: Tensor, spec: WindowSpec, extra: number[], kind: PoolKind, includePad: boolean): Tensor {
  const [kh, kw] = spec.kernel;
  const stride: [number, number] = [spec.strides[0], spec.strides[1]];
  const dilation: [number, number] = [spec.dilations[0], spec.dilations[1]];
  const symmetric = spec.begins[0] === spec.ends[0] && spec.begins[1] === spec.ends[1] && extra[0] === 0 && extra[1] === 0;
  const small = spec.begins[0] <= Math.floor(kh / 2) && spec.begins[1] <= Math.floor(kw / 2);
  const ends = [spec.ends[0] + extra[0], spec.ends[1] + extra[1]];
  if (kind === 'max') {
    if (symmetric && small) return E.maxPool2d(x2, { kernel: [kh, kw], stride, padding: [spec.begins[0], spec.begins[1]], dilation });
    return E.maxPool2d(padSpatial(ctx, x2, 2, spec.begins, ends, -Infinity), { kernel: [kh, kw], stride, padding: [0, 0], dilation });
  }
  const dilated = dilation[0] !== 1 || dilation[1] !== 1;
  if (kind === 'avg' && !dilated && symmetric && small) {
    return E.avgPool2d(x2, { kernel: [kh, kw], stride, padding: [spec.begins[0], spec.begins[1]], countIncludePad: includePad });
  }
  // Window sums over an explicitly zero-padded input: the average-pool kernel times the window size,
  // or with dilations a depthwise convolution with a kernel of ones.
  const padded = padSpatial(ctx, x2, 2, spec.begins, ends, 0);
  const c = x2.shape[1];
  const sums = dilated
    ? E.conv2d(padded, constLike(x2, new Array<number>(c * kh * kw).fill(1), [c, 1, kh, kw]), null, { stride, dilation, groups: c })
    : E.mulScalar(E.avgPool2d(padded, { kernel: [kh, kw], stride, padding: [0, 0], countIncludePad: true }), kh * kw);
  if (kind === 'sum') return sums;
  const [oh, ow] = [sums.shape[2], sums.shape[3]];
  const [h, w] = [x2.shape[2], x2.shape[3]];
  const count = (o: number, i: number, size: number) => {
    const b = spec.begins[i];
    return tapsIn(o * stride[i], spec.kernel[i], dilation[i], includePad ? 0 : b, includePad ? size + b + spec.ends[i] : size + b);
  };
  const scale = new Array<number>(oh * ow);
  for (let i = 0; i < oh; i++) {
    for (let j = 0; j < ow; j++) {
      const n = count(i, 0, h) * count(j, 1, w);
      scale[i * ow + j] = n > 0 ? 1 / n : 0;
    }
  }
  return E.mul(sums, constLike(sums, scale, [oh, ow]));
}

/**
 * Pooling over 1-D to 3-D windows on 2-D stages: 1-D runs over a height of 1; 3-D is separable
 * (max, average and sum of a box are the max / average / sum over depth of those over height x width,
 * and each count is a product of per-axis counts): (H, W) on [N, C*D, H, W], then D on
 * [N, C, D, oh*ow]. For max, the gradient goes to the first maximum in (d, h, w) order, as PyTorch.
 */
function pool(ctx: OpContext, x: Tensor, op: string, kind: PoolKind, includePad = false): Tensor {
  const n = spatialRank(ctx, x, op);
  const kernel = ctx.attrs.ints('kernel_shape');
  const spec = windowSpec(ctx, x.shape.slice(2), kernel, n);
  const ceil = ctx.attrs.flag('ceil_mode', false);
  const extra = spec.kernel.map((k, i) => (ceil ? ceilExtra(x.shape[2 + i], k, spec.strides[i], spec.dilations[i], spec.begins[i], spec.ends[i]) : 0));
  /** The 2-D window of spatial dims `dims` (-1: a dim of size 1 with a trivial window). */
  const pick = (dims: [number, number]): [WindowSpec, number[]] => [{
    kernel: dims.map((i) => (i < 0 ? 1 : spec.kernel[i])),
    strides: dims.map((i) => (i < 0 ? 1 : spec.strides[i])),
    dilations: dims.map((i) => (i < 0 ? 1 : spec.dilations[i])),
    begins: dims.map((i) => (i < 0 ? 0 : spec.begins[i])),
    ends: dims.map((i) => (i < 0 ? 0 : spec.ends[i])),
  }, dims.map((i) => (i < 0 ? 0 : extra[i]))];
  const stage = (t: Tensor, dims: [number, number]) => poolStage(ctx, t, ...pick(dims), kind, includePad);
  if (n === 1) return from2d(stage(to2d(x, 1), [-1, 0]), 1);
  if (n === 2) return stage(x, [0, 1]);
  const [b, c, d, h, w] = x.shape;
  const hw = stage(E.reshape(x, [b, c * d, h, w]), [1, 2]);
  const [oh, ow] = [hw.shape[2], hw.shape[3]];
  const y = stage(E.reshape(hw, [b, c, d, oh * ow]), [0, -1]);
  return E.reshape(y, [b, c, y.shape[2], oh, ow]);
}

/**
 * MaxPool's Indices output, on the host: the flat index into X of each window's first maximum, counted
 * over N and C too, the spatial part row-major (storage_order 0) or column-major (1), as the reference.
 * Only asked for when a node uses the output; on a device-only X it throws TensorOnDeviceError and a WebGPU
 * run repeats on the host backend (the pooled values themselves run on the device kernels).
 */
function maxPoolIndices(ctx: OpContext, x: Tensor, outSpatial: readonly number[]): Tensor {
  const n = x.rank - 2;
  const spec = windowSpec(ctx, x.shape.slice(2), ctx.attrs.ints('kernel_shape'), n);
  const columnMajor = ctx.attrs.flag('storage_order', false);
  const size = x.shape.slice(2);
  const inner = sizeOf(size);
  const outInner = sizeOf(outSpatial);
  const planes = x.shape[0] * x.shape[1];
  const data = x.data;
  const out = allocate('int32', planes * outInner);
  const rowStride = size.map((_, i) => sizeOf(size.slice(i + 1)));
  const colStride = size.map((_, i) => sizeOf(size.slice(0, i)));
  const kernelTaps = sizeOf(spec.kernel);
  const pos = new Array<number>(n);
  for (let p = 0; p < planes; p++) {
    for (let o = 0; o < outInner; o++) {
      let best = -Infinity;
      let bestAt = -1;
      for (let t = 0; t < kernelTaps; t++) {
        let rem = t;
        let inside = true;
        let off = 0;
        let o2 = o;
        for (let i = n - 1; i >= 0; i--) {
          const k = rem % spec.kernel[i];
          rem = Math.floor(rem / spec.kernel[i]);
          const oi = o2 % outSpatial[i];
          o2 = Math.floor(o2 / outSpatial[i]);
          pos[i] = oi * spec.strides[i] - spec.begins[i] + k * spec.dilations[i];
          if (pos[i] < 0 || pos[i] >= size[i]) inside = false;
          off += pos[i] * rowStride[i];
        }
        if (!inside) continue;
        const v = data[p * inner + off];
        if (bestAt < 0 || v > best) {
          best = v;
          bestAt = pos.reduce((acc, c, i) => acc + c * (columnMajor ? colStride[i] : rowStride[i]), 0);
        }
      }
      out[p * outInner + o] = bestAt < 0 ? -1 : p * inner + bestAt;
    }
  }
  return new Tensor(out, [x.shape[0], x.shape[1], ...outSpatial]);
}

const maxPool: OpHandler = {
  run(ctx, inputs) {
    const x = need(ctx, inputs, 0, 'X');
    // Integer inputs (uint8 images) pool exactly on float64 copies.
    const y = isF(x) ? pool(ctx, x, 'MaxPool', 'max') : layout([x], ([t]) => pool(ctx, t, 'MaxPool', 'max'));
    return ctx.wants(1) ? [y, maxPoolIndices(ctx, x, y.shape.slice(2))] : y;
  },
};

const averagePool: OpHandler = {
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'AveragePool input');
    return pool(ctx, x, 'AveragePool', 'avg', ctx.attrs.flag('count_include_pad', false));
  },
};

/** LpPool: (sum over the window of |x|^p)^(1/p), padding counting as zeros. */
const lpPool: OpHandler = {
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'LpPool input');
    const p = ctx.opset < 2 ? ctx.attrs.float('p', 2) : ctx.attrs.int('p', 2);
    if (!(p > 0)) ctx.fail('INVALID_MODEL', `LpPool p must be positive, got ${p}`);
    const sums = pool(ctx, p === 1 ? E.abs(x) : p === 2 ? E.square(x) : E.pow(E.abs(x), p), 'LpPool', 'sum');
    return p === 1 ? sums : p === 2 ? E.sqrt(sums) : E.pow(sums, 1 / p);
  },
};

export const CONV_OPS: Readonly<Record<string, OpHandler>> = {
  Conv: conv,
  ConvTranspose: convTranspose,
  MaxPool: maxPool,
  AveragePool: averagePool,
  LpPool: lpPool,
  GlobalAveragePool: { run: (ctx, inputs) => E.globalAvgPool(floatIn(ctx, need(ctx, inputs, 0, 'X'), 'GlobalAveragePool input')) },
  GlobalMaxPool: {
    run(ctx, inputs) {
      const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'GlobalMaxPool input');
      return E.max(x, x.shape.map((_, i) => i).slice(2), true);
    },
  },
};
