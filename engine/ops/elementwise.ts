import { Tensor, tensorFrom } from '../tensor';
import { record } from '../autograd';
import { binaryK, unaryK } from '../backend/dispatch';
import { BinaryKernel, UnaryKernel } from '../backend/backend';
import { Shape, reducedAxesForBroadcast, shapeEquals } from '../shape';
import { broadcastTo, reshape } from './layout';
import { where } from './indexing';
import { sum } from './reduce';
import { swishProduct } from './swish';

/** A tensor or a plain number (taken as a scalar of the other operand's dtype). */
export type Operand = Tensor | number;

function asTensor(v: Operand, like: Operand): Tensor {
  if (v instanceof Tensor) return v;
  const dtype = like instanceof Tensor && like.dtype === 'float64' ? 'float64' : 'float32';
  return tensorFrom([v], [], dtype);
}

/** Sums a broadcast gradient back down to the operand's shape. */
export function unbroadcast(g: Tensor, shape: Shape): Tensor {
  if (shapeEquals(g.shape, shape)) return g;
  return reshape(sum(g, reducedAxesForBroadcast(shape, g.shape), true), shape);
}


/** `wants`: which operands require grad; a VJP computes only those (a Mul by a constant needs one product, not two). */
type BinaryVjp = (g: Tensor, a: Tensor, b: Tensor, out: Tensor, wants: readonly [boolean, boolean]) => [Tensor | null, Tensor | null];

function binaryOp(op: string, kernel: BinaryKernel, x: Operand, y: Operand, vjp: BinaryVjp): Tensor {
  const a = asTensor(x, y);
  const b = asTensor(y, x);
  const out = binaryK(kernel, a, b, 0, op);
  return record(op, [a, b], out, (g) => {
    const [ga, gb] = vjp(g, a, b, out, [a.requiresGrad, b.requiresGrad]);
    return [a.requiresGrad && ga ? unbroadcast(ga, a.shape) : null, b.requiresGrad && gb ? unbroadcast(gb, b.shape) : null];
  });
}

type UnaryVjp = (g: Tensor, x: Tensor, y: Tensor) => Tensor;

function unaryOp(op: string, kernel: UnaryKernel, x: Tensor, param: number, vjp: UnaryVjp): Tensor {
  const out = unaryK(kernel, x, param, op);
  return record(op, [x], out, (g) => [vjp(g, x, out)]);
}

/** A fused VJP kernel (g, saved) -> input gradient, all the same shape. */
function fusedGrad(kernel: BinaryKernel, g: Tensor, saved: Tensor, param = 0): Tensor {
  return binaryK(kernel, g, saved, param);
}

export const add = (a: Operand, b: Operand): Tensor => binaryOp('add', 'add', a, b, (g) => [g, g]);
export const sub = (a: Operand, b: Operand): Tensor => binaryOp('sub', 'sub', a, b, (g, _x, _y, _out, [, wb]) => [g, wb ? neg(g) : null]);
export const mul = (a: Operand, b: Operand): Tensor =>
  swishProduct(a, b) ?? swishProduct(b, a) ??
  binaryOp('mul', 'mul', a, b, (g, x, y, _out, [wa, wb]) => [wa ? mul(g, y) : null, wb ? mul(g, x) : null]);
export const div = (a: Operand, b: Operand): Tensor =>
  binaryOp('div', 'div', a, b, (g, _x, y, out, [wa, wb]) => [wa ? div(g, y) : null, wb ? neg(div(mul(g, out), y)) : null]);

/** Elementwise max of two tensors; the gradient goes to the larger operand (split evenly on ties, as PyTorch). */
export const maximum = (a: Operand, b: Operand): Tensor =>
  binaryOp('maximum', 'max', a, b, (g, x, y, out) => {
    const xWins = binaryK('eq', x, out, 0, 'maximum');
    const yWins = binaryK('eq', y, out, 0, 'maximum');
    const share = div(g, add(xWins, yWins));
    return [mul(share, xWins), mul(share, yWins)];
  });

/**
 * a ** b. With a number exponent this is a unary op; with a tensor exponent both sides get
 * gradients, and d/db is 0 where a == 0 and b >= 0, as in PyTorch (instead of 0 * log 0 = NaN).
 */
export function pow(a: Tensor, b: Operand): Tensor {
  if (typeof b === 'number') {
    return unaryOp('pow', 'powScalar', a, b, (g, x) => (b === 0 ? mulScalar(g, 0) : mul(g, mulScalar(powScalarRaw(x, b - 1), b))));
  }
  return binaryOp('pow', 'pow', a, b, (g, x, y, out, [wa, wb]) => {
    const ga = wa ? mul(g, mul(y, pow(x, sub(y, 1)))) : null;
    if (!wb) return [ga, null];
    const gb = mul(g, mul(out, log(x)));
    // The mask needs the values on the host: a device run fails loudly here (TensorOnDeviceError).
    const xb = broadcastTo(x, gb.shape);
    const yb = broadcastTo(y, gb.shape);
    const zeroBase = new Uint8Array(gb.size);
    for (let i = 0; i < gb.size; i++) zeroBase[i] = xb.data[i] === 0 && yb.data[i] >= 0 ? 1 : 0;
    return [ga, where(new Tensor(zeroBase, gb.shape), 0, gb)];
  });
}

function powScalarRaw(x: Tensor, e: number): Tensor {
  return unaryK('powScalar', x, e, 'pow');
}

export const neg = (x: Tensor): Tensor => unaryOp('neg', 'neg', x, 0, (g) => neg(g));
export const exp = (x: Tensor): Tensor => unaryOp('exp', 'exp', x, 0, (g, _x, y) => mul(g, y));
export const log = (x: Tensor): Tensor => unaryOp('log', 'log', x, 0, (g, x0) => div(g, x0));
export const sqrt = (x: Tensor): Tensor => unaryOp('sqrt', 'sqrt', x, 0, (g, _x, y) => div(g, mulScalar(y, 2)));
export const abs = (x: Tensor): Tensor => unaryOp('abs', 'abs', x, 0, (g, x0) => fusedGrad('absGrad', g, x0));
export const tanh = (x: Tensor): Tensor => unaryOp('tanh', 'tanh', x, 0, (g, _x, y) => fusedGrad('tanhGrad', g, y));
export const sigmoid = (x: Tensor): Tensor => unaryOp('sigmoid', 'sigmoid', x, 0, (g, _x, y) => fusedGrad('sigmoidGrad', g, y));
export const relu = (x: Tensor): Tensor => unaryOp('relu', 'relu', x, 0, (g, x0) => fusedGrad('reluGrad', g, x0));
export const erf = (x: Tensor): Tensor => unaryOp('erf', 'erf', x, 0, (g, x0) => fusedGrad('erfGrad', g, x0));

export function leakyRelu(x: Tensor, negativeSlope = 0.01): Tensor {
  return unaryOp('leaky_relu', 'leakyRelu', x, negativeSlope, (g, x0) => fusedGrad('leakyReluGrad', g, x0, negativeSlope));
}

/** GELU, exact (erf) by default or the tanh approximation, as torch.nn.functional.gelu. */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return unaryOp('gelu', approximate === 'tanh' ? 'geluTanh' : 'gelu', x, 0, (g, x0) => geluVjp(g, x0, approximate));
}

/** GELU's VJP: g · gelu'(x), one fused kernel. */
const geluVjp = (g: Tensor, x: Tensor, approximate: 'none' | 'tanh'): Tensor =>
  fusedGrad(approximate === 'tanh' ? 'geluTanhGrad' : 'geluGrad', g, x);

/**
 * Makes `out`, which other ops already computed as gelu(x) (an exporter's Div/Erf/Add/Mul/Mul decomposition),
 * differentiate as GELU of `x`: its own recorded graph is replaced by GELU's VJP (engine/onnx/activationFusion.ts).
 * The caller vouches that `out` holds gelu(x) and that nothing needs gradients of the values in between.
 */
export function recordGeluOf(out: Tensor, x: Tensor, approximate: 'none' | 'tanh'): void {
  if (!x.requiresGrad || !shapeEquals(out.shape, x.shape)) throw new Error('internal: recordGeluOf needs a same-shaped input that requires grad');
  out.requiresGrad = true;
  out.gradFn = { op: 'gelu', inputs: [x], backward: (g) => [geluVjp(g, x, approximate)] };
}

/**
 * Clamp to [lo, hi] as torch.clamp, from kernels only (so it runs on a device): min(max(x, lo), hi), so
 * every value is hi when lo > hi (as torch.clamp, numpy.clip and ONNX Clip); the gradient is 1 inside
 * the range (bounds included) and 0 outside and at NaN.
 */
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  if (lo === -Infinity && hi === Infinity) return x;
  const bound = (v: number) => tensorFrom([v], [], x.dtype === 'float64' ? 'float64' : 'float32');
  let y = x;
  if (lo > -Infinity) y = binaryK('max', y, bound(lo), 0, 'clamp');
  if (hi < Infinity) y = binaryK('min', y, bound(hi), 0, 'clamp');
  const out = y;
  return record('clamp', [x], out, (g) => [mul(g, binaryK('eq', out, x, 0, 'clamp'))]);
}

/** 1 where a == b, else 0 (broadcast), as a constant (no gradient): a mask for composites that run on any backend. */
export const equalMask = (a: Operand, b: Operand): Tensor => binaryK('eq', asTensor(a, b), asTensor(b, a), 0, 'equal');

/**
 * Trigonometric functions (sin, cos, tan and their inverses), one kernel each on every backend; VJPs from
 * engine ops, so they differentiate twice: sin' = cos, cos' = -sin, tan' = 1 + tan^2, asin' = 1/sqrt(1 - x^2)
 * = -acos', atan' = 1/(1 + x^2).
 */
export const sin = (x: Tensor): Tensor => unaryOp('sin', 'sin', x, 0, (g, x0) => mul(g, cos(x0)));
export const cos = (x: Tensor): Tensor => unaryOp('cos', 'cos', x, 0, (g, x0) => neg(mul(g, sin(x0))));
export const tan = (x: Tensor): Tensor => unaryOp('tan', 'tan', x, 0, (g, _x, y) => mul(g, addScalar(square(y), 1)));
/** 1/sqrt(1 - x^2) with 1 - x^2 as (1 - x)(1 + x): exact factors near |x| = 1, where 1 - x*x cancels in float32. */
const invSqrtOneMinusSquare = (x: Tensor): Tensor => rsqrt(mul(addScalar(neg(x), 1), addScalar(x, 1)));
export const asin = (x: Tensor): Tensor => unaryOp('asin', 'asin', x, 0, (g, x0) => mul(g, invSqrtOneMinusSquare(x0)));
export const acos = (x: Tensor): Tensor => unaryOp('acos', 'acos', x, 0, (g, x0) => neg(mul(g, invSqrtOneMinusSquare(x0))));
export const atan = (x: Tensor): Tensor => unaryOp('atan', 'atan', x, 0, (g, x0) => div(g, addScalar(square(x0), 1)));

export const mulScalar = (x: Tensor, s: number): Tensor => unaryOp('mul', 'scale', x, s, (g) => mulScalar(g, s));
export const addScalar = (x: Tensor, s: number): Tensor => unaryOp('add', 'addScalar', x, s, (g) => g);
export const square = (x: Tensor): Tensor => unaryOp('square', 'square', x, 0, (g, x0) => mul(g, mulScalar(x0, 2)));
export const rsqrt = (x: Tensor): Tensor =>
  unaryOp('rsqrt', 'rsqrt', x, 0, (g, _x, y) => mul(g, mulScalar(mul(y, mul(y, y)), -0.5)));
