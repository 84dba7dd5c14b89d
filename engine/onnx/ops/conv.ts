/** Convolution and pooling ops (1-D and 2-D on the engine's 2-D kernels). */
import { Tensor } from '../../tensor';
import { formatShape } from '../../shape';
import * as E from '../../ops';
import { OpContext, computedConstant, filledConstant } from '../context';
import { allocate } from '../../dtype';
import { OpHandler, constLike, floatIn, need } from './common';
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

/** Spatial rank of an [N, C, ...spatial] input; only 1-D and 2-D map onto the engine's 2-D kernels. */
function spatialRank(ctx: OpContext, x: Tensor, op: string): number {
  const n = x.rank - 2;
  if (n < 1) ctx.fail('INVALID_MODEL', `${op} input must be [N, C, ...spatial], got ${formatShape(x.shape)}`);
  if (n > 2) ctx.fail('UNSUPPORTED_FEATURE', `${n}-D ${op} (input ${formatShape(x.shape)}) is not supported: the engine has 2-D convolution and pooling kernels only`);
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
    if (w.rank !== n + 2) ctx.fail('INVALID_MODEL', `weight ${formatShape(w.shape)} must be [M, C/group, ${n === 1 ? 'k' : 'kh, kw'}] for input ${formatShape(x.shape)}`);
    const kernel = checkKernel(ctx, w);
    const s = spec2d(windowSpec(ctx, x.shape.slice(2), kernel, n), n);
    const groups = ctx.attrs.int('group', 1);
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
 * ConvTranspose as a composition: zero-insertion for the stride (concat + reshape), padding, then
 * conv2d with the spatially flipped, in/out-swapped weight. Differentiable in x, W and B.
 */
const convTranspose: OpHandler = {
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'ConvTranspose input');
    const w = floatIn(ctx, need(ctx, inputs, 1, 'W'), 'ConvTranspose weight');
    const b = inputs[2] ?? null;
    const n = spatialRank(ctx, x, 'ConvTranspose');
    const a = ctx.attrs;
    const groups = a.int('group', 1);
    if (w.rank !== n + 2) ctx.fail('INVALID_MODEL', `weight ${formatShape(w.shape)} must be [C, M/group, ${n === 1 ? 'k' : 'kh, kw'}] for input ${formatShape(x.shape)}`);
    if (!(Number.isInteger(groups) && groups >= 1) || w.shape[0] % groups !== 0 || w.shape[0] !== x.shape[1]) {
      ctx.fail('INVALID_MODEL', `group ${groups} and weight ${formatShape(w.shape)} do not fit input ${formatShape(x.shape)} (the weight's first dim is the input channels, a multiple of group)`);
    }
    const kernel = checkKernel(ctx, w);
    const strides = a.ints('strides', new Array<number>(n).fill(1));
    const dil = a.ints('dilations', new Array<number>(n).fill(1));
    const outPad = a.ints('output_padding', new Array<number>(n).fill(0));
    if (a.has('output_shape') || a.string('auto_pad', 'NOTSET') !== 'NOTSET') {
      ctx.fail('UNSUPPORTED_FEATURE', 'ConvTranspose with output_shape or auto_pad is not supported (give explicit pads)');
    }
    const pads = a.ints('pads', new Array<number>(2 * n).fill(0));
    if ([strides, dil, outPad, pads].some((v, i) => v.length !== (i === 3 ? 2 * n : n))) ctx.fail('INVALID_MODEL', `strides/dilations/output_padding/pads do not match the ${n} spatial dims of input ${formatShape(x.shape)}`);
    if ([...strides, ...dil].some((v) => !Number.isInteger(v) || v < 1)) ctx.fail('INVALID_MODEL', `strides ${formatShape(strides)} and dilations ${formatShape(dil)} must be positive integers`);
    if (outPad.some((v, i) => !Number.isInteger(v) || v < 0 || v >= Math.max(strides[i], dil[i]))) ctx.fail('INVALID_MODEL', `output_padding ${formatShape(outPad)} must be non-negative and smaller than the stride or dilation`);
    let x2 = to2d(x, n);
    let w2 = n === 1 ? E.reshape(w, [w.shape[0], w.shape[1], 1, w.shape[2]]) : w;
    const k2 = n === 1 ? [1, kernel[0]] : kernel;
    const s2 = n === 1 ? [1, strides[0]] : strides;
    const d2 = n === 1 ? [1, dil[0]] : dil;
    const op2 = n === 1 ? [0, outPad[0]] : outPad;
    const pb = n === 1 ? [0, pads[0]] : pads.slice(0, 2);
    const pe = n === 1 ? [0, pads[1]] : pads.slice(2, 4);
    // 1. zero insertion: [N, C, H, W] -> [N, C, (H-1)*s+1, (W-1)*s+1]
    for (let i = 0; i < 2; i++) {
      const s = s2[i];
      if (s === 1) continue;
      const axis = 2 + i;
      const dim = x2.shape[axis];
      const expanded = E.unsqueeze(x2, axis + 1);
      const zshape = [...expanded.shape];
      zshape[axis + 1] = s - 1;
      const z = filledConstant(zshape, 0, x2.dtype);
      const inter = E.concat([expanded, z], axis + 1);
      const shape = [...x2.shape];
      shape[axis] = dim * s;
      x2 = E.slice(E.reshape(inter, shape), { starts: [0], ends: [(dim - 1) * s + 1], axes: [axis] });
    }
    // 2. full padding (k-1)*d - p on each side (+ output_padding at the end); negative crops.
    const begins = [0, 1].map((i) => (k2[i] - 1) * d2[i] - pb[i]);
    const ends = [0, 1].map((i) => (k2[i] - 1) * d2[i] - pe[i] + op2[i]);
    x2 = padSpatial(ctx, x2, 2, begins, ends, 0);
    // 3. weight [Cin, Cout/g, kh, kw] -> flipped [Cout, Cin/g, kh, kw]
    const [cin, coutG, kh, kw] = w2.shape;
    const flipIdx = (k: number) => computedConstant([k], 'int32', (d) => d.forEach((_, i) => (d[i] = k - 1 - i)));
    w2 = E.gather(E.gather(w2, flipIdx(kh), 2), flipIdx(kw), 3);
    w2 = E.reshape(E.permute(E.reshape(w2, [groups, cin / groups, coutG, kh, kw]), [0, 2, 1, 3, 4]), [groups * coutG, cin / groups, kh, kw]);
    const y = E.conv2d(x2, w2, b, { stride: 1, padding: 0, dilation: [d2[0], d2[1]], groups });
    return from2d(y, n);
  },
};

function poolSetup(ctx: OpContext, x: Tensor, op: string) {
  const n = spatialRank(ctx, x, op);
  const kernel = ctx.attrs.ints('kernel_shape');
  const spec = spec2d(windowSpec(ctx, x.shape.slice(2), kernel, n), n);
  const ceil = ctx.attrs.flag('ceil_mode', false);
  const x2 = to2d(x, n);
  const extra = [0, 1].map((i) =>
    ceil ? ceilExtra(x2.shape[2 + i], spec.kernel[i], spec.strides[i], spec.dilations[i], spec.begins[i], spec.ends[i]) : 0);
  return { n, spec, x2, extra };
}

const maxPool: OpHandler = {
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'MaxPool input');
    if (ctx.wants(1)) ctx.fail('UNSUPPORTED_FEATURE', 'MaxPool with the Indices output is not supported');
    const { n, spec, x2, extra } = poolSetup(ctx, x, 'MaxPool');
    const [kh, kw] = spec.kernel;
    const symmetric = spec.begins[0] === spec.ends[0] && spec.begins[1] === spec.ends[1] && extra[0] === 0 && extra[1] === 0;
    const small = spec.begins[0] <= Math.floor(kh / 2) && spec.begins[1] <= Math.floor(kw / 2);
    let input = x2;
    let padding: [number, number] = [spec.begins[0], spec.begins[1]];
    if (!symmetric || !small) {
      input = padSpatial(ctx, x2, 2, spec.begins, [spec.ends[0] + extra[0], spec.ends[1] + extra[1]], -Infinity);
      padding = [0, 0];
    }
    const y = E.maxPool2d(input, { kernel: [kh, kw], stride: [spec.strides[0], spec.strides[1]], padding, dilation: [spec.dilations[0], spec.dilations[1]] });
    return from2d(y, n);
  },
};

const averagePool: OpHandler = {
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'AveragePool input');
    const { n, spec, x2, extra } = poolSetup(ctx, x, 'AveragePool');
    if (spec.dilations.some((d) => d !== 1)) ctx.fail('UNSUPPORTED_FEATURE', 'AveragePool with dilations is not supported');
    const includePad = ctx.attrs.flag('count_include_pad', false);
    const [kh, kw] = spec.kernel;
    const stride: [number, number] = [spec.strides[0], spec.strides[1]];
    const symmetric = spec.begins[0] === spec.ends[0] && spec.begins[1] === spec.ends[1] && extra[0] === 0 && extra[1] === 0;
    const small = spec.begins[0] <= Math.floor(kh / 2) && spec.begins[1] <= Math.floor(kw / 2);
    if (symmetric && small) {
      return from2d(E.avgPool2d(x2, { kernel: [kh, kw], stride, padding: [spec.begins[0], spec.begins[1]], countIncludePad: includePad }), n);
    }
    // General case: window sums over an explicitly zero-padded input, divided by a constant
    // per-window count (padding included up to the declared pads only, or real elements only).
    const padded = padSpatial(ctx, x2, 2, spec.begins, [spec.ends[0] + extra[0], spec.ends[1] + extra[1]], 0);
    const sums = E.avgPool2d(padded, { kernel: [kh, kw], stride, padding: [0, 0], countIncludePad: true });
    const [oh, ow] = [sums.shape[2], sums.shape[3]];
    const [h, w] = [x2.shape[2], x2.shape[3]];
    const scale = allocate(sums.dtype, oh * ow);
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        const count = (start: number, k: number, size: number, b: number, e: number) => {
          const lo = includePad ? start : Math.max(start, b);
          const hi = Math.min(start + k, includePad ? size + b + e : size + b);
          return Math.max(0, hi - lo);
        };
        const c = count(i * stride[0], kh, h, spec.begins[0], spec.ends[0]) * count(j * stride[1], kw, w, spec.begins[1], spec.ends[1]);
        scale[i * ow + j] = c > 0 ? (kh * kw) / c : 0;
      }
    }
    return from2d(E.mul(sums, constLike(sums, scale, [oh, ow])), n);
  },
};

export const CONV_OPS: Readonly<Record<string, OpHandler>> = {
  Conv: conv,
  ConvTranspose: convTranspose,
  MaxPool: maxPool,
  AveragePool: averagePool,
  GlobalAveragePool: { run: (ctx, inputs) => E.globalAvgPool(floatIn(ctx, need(ctx, inputs, 0, 'X'), 'GlobalAveragePool input')) },
  GlobalMaxPool: {
    run(ctx, inputs) {
      const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'GlobalMaxPool input');
      return E.max(x, x.shape.map((_, i) => i).slice(2), true);
    },
  },
};
