/** Elementwise ONNX ops: arithmetic, activations, clipping, rounding, comparisons and logic. */
import { Tensor } from '../../tensor';
import { broadcastShapes } from '../../shape';
import * as E from '../../ops';
import { noGrad } from '../../autograd';
import { OpContext } from '../context';
import { broadcastMap, convert, mapValues } from '../helpers';
import { AnyOpHandler, OpHandler, ValueOpHandler, floatIn, isF, kindOf, legacyBroadcast, need, scalarOf } from './common';
import { StringTensor, describeValue, stringEqual } from '../values';


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

/**
 * Hyperbolic functions and their inverses composed of exp, log and sqrt, so they differentiate on every
 * backend. Near 0, sinh, asinh and atanh lose relative precision to cancellation (absolute error about one
 * float32 ulp of 1, ~1e-7), as a gradient tool can accept; cosh and acosh have no cancellation.
 */
const sinh = (x: Tensor): Tensor => E.mulScalar(E.sub(E.exp(x), E.exp(E.neg(x))), 0.5);
const cosh = (x: Tensor): Tensor => E.mulScalar(E.add(E.exp(x), E.exp(E.neg(x))), 0.5);
/**
 * asinh(x) = s * log(a + sqrt(a^2 + 1)) with a = s * x and s = +-1 the sign of x (+1 at 0, a constant):
 * evaluated on |x| so large negative x do not cancel, and the gradient 1 / sqrt(x^2 + 1) holds at 0 too.
 * s comes from kernels only (max, compare), so a tensor on a device stays there.
 */
const asinh = (x: Tensor): Tensor => {
  const s = noGrad(() => E.addScalar(E.mulScalar(E.equalMask(E.maximum(x, 0), x), 2), -1));
  const a = E.mul(x, s);
  return E.mul(E.log(E.add(a, E.sqrt(E.addScalar(E.square(a), 1)))), s);
};
const acosh = (x: Tensor): Tensor => E.log(E.add(x, E.sqrt(E.addScalar(E.square(x), -1))));
const atanh = (x: Tensor): Tensor => E.mulScalar(E.sub(E.log(E.addScalar(x, 1)), E.log(E.addScalar(E.neg(x), 1))), 0.5);

function clipFloat(x: Tensor, lo: number, hi: number): Tensor {
  // Values computed on a device: kernels only (same values and gradient, except 0 instead of 1 at NaN, as torch).
  if (x.isOnDevice) return E.clamp(x, lo, hi);
  // min(max(x, lo), hi): hi everywhere when lo > hi (numpy, onnxruntime, torch.clamp). Gradient 1 inside
  // [lo, hi] (bounds included, like torch.clamp), 0 outside.
  let y = x;
  if (lo > -Infinity) y = E.where(boundMask(y, lo, true), lo, y);
  if (hi < Infinity) y = E.where(boundMask(y, hi, false), hi, y);
  return y;
}

/**
 * x < bound (below) or x > bound as a bool mask (NaN: 0), in one plain loop: Clip builds these on whole
 * activations every step, where a generic map's per-element callbacks cost as much as the model's kernels.
 * (HardSigmoid and HardSwish have their own op, E.hardSigmoid.)
 */
function boundMask(x: Tensor, bound: number, below: boolean): Tensor {
  const d = x.data;
  const m = new Uint8Array(x.size);
  if (below) for (let i = 0; i < m.length; i++) m[i] = d[i] < bound ? 1 : 0;
  else for (let i = 0; i < m.length; i++) m[i] = d[i] > bound ? 1 : 0;
  return new Tensor(m, x.shape);
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

const equalNumbers = compare((x, y) => x === y);

/** Equal on numbers and bool (compare), and on string tensors (values.ts: host strings, no gradient). */
const equal: ValueOpHandler = {
  nonDiff: 'all',
  runValues(ctx, inputs) {
    const a = inputs[0];
    const b = inputs[1];
    if (a instanceof StringTensor && b instanceof StringTensor) return stringEqual(a, b);
    if ((a === null || a instanceof Tensor) && (b === null || b instanceof Tensor)) return equalNumbers.run(ctx, [a, b]);
    return ctx.fail(a instanceof StringTensor || b instanceof StringTensor ? 'INVALID_MODEL' : 'UNSUPPORTED_DTYPE', `compares ${describeValue(a)} with ${describeValue(b)}; Equal takes two string tensors or two tensors of numbers / bool`);
  },
};

export const ELEMENTWISE_OPS: Readonly<Record<string, AnyOpHandler>> = {
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
    run(ctx, inputs) {
      const a = need(ctx, inputs, 0, 'A');
      const b = need(ctx, inputs, 1, 'B');
      const fmod = ctx.attrs.flag('fmod', false);
      const int = !isF(a);
      const y = broadcastMap([a, b], kindOf(a), (x, v) => {
        if (int && v === 0) throw new RangeError('integer modulo by zero');
        return fmod ? x % v : x - Math.floor(x / v) * v;
      });
      if (int || (!a.requiresGrad && !b.requiresGrad)) return y;
      // Gradients as PyTorch's remainder / fmod: 1 for A, -q for B with q = floor(A / B) (trunc for fmod),
      // through a - b q; the values stay the exact ones: y + (a - b q) - detach(a - b q) adds exactly 0.
      // The quotient is taken on the host (a device-computed input throws TensorOnDeviceError: host path).
      const q = broadcastMap([a, b], kindOf(a), (x, v) => (fmod ? Math.trunc(x / v) : Math.floor(x / v)));
      const through = E.sub(a, E.mul(b, q));
      return E.add(y, E.sub(through, through.detach()));
    },
  },
  BitShift: {
    nonDiff: 'all',
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'X');
      const y = need(ctx, inputs, 1, 'Y');
      if (isF(x) || isF(y)) ctx.fail('INVALID_MODEL', `BitShift takes unsigned integer tensors, got ${x.dtype} and ${y.dtype}`);
      const direction = ctx.attrs.string('direction');
      if (direction !== 'LEFT' && direction !== 'RIGHT') ctx.fail('INVALID_MODEL', `BitShift direction must be LEFT or RIGHT, got '${direction}'`);
      // Left shifts drop the bits above the declared width (uint8/16/32/64).
      const bits = ({ 2: 8, 4: 16, 12: 32, 13: 64 } as Record<number, number>)[ctx.declaredType(0)] ?? 32;
      const m = 2 ** bits;
      return broadcastMap([x, y], 'int32', (a, s) => (direction === 'LEFT' ? (a * 2 ** s) % m : Math.floor(a / 2 ** s)), 'BitShift result');
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
  HardSigmoid: unary((x, ctx) => E.hardSigmoid(x, ctx.attrs.float('alpha', 0.2), ctx.attrs.float('beta', 0.5))),
  HardSwish: unary((x) => E.hardSigmoid(x, 1 / 6, 0.5, true)),
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
  Sin: unary((x) => E.sin(x)),
  Cos: unary((x) => E.cos(x)),
  Tan: unary((x) => E.tan(x)),
  Asin: unary((x) => E.asin(x)),
  Acos: unary((x) => E.acos(x)),
  Atan: unary((x) => E.atan(x)),
  Sinh: unary(sinh),
  Cosh: unary(cosh),
  Asinh: unary(asinh),
  Acosh: unary(acosh),
  Atanh: unary(atanh),
  IsNaN: nonDiffUnary((v) => (Number.isNaN(v) ? 1 : 0), 'bool'),
  IsInf: {
    nonDiff: 'all',
    run(ctx, inputs) {
      const pos = ctx.attrs.flag('detect_positive', true);
      const neg = ctx.attrs.flag('detect_negative', true);
      return maskOf(need(ctx, inputs, 0, 'X'), (v) => (v === Infinity && pos) || (v === -Infinity && neg));
    },
  },
  Equal: equal,
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
};
