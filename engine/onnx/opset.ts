/**
 * The ONNX operator registry: one entry per ONNX op type (default domain), mapping it onto engine
 * ops. Math the engine has is never re-implemented here: differentiable ops are engine ops or
 * compositions of them (so autograd derives their VJPs); only non-differentiable index, shape,
 * comparison and mask arithmetic is done on plain numbers (helpers.ts).
 *
 * Opset differences handled: attribute-vs-input forms (Reshape <5, Slice <10, Pad <11, Clip <11,
 * Squeeze/Unsqueeze/Split/ReduceSum <13, other Reduce* <18), Softmax's 2-D coercion before 13,
 * BatchNormalization's is_test (<7), output-count (7-13) and training_mode (14+) train flags,
 * Dropout's ratio/training_mode inputs (12+), Split's num_outputs (18), legacy broadcast attrs (<7).
 */
import { Tensor } from '../tensor';
import { FloatDType, isFloat } from '../dtype';
import { Shape, broadcastShapes, formatShape, normalizeAxis, sizeOf } from '../shape';
import { noGrad } from '../autograd';
import * as E from '../ops';
import { OpContext, makeConstant } from './context';
import { DataType, dataTypeName } from './proto';
import { engineDtype, tensorFromProto } from './tensors';
import { Kind, broadcastMap, checkSize, convert, layout, mapValues, numbers } from './helpers';

export type OpResult = Tensor | null | readonly (Tensor | null)[];

export interface OpHandler {
  /** Input slots that never carry gradients (shapes, indices, masks, running statistics...). 'all' for none. */
  readonly nonDiff?: readonly number[] | 'all';
  /** The outputs depend only on the input shapes (Shape, Size): foldable once the shapes are known. */
  readonly shapeOnly?: boolean;
  /** Random: never constant-folded. */
  readonly stochastic?: boolean;
  run(ctx: OpContext, inputs: readonly (Tensor | null)[]): OpResult;
}

// ---------------------------------------------------------------- small helpers

function isF(t: Tensor): boolean {
  return isFloat(t.dtype);
}

function need(ctx: OpContext, inputs: readonly (Tensor | null)[], i: number, what: string): Tensor {
  const t = inputs[i];
  if (!t) ctx.fail('INVALID_MODEL', `required input ${i} (${what}) is missing`);
  return t;
}

function floatIn(ctx: OpContext, t: Tensor, what: string): Tensor {
  if (!isF(t)) ctx.fail('INVALID_MODEL', `${what} must be a float tensor, got ${t.dtype} ${formatShape(t.shape)}`);
  return t;
}

/** A number from a 0-d or 1-element tensor. */
function scalarOf(ctx: OpContext, t: Tensor, what: string): number {
  if (t.size !== 1) ctx.fail('INVALID_MODEL', `${what} must hold one value, got shape ${formatShape(t.shape)}`);
  return t.data[0];
}

function kindOf(t: Tensor): Kind {
  return t.dtype as Kind;
}

function axisOf(ctx: OpContext, axis: number, rank: number, what = 'axis'): number {
  try {
    return normalizeAxis(axis, rank, what);
  } catch (e) {
    return ctx.fail('INVALID_MODEL', (e as Error).message);
  }
}

/** A constant tensor in the dtype of `like` (the run's float dtype for floats). */
function constLike(like: Tensor, values: ArrayLike<number>, shape: Shape): Tensor {
  return makeConstant(values, shape, like.dtype);
}

/** Legacy (opset < 7) broadcasting: B aligned with A starting at `axis`. */
function legacyBroadcast(ctx: OpContext, a: Tensor, b: Tensor): Tensor {
  if (ctx.opset >= 7 || !ctx.attrs.has('axis') || !ctx.attrs.int('broadcast', 0)) return b;
  const axis = ctx.attrs.int('axis');
  const start = axis < 0 ? axis + a.rank : axis;
  const shape = [...new Array<number>(start).fill(1), ...b.shape, ...new Array<number>(Math.max(0, a.rank - start - b.rank)).fill(1)];
  return E.reshape(b, shape);
}

// ---------------------------------------------------------------- elementwise

type FloatBinary = (a: Tensor, b: Tensor) => Tensor;

function binary(floatOp: FloatBinary, intOp: (x: number, y: number) => number): OpHandler {
  return {
    run(ctx, inputs) {
      const a = need(ctx, inputs, 0, 'A');
      const b = legacyBroadcast(ctx, a, need(ctx, inputs, 1, 'B'));
      if (isF(a) || isF(b)) {
        const fa = isF(a) ? a : convert(a, ctx.dtype);
        const fb = isF(b) ? b : convert(b, ctx.dtype);
        return floatOp(fa, fb);
      }
      return broadcastMap([a, b], a.dtype === 'bool' ? 'int32' : kindOf(a), intOp, `${ctx.node.opType} result`);
    },
  };
}

const intDiv = (x: number, y: number): number => {
  if (y === 0) throw new RangeError('integer division by zero');
  return Math.trunc(x / y);
};

function unary(floatOp: (x: Tensor, ctx: OpContext) => Tensor, intOp?: (v: number) => number): OpHandler {
  return {
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'X');
      if (isF(x)) return floatOp(x, ctx);
      if (!intOp) return ctx.fail('UNSUPPORTED_FEATURE', `${ctx.node.opType} on a ${x.dtype} tensor is not supported`);
      return mapValues(x, kindOf(x), intOp);
    },
  };
}

/** An elementwise function with no engine VJP: allowed on values that do not need gradients. */
function nonDiffUnary(fn: (v: number) => number, out?: 'bool'): OpHandler {
  return {
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'X');
      if (x.requiresGrad && out !== 'bool' && !['Floor', 'Ceil', 'Round', 'Sign'].includes(ctx.node.opType)) {
        ctx.fail('UNSUPPORTED_FEATURE', `${ctx.node.opType} has no gradient in the engine, and its input depends on trainable parameters`);
      }
      return mapValues(x, out ?? kindOf(x), fn);
    },
  };
}

const roundHalfEven = (v: number): number => {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** min(x, 0) = -relu(-x). */
const negPart = (x: Tensor): Tensor => E.neg(E.relu(E.neg(x)));

function softplus(x: Tensor): Tensor {
  // log(1 + e^x) = relu(x) + log(1 + e^-|x|), stable for large |x|.
  return E.add(E.relu(x), E.log(E.addScalar(E.exp(E.neg(E.abs(x))), 1)));
}

function elu(x: Tensor, alpha: number): Tensor {
  return E.add(E.relu(x), E.mulScalar(E.addScalar(E.exp(negPart(x)), -1), alpha));
}

/** Mask (bool) where fn(x) holds, computed on the values (not differentiated). */
function maskOf(x: Tensor, fn: (v: number) => boolean): Tensor {
  return mapValues(x, 'bool', (v) => (fn(v) ? 1 : 0));
}

function clipFloat(x: Tensor, lo: number, hi: number): Tensor {
  // Values computed on a device: kernels only (same values and gradient, except 0 instead of 1 at NaN, as torch).
  if (x.isOnDevice) return E.clamp(x, lo, hi);
  // Gradient 1 inside [lo, hi] (bounds included, like torch.clamp), 0 outside.
  let y = x;
  if (lo > -Infinity) y = E.where(maskOf(x, (v) => v < lo), lo, y);
  if (hi < Infinity) y = E.where(maskOf(x, (v) => v > hi), hi, y);
  return y;
}

function variadic(ctx: OpContext, inputs: readonly (Tensor | null)[], floatOp: FloatBinary, intOp: (x: number, y: number) => number): Tensor {
  const xs = inputs.filter((t): t is Tensor => t !== null);
  if (xs.length === 0) ctx.fail('INVALID_MODEL', 'needs at least one input');
  if (xs.some(isF)) return xs.slice(1).reduce((acc, t) => floatOp(acc, isF(t) ? t : convert(t, ctx.dtype)), isF(xs[0]) ? xs[0] : convert(xs[0], ctx.dtype));
  return xs.slice(1).reduce((acc, t) => broadcastMap([acc, t], kindOf(acc), intOp), xs[0]);
}

const minimum = (a: Tensor, b: Tensor): Tensor => E.neg(E.maximum(E.neg(a), E.neg(b)));

function compare(fn: (x: number, y: number) => boolean): OpHandler {
  return {
    nonDiff: 'all',
    run(ctx, inputs) {
      const a = need(ctx, inputs, 0, 'A');
      const b = legacyBroadcast(ctx, a, need(ctx, inputs, 1, 'B'));
      return broadcastMap([a, b], 'bool', (x, y) => (fn(x, y) ? 1 : 0));
    },
  };
}

// ---------------------------------------------------------------- shapes and layout

function shapeValues(ctx: OpContext, t: Tensor, what: string): number[] {
  if (isF(t)) ctx.fail('INVALID_MODEL', `${what} must be an integer tensor, got ${t.dtype}`);
  return numbers(t);
}

function reshapeTo(ctx: OpContext, x: Tensor, shape: number[], allowZero: boolean): Tensor {
  const target = shape.map((d, i) => (d === 0 && !allowZero ? (i < x.rank ? x.shape[i] : ctx.fail('INVALID_MODEL', `Reshape: shape ${formatShape(shape)} copies dim ${i} (0), which input ${formatShape(x.shape)} lacks`)) : d));
  return E.reshape(x, target);
}

function unsqueezeAxes(x: Tensor, axes: number[]): Tensor {
  const outRank = x.rank + axes.length;
  const norm = axes.map((a) => normalizeAxis(a, outRank, 'Unsqueeze axis')).sort((p, q) => p - q);
  const shape = [...x.shape];
  for (const a of norm) shape.splice(a, 0, 1);
  return E.reshape(x, shape);
}

function squeezeAxes(x: Tensor, axes: number[] | null): Tensor {
  if (axes === null) return E.reshape(x, x.shape.filter((d) => d !== 1));
  const norm = axes.map((a) => normalizeAxis(a, x.rank, 'Squeeze axis'));
  for (const a of norm) if (x.shape[a] !== 1) throw new RangeError(`Squeeze: dim ${a} of ${formatShape(x.shape)} is ${x.shape[a]}, not 1`);
  return E.reshape(x, x.shape.filter((_, i) => !norm.includes(i)));
}

/** Axes from the attribute (before `inputSince`) or from input 1 (from `inputSince` on). null = not given. */
function axesArg(ctx: OpContext, inputs: readonly (Tensor | null)[], inputSince: number, slot = 1): number[] | null {
  if (ctx.opset >= inputSince) {
    const t = inputs[slot];
    return t ? shapeValues(ctx, t, 'axes') : null;
  }
  return ctx.attrs.has('axes') ? ctx.attrs.ints('axes') : null;
}

/**
 * Pads axis `axis` by `before`/`after` (negative = crop): constant (value), edge or reflect.
 * Built from engine slice/concat/gather, so it is differentiable in x.
 */
function padAxis(ctx: OpContext, x: Tensor, axis: number, before: number, after: number, mode: string, value: number): Tensor {
  if (before < 0 || after < 0) {
    const dim = x.shape[axis];
    x = layout([x], ([t]) => E.slice(t, { starts: [Math.max(0, -before)], ends: [dim - Math.max(0, -after)], axes: [axis] }));
    before = Math.max(0, before);
    after = Math.max(0, after);
  }
  if (before === 0 && after === 0) return x;
  const dim = x.shape[axis];
  if (mode === 'constant') {
    const piece = (n: number) => {
      const shape = [...x.shape];
      shape[axis] = n;
      checkSize(sizeOf(shape), 'Pad output');
      return makeConstant(new Array<number>(sizeOf(shape)).fill(value), shape, x.dtype);
    };
    const parts = [...(before ? [piece(before)] : []), x, ...(after ? [piece(after)] : [])];
    return layout(parts, (ps) => E.concat(ps, axis));
  }
  if (dim === 0) ctx.fail('INVALID_MODEL', `Pad (${mode}) of an empty axis`);
  const idx: number[] = [];
  for (let i = -before; i < dim + after; i++) {
    if (mode === 'edge') idx.push(Math.min(Math.max(i, 0), dim - 1));
    else if (mode === 'reflect') {
      if (dim === 1) idx.push(0);
      else {
        const period = 2 * (dim - 1);
        let j = ((i % period) + period) % period;
        if (j >= dim) j = period - j;
        idx.push(j);
      }
    } else if (mode === 'wrap') idx.push(((i % dim) + dim) % dim);
    else ctx.fail('UNSUPPORTED_FEATURE', `Pad mode '${mode}' is not supported (constant, edge, reflect, wrap)`);
  }
  return layout([x], ([t]) => E.gather(t, makeConstant(idx, [idx.length], 'int32'), axis));
}

/** Pads the trailing spatial dims: pads = [b0, b1, ..., e0, e1, ...] for dims starting at `first`. */
function padSpatial(ctx: OpContext, x: Tensor, first: number, begins: number[], ends: number[], value: number): Tensor {
  let y = x;
  begins.forEach((b, i) => {
    y = padAxis(ctx, y, first + i, b, ends[i], 'constant', value);
  });
  return y;
}

// ---------------------------------------------------------------- convolution and pooling

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
  if (strides.length !== n || dilations.length !== n || begins.length !== n || ends.length !== n) {
    ctx.fail('INVALID_MODEL', `strides/dilations/pads do not match the ${n} spatial dims of input ${formatShape(inShape)}`);
  }
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

const conv: OpHandler = {
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'Conv input');
    const w = floatIn(ctx, need(ctx, inputs, 1, 'W'), 'Conv weight');
    const b = inputs[2] ?? null;
    const n = spatialRank(ctx, x, 'Conv');
    const kernel = ctx.attrs.ints('kernel_shape', w.shape.slice(2));
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
    const kernel = a.ints('kernel_shape', w.shape.slice(2));
    const strides = a.ints('strides', new Array<number>(n).fill(1));
    const dil = a.ints('dilations', new Array<number>(n).fill(1));
    const outPad = a.ints('output_padding', new Array<number>(n).fill(0));
    if (a.has('output_shape') || a.string('auto_pad', 'NOTSET') !== 'NOTSET') {
      ctx.fail('UNSUPPORTED_FEATURE', 'ConvTranspose with output_shape or auto_pad is not supported (give explicit pads)');
    }
    const pads = a.ints('pads', new Array<number>(2 * n).fill(0));
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
      const z = makeConstant(new Array<number>(sizeOf(zshape)).fill(0), zshape, x2.dtype);
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
    const flipIdx = (k: number) => makeConstant(Array.from({ length: k }, (_, i) => k - 1 - i), [k], 'int32');
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
  const ceil = ctx.attrs.int('ceil_mode', 0) === 1;
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
    const includePad = ctx.attrs.int('count_include_pad', 0) === 1;
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
    const scale = new Array<number>(oh * ow);
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

// ---------------------------------------------------------------- reductions

function reduceHandler(since: number, fn: (x: Tensor, axes: number[] | null, keep: boolean) => Tensor, intOk = true): OpHandler {
  return {
    nonDiff: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      let axes = axesArg(ctx, inputs, since);
      const keep = ctx.attrs.int('keepdims', 1) === 1;
      if (axes !== null && axes.length === 0) axes = null;
      if (axes === null && ctx.attrs.int('noop_with_empty_axes', 0) === 1) return x;
      if (axes !== null) axes = axes.map((a) => axisOf(ctx, a, x.rank));
      if (isF(x)) return fn(x, axes, keep);
      if (!intOk) ctx.fail('UNSUPPORTED_FEATURE', `${ctx.node.opType} of a ${x.dtype} tensor is not supported`);
      return layout([x], ([t]) => fn(t, axes, keep));
    },
  };
}

function logSumExp(x: Tensor, axes: number[] | null, keep: boolean): Tensor {
  const m = noGrad(() => E.max(x, axes, true)).detach();
  const finite = mapValues(m, m.dtype as Kind, (v) => (Number.isFinite(v) ? v : 0));
  const lse = E.add(E.log(E.sum(E.exp(E.sub(x, finite)), axes, true)), finite);
  return keep ? lse : E.reshape(lse, lse.shape.filter((_, i) => !(axes ?? x.shape.map((__, j) => j)).includes(i)));
}

function reduceProd(x: Tensor, axes: number[] | null, keep: boolean): Tensor {
  if (x.requiresGrad) throw new RangeError('ReduceProd has no gradient in the engine, and its input depends on trainable parameters');
  // exp(sum(log|x|)) with the sign and zeros tracked separately, on plain numbers.
  const ax = axes ?? x.shape.map((_, i) => i);
  const keepShape = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const out = new Float64Array(sizeOf(keepShape)).fill(1);
  const strides = keepShape.map((_, i) => sizeOf(keepShape.slice(i + 1)));
  const idx = new Array<number>(x.rank).fill(0);
  for (let i = 0; i < x.size; i++) {
    let o = 0;
    for (let d = 0; d < x.rank; d++) if (!ax.includes(d)) o += idx[d] * strides[d];
    out[o] *= x.data[i];
    for (let d = x.rank - 1; d >= 0; d--) {
      if (++idx[d] < x.shape[d]) break;
      idx[d] = 0;
    }
  }
  const shape = keep ? keepShape : x.shape.filter((_, i) => !ax.includes(i));
  return convert(new Tensor(out, shape), x.dtype);
}

function argReduce(ctx: OpContext, inputs: readonly (Tensor | null)[], better: (a: number, b: number) => boolean): Tensor {
  const x = need(ctx, inputs, 0, 'data');
  const axis = axisOf(ctx, ctx.attrs.int('axis', 0), x.rank);
  const keep = ctx.attrs.int('keepdims', 1) === 1;
  const last = ctx.attrs.int('select_last_index', 0) === 1;
  const outer = sizeOf(x.shape.slice(0, axis));
  const len = x.shape[axis];
  const inner = sizeOf(x.shape.slice(axis + 1));
  const out = new Int32Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let best = 0;
      for (let k = 1; k < len; k++) {
        const v = x.data[(o * len + k) * inner + i];
        const bv = x.data[(o * len + best) * inner + i];
        if (better(v, bv) || (last && v === bv)) best = k;
      }
      out[o * inner + i] = best;
    }
  }
  const shape = keep ? x.shape.map((d, i) => (i === axis ? 1 : d)) : x.shape.filter((_, i) => i !== axis);
  return new Tensor(out, shape);
}

// ---------------------------------------------------------------- softmax family

/** Softmax-like op along `axis`, with the 2-D coercion of opsets < 13. */
function softmaxLike(ctx: OpContext, x: Tensor, fn: (x: Tensor, axis: number) => Tensor): Tensor {
  if (ctx.opset >= 13) return fn(x, axisOf(ctx, ctx.attrs.int('axis', -1), x.rank));
  const axis = axisOf(ctx, ctx.attrs.int('axis', 1), x.rank);
  const rows = sizeOf(x.shape.slice(0, axis));
  const y = fn(E.reshape(x, [rows, x.size / Math.max(rows, 1)]), 1);
  return E.reshape(y, x.shape);
}

function hardmax(x: Tensor, axis: number): Tensor {
  const outer = sizeOf(x.shape.slice(0, axis));
  const len = x.shape[axis];
  const inner = sizeOf(x.shape.slice(axis + 1));
  const out = new Array<number>(x.size).fill(0);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let best = 0;
      for (let k = 1; k < len; k++) if (x.data[(o * len + k) * inner + i] > x.data[(o * len + best) * inner + i]) best = k;
      out[(o * len + best) * inner + i] = 1;
    }
  }
  return constLike(x, out, x.shape);
}

// ---------------------------------------------------------------- normalization

function channelShape(x: Tensor): number[] {
  return x.shape.map((d, i) => (i === 1 ? d : 1));
}

const batchNormalization: OpHandler = {
  nonDiff: [3, 4],
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'BatchNormalization input');
    const scale = inputs[1] ?? null;
    const bias = inputs[2] ?? null;
    const mean = need(ctx, inputs, 3, 'input_mean');
    const variance = need(ctx, inputs, 4, 'input_var');
    const a = ctx.attrs;
    const eps = a.float('epsilon', 1e-5);
    const onnxMomentum = a.float('momentum', 0.9);
    if (ctx.opset < 9 && a.int('spatial', 1) === 0) ctx.fail('UNSUPPORTED_FEATURE', 'BatchNormalization with spatial=0 (per-activation statistics) is not supported');
    const outputsUsed = ctx.node.outputs.filter((o) => o !== '').length;
    const modelTraining = ctx.opset >= 14 ? a.int('training_mode', 0) === 1 : ctx.opset >= 7 ? outputsUsed > 1 : a.int('is_test', 0) === 0;
    const training = ctx.training ?? modelTraining;
    if (!training) return [E.batchNorm(x, scale, bias, mean, variance, { training: false, eps }), mean, variance];
    // Running statistics: updated in place only when asked (PyTorch semantics); else on copies,
    // returned as the node's running_mean / running_var outputs (ONNX semantics).
    // A copy is a new tensor on the same values: host data is copied (the update writes it in place),
    // device storage is shared (a device update swaps in new storage, never writes the old one).
    const copy = (t: Tensor) => (t.hasHostData ? new Tensor(t.data.slice(), t.shape) : t.view(t.shape));
    const rm = ctx.updateBuffers ? mean : copy(mean);
    const rv = ctx.updateBuffers ? variance : copy(variance);
    const y = E.batchNorm(x, scale, bias, rm, rv, { training: true, momentum: 1 - onnxMomentum, eps });
    const outs: (Tensor | null)[] = [y, ctx.wants(1) ? rm.detach() : null, ctx.wants(2) ? rv.detach() : null];
    if (ctx.opset < 14 && (ctx.wants(3) || ctx.wants(4))) {
      const axes = x.shape.map((_, i) => i).filter((i) => i !== 1);
      noGrad(() => {
        const mu = E.mean(x, axes, false);
        outs.push(mu, E.mean(E.square(E.sub(x, E.reshape(mu, channelShape(x)))), axes, false));
      });
    }
    return outs;
  },
};

const instanceNormalization: OpHandler = {
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'input'), 'InstanceNormalization input');
    const scale = need(ctx, inputs, 1, 'scale');
    const bias = need(ctx, inputs, 2, 'B');
    const eps = ctx.attrs.float('epsilon', 1e-5);
    const axes = x.shape.map((_, i) => i).slice(2);
    const centered = E.sub(x, E.mean(x, axes, true));
    const y = E.mul(centered, E.rsqrt(E.addScalar(E.mean(E.square(centered), axes, true), eps)));
    return E.add(E.mul(y, E.reshape(scale, channelShape(x))), E.reshape(bias, channelShape(x)));
  },
};

const layerNormalization: OpHandler = {
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'LayerNormalization input');
    const scale = need(ctx, inputs, 1, 'Scale');
    const bias = inputs[2] ?? null;
    const axis = axisOf(ctx, ctx.attrs.int('axis', -1), x.rank);
    const eps = ctx.attrs.float('epsilon', 1e-5);
    const dims = x.shape.slice(axis);
    const exact = (t: Tensor | null) => !t || (t.rank === dims.length && t.shape.every((d, i) => d === dims[i]));
    let y: Tensor;
    if (exact(scale) && exact(bias)) {
      y = E.layerNorm(x, dims, scale, bias, eps);
    } else {
      y = E.mul(E.layerNorm(x, dims, null, null, eps), scale);
      if (bias) y = E.add(y, bias);
    }
    if (!ctx.wants(1) && !ctx.wants(2)) return y;
    const axes = dims.map((_, i) => axis + i);
    const mu = E.mean(x, axes, true);
    const inv = E.rsqrt(E.addScalar(E.mean(E.square(E.sub(x, mu)), axes, true), eps));
    return [y, mu, inv];
  },
};

// ---------------------------------------------------------------- losses

/** Per-element negative log-likelihood of log-probabilities x [N, C, d...] with optional class weights. */
function nll(ctx: OpContext, x: Tensor, target: Tensor, weight: Tensor | null, reduction: string, ignore: number | null): Tensor {
  if (x.rank < 2) ctx.fail('INVALID_MODEL', `input must be [N, C, ...], got ${formatShape(x.shape)}`);
  const c = x.shape[1];
  const expected = [x.shape[0], ...x.shape.slice(2)];
  if (target.rank !== expected.length || target.shape.some((d, i) => d !== expected[i])) {
    ctx.fail('INVALID_MODEL', `target shape ${formatShape(target.shape)} does not match input ${formatShape(x.shape)}`);
  }
  const perm = [0, ...x.shape.slice(2).map((_, i) => i + 2), 1];
  const rows = E.reshape(E.permute(x, perm), [-1, c]);
  const m = target.size;
  const q = new Array<number>(m * c).fill(0);
  let denom = 0;
  for (let i = 0; i < m; i++) {
    const t = target.data[i];
    if (ignore !== null && t === ignore) continue;
    if (!Number.isInteger(t) || t < 0 || t >= c) ctx.fail('NODE_FAILED', `target ${t} at position ${i} is out of range for ${c} classes`);
    const w = weight ? weight.data[t] : 1;
    q[i * c + t] = w;
    denom += w;
  }
  const perRow = E.neg(E.sum(E.mul(rows, constLike(rows, q, [m, c])), 1));
  if (reduction === 'none') return E.reshape(perRow, expected);
  const total = E.sum(perRow);
  if (reduction === 'sum') return total;
  if (reduction !== 'mean') ctx.fail('INVALID_MODEL', `unknown reduction '${reduction}'`);
  return E.mulScalar(total, 1 / denom);
}

const softmaxCrossEntropyLoss: OpHandler = {
  nonDiff: [1, 2],
  run(ctx, inputs) {
    const scores = floatIn(ctx, need(ctx, inputs, 0, 'scores'), 'scores');
    const labels = need(ctx, inputs, 1, 'labels');
    const weights = inputs[2] ?? null;
    const reduction = ctx.attrs.string('reduction', 'mean');
    const ignore = ctx.attrs.has('ignore_index') ? ctx.attrs.int('ignore_index') : null;
    let loss: Tensor;
    if (!weights && scores.rank >= 2) {
      loss = E.crossEntropy(scores, labels, { ignoreIndex: ignore ?? Number.NaN, reduction: reduction as E.Reduction });
    } else {
      loss = nll(ctx, E.logSoftmax(scores, 1), labels, weights, reduction, ignore);
    }
    return ctx.wants(1) ? [loss, E.logSoftmax(scores, 1)] : loss;
  },
};

const negativeLogLikelihoodLoss: OpHandler = {
  nonDiff: [1, 2],
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'input'), 'input');
    const ignore = ctx.attrs.has('ignore_index') ? ctx.attrs.int('ignore_index') : null;
    return nll(ctx, x, need(ctx, inputs, 1, 'target'), inputs[2] ?? null, ctx.attrs.string('reduction', 'mean'), ignore);
  },
};

// ---------------------------------------------------------------- constants and casts

/** Kind of the engine tensor an ONNX element type becomes. */
function kindForType(ctx: OpContext, dataType: number): Kind {
  const d = engineDtype(dataType, ctx.dtype, `${ctx.node.opType} node '${ctx.node.name}' target type`);
  return d as Kind;
}

function castTo(ctx: OpContext, x: Tensor, kind: Kind): Tensor {
  if (isF(x) && isFloat(kind as FloatDType)) return x.dtype === kind ? x : ctx.fail('INVALID_MODEL', `internal: float ${x.dtype} in a ${ctx.dtype} run`);
  return convert(x, kind, `Cast of '${ctx.node.inputs[0]}'`);
}

function constantValue(ctx: OpContext): Tensor {
  const a = ctx.attrs;
  const t = a.tensor('value');
  if (t) return tensorFromProto(t, ctx.dtype, `Constant '${ctx.node.name}'`);
  if (a.has('value_float')) return ctx.constant([a.float('value_float')], [], 'float');
  if (a.has('value_floats')) {
    const v = a.floats('value_floats');
    return ctx.constant(v, [v.length], 'float');
  }
  if (a.has('value_int')) return ctx.constant([a.int('value_int')], [], 'int32');
  if (a.has('value_ints')) {
    const v = a.ints('value_ints');
    return ctx.constant(v, [v.length], 'int32');
  }
  if (a.has('value_string') || a.has('value_strings')) return ctx.fail('UNSUPPORTED_DTYPE', 'string constants are not supported (the engine has no string type)');
  if (a.has('sparse_value')) return ctx.fail('UNSUPPORTED_FEATURE', 'sparse constants are not supported');
  return ctx.fail('INVALID_MODEL', 'Constant has no value attribute');
}

// ---------------------------------------------------------------- the registry

export const OPSET: Readonly<Record<string, OpHandler>> = {
  // ---- elementwise arithmetic
  Add: binary(E.add, (x, y) => x + y),
  Sub: binary(E.sub, (x, y) => x - y),
  Mul: binary(E.mul, (x, y) => x * y),
  Div: binary(E.div, intDiv),
  Pow: {
    run(ctx, inputs) {
      const a = need(ctx, inputs, 0, 'X');
      const b = need(ctx, inputs, 1, 'Y');
      if (!isF(a)) return broadcastMap([a, b], 'int32', (x, y) => x ** y);
      // A constant scalar exponent (x^2 in decomposed LayerNorm...) is a unary op in the engine.
      if (b.size === 1 && b.rank <= a.rank && !b.requiresGrad) {
        const e = b.data[0];
        const y = E.pow(a, e);
        return b.rank === 0 ? y : E.reshape(y, broadcastShapes(a.shape, b.shape));
      }
      return E.pow(a, isF(b) ? b : convert(b, ctx.dtype));
    },
  },
  Mod: {
    nonDiff: 'all',
    run(ctx, inputs) {
      const a = need(ctx, inputs, 0, 'A');
      const b = need(ctx, inputs, 1, 'B');
      if (a.requiresGrad) ctx.fail('UNSUPPORTED_FEATURE', 'Mod has no gradient in the engine, and its input depends on trainable parameters');
      const fmod = ctx.attrs.int('fmod', 0) === 1;
      return broadcastMap([a, b], kindOf(a), (x, y) => (fmod ? x % y : x - Math.floor(x / y) * y));
    },
  },
  Neg: unary((x) => E.neg(x), (v) => -v),
  Abs: unary((x) => E.abs(x), (v) => Math.abs(v)),
  Exp: unary((x) => E.exp(x)),
  Log: unary((x) => E.log(x)),
  Sqrt: unary((x) => E.sqrt(x)),
  Reciprocal: unary((x) => E.div(1, x)),
  Tanh: unary((x) => E.tanh(x)),
  Sigmoid: unary((x) => E.sigmoid(x)),
  Relu: unary((x) => E.relu(x), (v) => Math.max(v, 0)),
  Erf: unary((x) => E.erf(x)),
  LeakyRelu: unary((x, ctx) => E.leakyRelu(x, ctx.attrs.float('alpha', 0.01))),
  Elu: unary((x, ctx) => elu(x, ctx.attrs.float('alpha', 1))),
  Selu: unary((x, ctx) => E.mulScalar(elu(x, ctx.attrs.float('alpha', 1.67326319217681884765625)), ctx.attrs.float('gamma', 1.05070102214813232421875))),
  Celu: unary((x, ctx) => {
    const alpha = ctx.attrs.float('alpha', 1);
    return E.add(E.relu(x), E.mulScalar(E.addScalar(E.exp(E.mulScalar(negPart(x), 1 / alpha)), -1), alpha));
  }),
  Softplus: unary((x) => softplus(x)),
  Softsign: unary((x) => E.div(x, E.addScalar(E.abs(x), 1))),
  Mish: unary((x) => E.mul(x, E.tanh(softplus(x)))),
  HardSigmoid: unary((x, ctx) => clipFloat(E.addScalar(E.mulScalar(x, ctx.attrs.float('alpha', 0.2)), ctx.attrs.float('beta', 0.5)), 0, 1)),
  HardSwish: unary((x) => E.mul(x, clipFloat(E.addScalar(E.mulScalar(x, 1 / 6), 0.5), 0, 1))),
  ThresholdedRelu: unary((x, ctx) => {
    const alpha = ctx.attrs.float('alpha', 1);
    return E.where(maskOf(x, (v) => v > alpha), x, 0);
  }),
  Shrink: unary((x, ctx) => {
    const lambd = ctx.attrs.float('lambd', 0.5);
    const bias = ctx.attrs.float('bias', 0);
    return E.where(maskOf(x, (v) => v < -lambd), E.addScalar(x, bias), E.where(maskOf(x, (v) => v > lambd), E.addScalar(x, -bias), 0));
  }),
  Gelu: unary((x, ctx) => {
    const approx = ctx.attrs.string('approximate', 'none');
    if (approx !== 'none' && approx !== 'tanh') ctx.fail('INVALID_MODEL', `unknown Gelu approximate '${approx}'`);
    return E.gelu(x, approx as 'none' | 'tanh');
  }),
  PRelu: {
    run(ctx, inputs) {
      const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'PRelu input');
      let slope = need(ctx, inputs, 1, 'slope');
      // Opset < 7 (and some exporters): a [C] slope applies per channel of [N, C, ...].
      if (slope.rank === 1 && x.rank > 2 && slope.shape[0] === x.shape[1] && slope.shape[0] !== x.shape[x.rank - 1]) {
        slope = E.reshape(slope, [slope.shape[0], ...new Array<number>(x.rank - 2).fill(1)]);
      }
      return E.sub(E.relu(x), E.mul(slope, E.relu(E.neg(x))));
    },
  },
  Clip: {
    nonDiff: [1, 2],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'input');
      let lo = -Infinity;
      let hi = Infinity;
      if (ctx.opset < 11) {
        lo = ctx.attrs.float('min', -Infinity);
        hi = ctx.attrs.float('max', Infinity);
      } else {
        if (inputs[1]) lo = scalarOf(ctx, inputs[1], 'min');
        if (inputs[2]) hi = scalarOf(ctx, inputs[2], 'max');
      }
      if (isF(x)) return clipFloat(x, lo, hi);
      return mapValues(x, kindOf(x), (v) => Math.min(Math.max(v, lo), hi));
    },
  },
  Max: { run: (ctx, inputs) => variadic(ctx, inputs, E.maximum, Math.max) },
  Min: { run: (ctx, inputs) => variadic(ctx, inputs, minimum, Math.min) },
  Sum: { run: (ctx, inputs) => variadic(ctx, inputs, E.add, (x, y) => x + y) },
  Mean: {
    run(ctx, inputs) {
      const n = inputs.filter((t) => t !== null).length;
      return E.mulScalar(variadic(ctx, inputs.map((t) => (t && !isF(t) ? convert(t, ctx.dtype) : t)), E.add, (x, y) => x + y), 1 / n);
    },
  },
  Floor: nonDiffUnary(Math.floor),
  Ceil: nonDiffUnary(Math.ceil),
  Round: nonDiffUnary(roundHalfEven),
  Sign: nonDiffUnary(Math.sign),
  Sin: nonDiffUnary(Math.sin),
  Cos: nonDiffUnary(Math.cos),
  Tan: nonDiffUnary(Math.tan),
  Atan: nonDiffUnary(Math.atan),
  IsNaN: nonDiffUnary((v) => (Number.isNaN(v) ? 1 : 0), 'bool'),
  IsInf: {
    nonDiff: 'all',
    run(ctx, inputs) {
      const pos = ctx.attrs.int('detect_positive', 1) === 1;
      const neg = ctx.attrs.int('detect_negative', 1) === 1;
      return maskOf(need(ctx, inputs, 0, 'X'), (v) => (v === Infinity && pos) || (v === -Infinity && neg));
    },
  },

  // ---- comparisons and logic (bool results, no gradients)
  Equal: compare((x, y) => x === y),
  Less: compare((x, y) => x < y),
  LessOrEqual: compare((x, y) => x <= y),
  Greater: compare((x, y) => x > y),
  GreaterOrEqual: compare((x, y) => x >= y),
  And: compare((x, y) => !!x && !!y),
  Or: compare((x, y) => !!x || !!y),
  Xor: compare((x, y) => !!x !== !!y),
  Not: { nonDiff: 'all', run: (ctx, inputs) => maskOf(need(ctx, inputs, 0, 'X'), (v) => !v) },
  Where: {
    nonDiff: [0],
    run(ctx, inputs) {
      const cond = need(ctx, inputs, 0, 'condition');
      let a = need(ctx, inputs, 1, 'X');
      let b = need(ctx, inputs, 2, 'Y');
      if (isF(a) || isF(b)) {
        if (!isF(a)) a = convert(a, ctx.dtype);
        if (!isF(b)) b = convert(b, ctx.dtype);
        return E.where(cond, a, b);
      }
      return broadcastMap([cond, a, b], kindOf(a), (c, x, y) => (c ? x : y));
    },
  },

  // ---- matrix products
  MatMul: { run: (ctx, inputs) => layout([need(ctx, inputs, 0, 'A'), need(ctx, inputs, 1, 'B')], ([a, b]) => E.matmul(a, b)) },
  Gemm: {
    run(ctx, inputs) {
      const a = ctx.attrs;
      return E.gemm(need(ctx, inputs, 0, 'A'), need(ctx, inputs, 1, 'B'), inputs[2] ?? null, {
        alpha: a.float('alpha', 1), beta: a.float('beta', 1), transA: a.int('transA', 0) === 1, transB: a.int('transB', 0) === 1,
      });
    },
  },

  // ---- shape and layout
  Identity: { run: (ctx, inputs) => need(ctx, inputs, 0, 'input') },
  Reshape: {
    nonDiff: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      const shape = ctx.opset >= 5 ? shapeValues(ctx, need(ctx, inputs, 1, 'shape'), 'shape') : ctx.attrs.ints('shape');
      return reshapeTo(ctx, x, shape, ctx.attrs.int('allowzero', 0) === 1);
    },
  },
  Flatten: {
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'input');
      const axis = ctx.attrs.int('axis', 1);
      const ax = axis < 0 ? axis + x.rank : axis;
      if (ax < 0 || ax > x.rank) ctx.fail('INVALID_MODEL', `Flatten axis ${axis} is out of range for rank ${x.rank}`);
      return E.reshape(x, [sizeOf(x.shape.slice(0, ax)), sizeOf(x.shape.slice(ax))]);
    },
  },
  Squeeze: {
    nonDiff: [1],
    run: (ctx, inputs) => squeezeAxes(need(ctx, inputs, 0, 'data'), axesArg(ctx, inputs, 13)),
  },
  Unsqueeze: {
    nonDiff: [1],
    run(ctx, inputs) {
      const axes = axesArg(ctx, inputs, 13);
      if (!axes) return ctx.fail('INVALID_MODEL', 'Unsqueeze needs axes');
      return unsqueezeAxes(need(ctx, inputs, 0, 'data'), axes);
    },
  },
  Transpose: {
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      const perm = ctx.attrs.ints('perm', x.shape.map((_, i) => x.rank - 1 - i));
      return layout([x], ([t]) => E.permute(t, perm));
    },
  },
  Concat: {
    run(ctx, inputs) {
      const xs = inputs.filter((t): t is Tensor => t !== null);
      if (xs.length === 0) ctx.fail('INVALID_MODEL', 'Concat needs inputs');
      const rank = xs[0].rank;
      const axis = axisOf(ctx, ctx.attrs.int('axis'), rank);
      const mixed = xs.some(isF) && !xs.every(isF);
      const parts = mixed ? xs.map((t) => (isF(t) ? t : convert(t, ctx.dtype))) : xs;
      return layout(parts, (ps) => E.concat(ps, axis));
    },
  },
  Split: {
    nonDiff: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'input');
      const axis = axisOf(ctx, ctx.attrs.int('axis', 0), x.rank);
      const dim = x.shape[axis];
      const count = ctx.node.outputs.length;
      let sizes: number[];
      const given = ctx.opset >= 13 ? (inputs[1] ? shapeValues(ctx, inputs[1], 'split') : null) : ctx.attrs.has('split') ? ctx.attrs.ints('split') : null;
      if (given && given.length > 0) sizes = given;
      else {
        const parts = ctx.opset >= 18 && ctx.attrs.has('num_outputs') ? ctx.attrs.int('num_outputs') : count;
        const chunk = Math.ceil(dim / parts);
        sizes = Array.from({ length: parts }, (_, i) => Math.max(0, Math.min(chunk, dim - i * chunk)));
      }
      if (sizes.reduce((p, q) => p + q, 0) !== dim) ctx.fail('INVALID_MODEL', `split sizes ${formatShape(sizes)} do not add up to dim ${axis} (${dim}) of ${formatShape(x.shape)}`);
      let at = 0;
      return sizes.map((n) => {
        const start = at;
        at += n;
        return layout([x], ([t]) => E.slice(t, { starts: [start], ends: [start + n], axes: [axis] }));
      });
    },
  },
  Slice: {
    nonDiff: [1, 2, 3, 4],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      let starts: number[];
      let ends: number[];
      let axes: number[] | undefined;
      let steps: number[] | undefined;
      if (ctx.opset < 10) {
        starts = ctx.attrs.ints('starts');
        ends = ctx.attrs.ints('ends');
        axes = ctx.attrs.has('axes') ? ctx.attrs.ints('axes') : undefined;
      } else {
        starts = shapeValues(ctx, need(ctx, inputs, 1, 'starts'), 'starts');
        ends = shapeValues(ctx, need(ctx, inputs, 2, 'ends'), 'ends');
        axes = inputs[3] ? shapeValues(ctx, inputs[3], 'axes') : undefined;
        steps = inputs[4] ? shapeValues(ctx, inputs[4], 'steps') : undefined;
      }
      return layout([x], ([t]) => E.slice(t, { starts, ends, axes, steps }));
    },
  },
  Gather: {
    nonDiff: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      const idx = need(ctx, inputs, 1, 'indices');
      const axis = axisOf(ctx, ctx.attrs.int('axis', 0), x.rank);
      return layout([x], ([t]) => E.gather(t, idx, axis));
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
      const flat = new Array<number>(idx.size);
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
      return layout([x], ([t]) => E.gather(E.reshape(t, [t.size]), makeConstant(flat, idx.shape, 'int32'), 0));
    },
  },
  Expand: {
    nonDiff: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'input');
      const shape = shapeValues(ctx, need(ctx, inputs, 1, 'shape'), 'shape');
      const target = broadcastShapes(x.shape, shape);
      checkSize(sizeOf(target), 'Expand output');
      return layout([x], ([t]) => E.broadcastTo(t, target));
    },
  },
  Tile: {
    nonDiff: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'input');
      const reps = shapeValues(ctx, need(ctx, inputs, 1, 'repeats'), 'repeats');
      if (reps.length !== x.rank) ctx.fail('INVALID_MODEL', `repeats ${formatShape(reps)} must have one entry per dim of ${formatShape(x.shape)}`);
      checkSize(x.size * sizeOf(reps), 'Tile output');
      // [a, b] -> [1, a, 1, b] -> expand [ra, a, rb, b] -> [ra*a, rb*b]
      return layout([x], ([t]) => {
        const inter = E.reshape(t, t.shape.flatMap((d) => [1, d]));
        const expanded = E.broadcastTo(inter, t.shape.flatMap((d, i) => [reps[i], d]));
        return E.reshape(expanded, t.shape.map((d, i) => d * reps[i]));
      });
    },
  },
  Pad: {
    nonDiff: [1, 2, 3],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      const mode = ctx.attrs.string('mode', 'constant');
      let pads: number[];
      let value = 0;
      let axes = x.shape.map((_, i) => i);
      if (ctx.opset < 11) {
        pads = ctx.attrs.ints(ctx.opset < 2 ? 'paddings' : 'pads');
        value = ctx.attrs.float('value', 0);
      } else {
        pads = shapeValues(ctx, need(ctx, inputs, 1, 'pads'), 'pads');
        if (inputs[2] && inputs[2].size > 0) value = scalarOf(ctx, inputs[2], 'constant_value');
        if (inputs[3]) axes = shapeValues(ctx, inputs[3], 'axes').map((a) => axisOf(ctx, a, x.rank));
      }
      if (pads.length !== 2 * axes.length) ctx.fail('INVALID_MODEL', `pads ${formatShape(pads)} must have 2 entries per padded axis (${axes.length})`);
      let y = x;
      axes.forEach((a, i) => {
        y = padAxis(ctx, y, a, pads[i], pads[i + axes.length], mode, value);
      });
      return y;
    },
  },
  Trilu: {
    nonDiff: [1],
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'input');
      const k = inputs[1] ? scalarOf(ctx, inputs[1], 'k') : 0;
      const upper = ctx.attrs.int('upper', 1) === 1;
      if (x.rank < 2) ctx.fail('INVALID_MODEL', `Trilu input must be at least 2-D, got ${formatShape(x.shape)}`);
      const [n, m] = x.shape.slice(-2);
      const keep = new Array<number>(n * m);
      for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) keep[i * m + j] = upper ? (j - i >= k ? 1 : 0) : j - i <= k ? 1 : 0;
      const mask = makeConstant(keep, [n, m], 'bool');
      if (isF(x)) return E.where(mask, x, 0);
      return broadcastMap([mask, x], kindOf(x), (c, v) => (c ? v : 0));
    },
  },

  // ---- shape computations (folded once input shapes are known)
  Shape: {
    nonDiff: 'all',
    shapeOnly: true,
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      const r = x.rank;
      const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
      const start = clamp(ctx.attrs.int('start', 0));
      const end = ctx.attrs.has('end') ? clamp(ctx.attrs.int('end')) : r;
      const dims = x.shape.slice(start, Math.max(start, end));
      return makeConstant(dims, [dims.length], 'int32');
    },
  },
  Size: { nonDiff: 'all', shapeOnly: true, run: (ctx, inputs) => makeConstant([need(ctx, inputs, 0, 'data').size], [], 'int32') },
  Constant: { run: (ctx) => constantValue(ctx) },
  ConstantOfShape: {
    nonDiff: 'all',
    run(ctx, inputs) {
      const shape = shapeValues(ctx, need(ctx, inputs, 0, 'input'), 'shape');
      if (shape.some((d) => !Number.isInteger(d) || d < 0)) ctx.fail('INVALID_MODEL', `invalid shape ${formatShape(shape)}`);
      checkSize(sizeOf(shape), 'ConstantOfShape output');
      const t = ctx.attrs.tensor('value');
      const v = t ? tensorFromProto(t, ctx.dtype, 'ConstantOfShape value') : makeConstant([0], [1], ctx.dtype);
      return makeConstant(new Array<number>(sizeOf(shape)).fill(v.data[0]), shape, v.dtype);
    },
  },
  Range: {
    nonDiff: 'all',
    run(ctx, inputs) {
      const start = need(ctx, inputs, 0, 'start');
      const s = scalarOf(ctx, start, 'start');
      const limit = scalarOf(ctx, need(ctx, inputs, 1, 'limit'), 'limit');
      const delta = scalarOf(ctx, need(ctx, inputs, 2, 'delta'), 'delta');
      if (delta === 0) ctx.fail('INVALID_MODEL', 'Range delta is 0');
      const n = Math.max(Math.ceil((limit - s) / delta), 0);
      checkSize(n, 'Range output');
      return makeConstant(Array.from({ length: n }, (_, i) => s + i * delta), [n], start.dtype);
    },
  },
  OneHot: {
    nonDiff: 'all',
    run(ctx, inputs) {
      const idx = need(ctx, inputs, 0, 'indices');
      const depth = Math.trunc(scalarOf(ctx, need(ctx, inputs, 1, 'depth'), 'depth'));
      const values = need(ctx, inputs, 2, 'values');
      const axisAttr = ctx.attrs.int('axis', -1);
      const rank = idx.rank + 1;
      const axis = axisOf(ctx, axisAttr, rank);
      const shape = [...idx.shape.slice(0, axis), depth, ...idx.shape.slice(axis)];
      const outer = sizeOf(idx.shape.slice(0, axis));
      const inner = sizeOf(idx.shape.slice(axis));
      const out = new Array<number>(sizeOf(shape)).fill(values.data[0]);
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          let k = idx.data[o * inner + i];
          if (k < 0) k += depth;
          if (k >= 0 && k < depth) out[(o * depth + k) * inner + i] = values.data[1];
        }
      }
      return makeConstant(out, shape, values.dtype);
    },
  },
  EyeLike: {
    nonDiff: 'all',
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'input');
      if (x.rank !== 2) ctx.fail('INVALID_MODEL', `EyeLike input must be 2-D, got ${formatShape(x.shape)}`);
      const k = ctx.attrs.int('k', 0);
      const [n, m] = x.shape;
      const out = new Array<number>(n * m).fill(0);
      for (let i = 0; i < n; i++) if (i + k >= 0 && i + k < m) out[i * m + i + k] = 1;
      const kind = ctx.attrs.has('dtype') ? kindForType(ctx, ctx.attrs.int('dtype')) : kindOf(x);
      return makeConstant(out, [n, m], kind);
    },
  },
  Cast: {
    run(ctx, inputs) {
      const to = ctx.attrs.int('to');
      if (to === DataType.STRING) ctx.fail('UNSUPPORTED_DTYPE', `Cast to ${dataTypeName(to)} is not supported (the engine has no string type)`);
      return castTo(ctx, need(ctx, inputs, 0, 'input'), kindForType(ctx, to));
    },
  },
  CastLike: {
    nonDiff: [1],
    run(ctx, inputs) {
      const target = need(ctx, inputs, 1, 'target_type');
      return castTo(ctx, need(ctx, inputs, 0, 'input'), kindOf(target));
    },
  },

  // ---- reductions
  ReduceSum: reduceHandler(13, (x, axes, keep) => E.sum(x, axes, keep)),
  ReduceMean: reduceHandler(18, (x, axes, keep) => E.mean(x, axes, keep)),
  ReduceMax: reduceHandler(18, (x, axes, keep) => E.max(x, axes, keep)),
  ReduceMin: reduceHandler(18, (x, axes, keep) => E.neg(E.max(E.neg(x), axes, keep))),
  ReduceSumSquare: reduceHandler(18, (x, axes, keep) => E.sum(E.square(x), axes, keep)),
  ReduceL1: reduceHandler(18, (x, axes, keep) => E.sum(E.abs(x), axes, keep)),
  ReduceL2: reduceHandler(18, (x, axes, keep) => E.sqrt(E.sum(E.square(x), axes, keep))),
  ReduceLogSum: reduceHandler(18, (x, axes, keep) => E.log(E.sum(x, axes, keep))),
  ReduceLogSumExp: reduceHandler(18, logSumExp),
  ReduceProd: reduceHandler(18, reduceProd),
  ArgMax: { nonDiff: 'all', run: (ctx, inputs) => argReduce(ctx, inputs, (a, b) => a > b) },
  ArgMin: { nonDiff: 'all', run: (ctx, inputs) => argReduce(ctx, inputs, (a, b) => a < b) },

  // ---- softmax family
  Softmax: { run: (ctx, inputs) => softmaxLike(ctx, floatIn(ctx, need(ctx, inputs, 0, 'input'), 'Softmax input'), E.softmax) },
  LogSoftmax: { run: (ctx, inputs) => softmaxLike(ctx, floatIn(ctx, need(ctx, inputs, 0, 'input'), 'LogSoftmax input'), E.logSoftmax) },
  Hardmax: { nonDiff: 'all', run: (ctx, inputs) => softmaxLike(ctx, need(ctx, inputs, 0, 'input'), hardmax) },

  // ---- convolution, pooling, normalization
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
  BatchNormalization: batchNormalization,
  InstanceNormalization: instanceNormalization,
  LayerNormalization: layerNormalization,
  RMSNormalization: {
    run(ctx, inputs) {
      const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'RMSNormalization input');
      const axis = axisOf(ctx, ctx.attrs.int('axis', -1), x.rank);
      return E.rmsNorm(x, x.shape.slice(axis), need(ctx, inputs, 1, 'scale'), ctx.attrs.float('epsilon', 1e-5));
    },
  },
  LpNormalization: {
    run(ctx, inputs) {
      const x = floatIn(ctx, need(ctx, inputs, 0, 'input'), 'LpNormalization input');
      const axis = axisOf(ctx, ctx.attrs.int('axis', -1), x.rank);
      const p = ctx.attrs.int('p', 2);
      const norm = p === 1 ? E.sum(E.abs(x), axis, true) : E.sqrt(E.sum(E.square(x), axis, true));
      return E.div(x, norm);
    },
  },
  Dropout: {
    nonDiff: [1, 2],
    stochastic: true,
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      let ratio = 0.5;
      let modelTraining = false;
      if (ctx.opset >= 12) {
        if (inputs[1]) ratio = scalarOf(ctx, inputs[1], 'ratio');
        if (inputs[2]) modelTraining = !!scalarOf(ctx, inputs[2], 'training_mode');
      } else {
        ratio = ctx.attrs.float('ratio', 0.5);
        modelTraining = ctx.opset < 7 ? ctx.attrs.int('is_test', 0) === 0 : false;
      }
      const training = ctx.training ?? modelTraining;
      const seed = ctx.attrs.has('seed') ? ctx.attrs.int('seed') : undefined;
      const y = E.dropout(floatIn(ctx, x, 'Dropout input'), ratio, seed !== undefined ? { training, seed } : { training, rng: ctx.rng });
      if (!ctx.wants(1)) return y;
      return [y, E.dropoutMaskOf(y) ?? makeConstant(new Array<number>(x.size).fill(1), x.shape, 'bool')];
    },
  },
  SoftmaxCrossEntropyLoss: softmaxCrossEntropyLoss,
  NegativeLogLikelihoodLoss: negativeLogLikelihoodLoss,
};

/** Op types of the default domain the importer maps (sorted). */
export function supportedOps(): string[] {
  return Object.keys(OPSET).sort();
}

/** Whether input `slot` of an op can carry a gradient (used to decide which initializers are trainable). */
export function isDifferentiableSlot(opType: string, slot: number): boolean {
  const h = OPSET[opType];
  if (!h) return true;
  if (h.nonDiff === 'all') return false;
  return !(h.nonDiff ?? []).includes(slot);
}

