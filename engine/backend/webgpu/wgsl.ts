/**
 * WGSL sources of the WebGPU kernels (float32; int32 for indices; bool masks as packed bytes).
 *
 * Every kernel reads its scalar parameters from one uniform block with the same layout
 * (`Params`, 208 bytes, one 256-byte slot per dispatch; see ParamBlock in ./device.ts):
 *   i[0..15]  integer parameters (sizes, ranks, flags, geometry)
 *   f[0..3]   float parameters (op param, eps)
 *   d[0..31]  dims: d[0..7] shape, d[8..15] strides of operand 0, d[16..23] operand 1, d[24..31] operand 2
 * Storage bindings start at 1. Linear kernels use 256-thread workgroups and a 2-D grid
 * (x up to 65535 workgroups) so any element count fits; row kernels use one workgroup per row.
 *
 * Special functions are written out rather than taken from WGSL builtins where the builtins lose
 * accuracy or overflow (tanh, pow of negative bases, erf, GELU tails): the results have to match the
 * float64 reference to 1e-4 relative.
 */
import { BinaryKernel, UnaryKernel } from '../backend';

export const WG = 256;
/** Largest broadcast/strided rank after dimension merging (d[] holds 8 per operand). */
export const MAX_RANK = 8;

const PREAMBLE = /* wgsl */ `
struct Params {
  i: array<vec4<i32>, 4>,
  f: vec4<f32>,
  d: array<vec4<i32>, 8>,
}
@group(0) @binding(0) var<uniform> P: Params;
fn pi(k: u32) -> i32 { return P.i[k >> 2u][k & 3u]; }
fn pu(k: u32) -> u32 { return u32(P.i[k >> 2u][k & 3u]); }
fn pd(k: u32) -> i32 { return P.d[k >> 2u][k & 3u]; }
// Built at run time from bit patterns: WGSL has no infinity or NaN literals.
fn f32nan() -> f32 { var b = 0x7fc00000u; return bitcast<f32>(b); }
fn f32inf() -> f32 { var b = 0x7f800000u; return bitcast<f32>(b); }
fn isnan32(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn isneginf32(x: f32) -> bool { return bitcast<u32>(x) == 0xff800000u; }
// exp with IEEE special values and ~1 ulp everywhere. WGSL only promises 3 + 2|x| ulp for exp (and
// SwiftShader returns inf for exp(NaN)), so: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, a
// degree-7 Taylor polynomial for e^r (truncation < 1e-8), and 2^n applied in two halves so results
// near the overflow/underflow limits round once.
fn exp_(x: f32) -> f32 {
  if (isnan32(x)) { return x; }
  if (x > 88.72284) { return f32inf(); }
  if (x < -103.97208) { return 0.0; }
  let n = round(x * 1.4426950408889634);
  let r = (x - n * 0.693359375) + n * 2.12194440e-4;
  let p = 1.0 + r * (1.0 + r * (0.5 + r * (0.16666667 + r * (0.041666668 + r * (0.008333334 + r * (0.0013888889 + r * 0.0001984127))))));
  let k = i32(n);
  let h = k / 2;
  return ldexp(p, h) * ldexp(1.0, k - h);
}
// log with IEEE special values: SwiftShader's builtin returns finite values for log(NaN), log(0)
// and log of negatives.
fn log_(x: f32) -> f32 {
  if (isnan32(x) || x < 0.0) { return f32nan(); }
  if (x == 0.0) { return -f32inf(); }
  if (x == f32inf()) { return x; }
  return log(x);
}
fn linearIndex(gid: vec3<u32>, nw: vec3<u32>) -> u32 { return gid.x + gid.y * nw.x * ${WG}u; }
fn rowIndex(wid: vec3<u32>, nw: vec3<u32>) -> u32 { return wid.x + wid.y * nw.x; }
// Element offsets into up to three strided operands of flat output index i (shape d[0..rank)).
fn offsets3(i: u32, rank: u32) -> vec3<i32> {
  if (rank == 1u) { return i32(i) * vec3<i32>(P.d[2].x, P.d[4].x, P.d[6].x); }
  var rem = i;
  var o = vec3<i32>(0, 0, 0);
  for (var d = i32(rank) - 1; d >= 0; d = d - 1) {
    let du = u32(d);
    let size = u32(pd(du));
    let c = i32(rem % size);
    rem = rem / size;
    o = o + c * vec3<i32>(pd(8u + du), pd(16u + du), pd(24u + du));
  }
  return o;
}
`;

const MATH = /* wgsl */ `
const SQRT_HALF: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;
const TWO_OVER_SQRT_PI: f32 = 1.1283791670955126;
const GELU_C: f32 = 0.7978845608028654;

fn sigmoid_(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp_(-x)); }
  let e = exp_(x);
  return e / (1.0 + e);
}
fn tanh_(x: f32) -> f32 {
  if (isnan32(x)) { return x; }
  let a = abs(x);
  if (a < 0.125) {
    let x2 = x * x;
    return x * (1.0 + x2 * (-0.3333333333 + x2 * (0.1333333333 + x2 * (-0.0539682540 + x2 * 0.0218694885))));
  }
  let e = exp_(2.0 * min(a, 20.0));
  let t = 1.0 - 2.0 / (e + 1.0);
  return select(t, -t, x < 0.0);
}
// Trigonometric functions. WGSL's builtins promise only 2^-11 absolute error for sin/cos on [-pi, pi] (and
// nothing outside), so these are written out: Cody-Waite reduction x = k pi/2 + r, |r| <= pi/4, with pi/2
// in three parts (k times the first part is exact for |k| < 2^15), then Cephes' float32 minimax
// polynomials (sinf, cosf, atanf, asinf: relative error ~1e-7 on their ranges). Known limit: sin, cos and
// tan are accurate for |x| < 2^15 pi/2 (~51000, e.g. positional encodings of 32k-token contexts); beyond,
// a float32 reduction without Payne-Hanek has no digits left, and the builtin's value is returned.
fn sinPoly(r: f32) -> f32 {
  let z = r * r;
  return r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
}
fn cosPoly(r: f32) -> f32 {
  let z = r * r;
  return 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
}
// (r, k): x = k pi/2 + r.
fn halfPiReduce(x: f32) -> vec2<f32> {
  let k = round(x * 0.6366197723675814);
  return vec2<f32>(((x - k * 1.5703125) - k * 4.837512969970703125e-4) - k * 7.54978995489188216e-8, k);
}
fn quadrant(k: f32) -> i32 { return i32(k - 4.0 * floor(k * 0.25)); }
const TRIG_REDUCE_MAX: f32 = 51471.0;
fn sin_(x: f32) -> f32 {
  if (isnan32(x) || abs(x) == f32inf()) { return f32nan(); }
  if (abs(x) > TRIG_REDUCE_MAX) { return sin(x); }
  let rk = halfPiReduce(x);
  let q = quadrant(rk.y);
  let s = select(sinPoly(rk.x), cosPoly(rk.x), (q & 1) == 1);
  return select(s, -s, q >= 2);
}
fn cos_(x: f32) -> f32 {
  if (isnan32(x) || abs(x) == f32inf()) { return f32nan(); }
  if (abs(x) > TRIG_REDUCE_MAX) { return cos(x); }
  let rk = halfPiReduce(x);
  let q = quadrant(rk.y);
  let c = select(cosPoly(rk.x), sinPoly(rk.x), (q & 1) == 1);
  return select(c, -c, q == 1 || q == 2);
}
fn tan_(x: f32) -> f32 {
  if (isnan32(x) || abs(x) == f32inf()) { return f32nan(); }
  if (abs(x) > TRIG_REDUCE_MAX) { return tan(x); }
  let rk = halfPiReduce(x);
  let s = sinPoly(rk.x);
  let c = cosPoly(rk.x);
  return select(s / c, -c / s, (quadrant(rk.y) & 1) == 1);
}
fn atan_(x: f32) -> f32 {
  if (isnan32(x)) { return x; }
  let a = abs(x);
  var y0 = 0.0;
  var t = a;
  if (a > 2.414213562373095) { y0 = 1.5707963267948966; t = -1.0 / a; }
  else if (a > 0.41421356237309503) { y0 = 0.7853981633974483; t = (a - 1.0) / (a + 1.0); }
  let z = t * t;
  let y = y0 + ((((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z - 3.33329491539e-1) * z * t + t);
  return select(y, -y, x < 0.0);
}
// asin of 0 <= a <= 1: near 1 through asin(a) = pi/2 - 2 asin(sqrt((1 - a) / 2)), which keeps its digits.
fn asinPos(a: f32) -> f32 {
  let big = a > 0.5;
  let z = select(a * a, 0.5 * (1.0 - a), big);
  let t = select(a, sqrt(z), big);
  let y = ((((4.2163199048e-2 * z + 2.4181311049e-2) * z + 4.5470025998e-2) * z + 7.4953002686e-2) * z + 1.6666752422e-1) * z * t + t;
  return select(y, 1.5707963267948966 - 2.0 * y, big);
}
fn asin_(x: f32) -> f32 {
  if (isnan32(x) || abs(x) > 1.0) { return f32nan(); }
  let y = asinPos(abs(x));
  return select(y, -y, x < 0.0);
}
// acos near +-1 from asin of the half-angle, so small results keep their relative precision.
fn acos_(x: f32) -> f32 {
  if (isnan32(x) || abs(x) > 1.0) { return f32nan(); }
  if (x > 0.5) { return 2.0 * asinPos(sqrt(0.5 * (1.0 - x))); }
  if (x < -0.5) { return 3.141592653589793 - 2.0 * asinPos(sqrt(0.5 * (1.0 + x))); }
  return 1.5707963267948966 - asin_(x);
}
// erfc for z >= 0 (Numerical Recipes erfcc: fractional error < 1.2e-7).
fn erfcPos(z: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.5 * z);
  let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  return t * exp_(-z * z + poly);
}
fn erf_(x: f32) -> f32 {
  if (isnan32(x)) { return x; }
  let a = abs(x);
  if (a < 2.0) {
    // Maclaurin series, as the reference.
    let x2 = x * x;
    var term = x;
    var sum = x;
    for (var n = 1; n < 48; n = n + 1) {
      term = term * (-x2 / f32(n));
      let add = term / f32(2 * n + 1);
      sum = sum + add;
      if (abs(add) < 1e-9 * abs(sum)) { break; }
    }
    return TWO_OVER_SQRT_PI * sum;
  }
  let r = 1.0 - erfcPos(a);
  return select(r, -r, x < 0.0);
}
// 1 - erf(x), without cancellation for large x.
fn erfc_(x: f32) -> f32 {
  if (x < 0.5) { return 1.0 - erf_(x); }
  return erfcPos(x);
}
// 1 + erf(x / sqrt 2) = 2 * Phi(x), accurate in both tails.
fn twoPhi(x: f32) -> f32 { return erfc_(-x * SQRT_HALF); }
fn gelu_(x: f32) -> f32 { return 0.5 * x * twoPhi(x); }
fn geluGrad_(x: f32) -> f32 { return 0.5 * twoPhi(x) + x * INV_SQRT_2PI * exp_(-0.5 * x * x); }
fn erfGrad_(x: f32) -> f32 { return TWO_OVER_SQRT_PI * exp_(-x * x); }
// tanh GELU via 1 + tanh(u) = 2 sigmoid(2u), which does not cancel for negative x.
fn geluTanh_(x: f32) -> f32 {
  let u = GELU_C * (x + 0.044715 * x * x * x);
  return x * sigmoid_(2.0 * u);
}
fn geluTanhGrad_(x: f32) -> f32 {
  let u = GELU_C * (x + 0.044715 * x * x * x);
  let s = sigmoid_(2.0 * u);
  let sm = sigmoid_(-2.0 * u);
  return s + 2.0 * x * s * sm * GELU_C * (1.0 + 3.0 * 0.044715 * x * x);
}
// Math.pow semantics, including negative bases with integer exponents and the zero/infinity cases.
fn pow_(x: f32, y: f32) -> f32 {
  if (y == 0.0) { return 1.0; }
  if (isnan32(x) || isnan32(y)) { return f32nan(); }
  let ay = abs(y);
  let yInf = ay == f32inf();
  let isInt = !yInf && floor(y) == y;
  let odd = isInt && ay < 16777216.0 && (ay % 2.0) == 1.0;
  if (x == 0.0) {
    if (y > 0.0) { return select(0.0, x, odd); }
    let negZero = (bitcast<u32>(x) & 0x80000000u) != 0u;
    return select(f32inf(), -f32inf(), odd && negZero);
  }
  let ax = abs(x);
  var r: f32;
  if (isInt && ay <= 64.0) {
    var e = u32(ay);
    var b = ax;
    r = 1.0;
    loop {
      if ((e & 1u) == 1u) { r = r * b; }
      e = e >> 1u;
      if (e == 0u) { break; }
      b = b * b;
    }
    if (y < 0.0) { r = 1.0 / r; }
  } else if (y == 0.5) {
    r = sqrt(ax);
  } else if (ax == f32inf()) {
    r = select(0.0, ax, y > 0.0);
  } else {
    let e = y * log2(ax);
    r = select(exp2(e), f32nan(), isnan32(e)); // (+-1)^(+-inf) is NaN, as Math.pow
  }
  if (x < 0.0) {
    if (yInf) { return r; }
    if (!isInt) { return f32nan(); }
    if (odd) { r = -r; }
  }
  return r;
}
fn max_(a: f32, b: f32) -> f32 {
  if (isnan32(a) || isnan32(b)) { return f32nan(); }
  return select(b, a, a > b);
}
fn min_(a: f32, b: f32) -> f32 {
  if (isnan32(a) || isnan32(b)) { return f32nan(); }
  return select(b, a, a < b);
}
`;

/** WGSL expression of each unary kernel in x and p (the param). */
export const UNARY_WGSL: Record<UnaryKernel, string> = {
  neg: '-x',
  exp: 'exp_(x)',
  log: 'log_(x)',
  sqrt: 'sqrt(x)',
  rsqrt: '1.0 / sqrt(x)',
  abs: 'abs(x)',
  sign: 'select(select(x, -1.0, x < 0.0), 1.0, x > 0.0)',
  square: 'x * x',
  reciprocal: '1.0 / x',
  tanh: 'tanh_(x)',
  sigmoid: 'sigmoid_(x)',
  relu: 'select(select(0.0, x, isnan32(x)), x, x > 0.0)',
  erf: 'erf_(x)',
  gelu: 'gelu_(x)',
  geluTanh: 'geluTanh_(x)',
  leakyRelu: 'select(x * p, x, x > 0.0)',
  powScalar: 'pow_(x, p)',
  scale: 'x * p',
  addScalar: 'x + p',
  sin: 'sin_(x)',
  cos: 'cos_(x)',
  tan: 'tan_(x)',
  asin: 'asin_(x)',
  acos: 'acos_(x)',
  atan: 'atan_(x)',
};

/** WGSL expression of each binary kernel in a, b and p. */
export const BINARY_WGSL: Record<BinaryKernel, string> = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'a / b',
  pow: 'pow_(a, b)',
  max: 'max_(a, b)',
  min: 'min_(a, b)',
  eq: 'select(0.0, 1.0, a == b)',
  reluGrad: 'select(0.0, a, b > 0.0)',
  leakyReluGrad: 'select(a * p, a, b > 0.0)',
  absGrad: 'select(select(0.0, -a, b < 0.0), a, b > 0.0)',
  tanhGrad: 'a * (1.0 - b * b)',
  sigmoidGrad: 'a * b * (1.0 - b)',
  erfGrad: 'a * erfGrad_(b)',
  geluGrad: 'a * geluGrad_(b)',
  geluTanhGrad: 'a * geluTanhGrad_(b)',
};

const LINEAR_MAIN = `@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = linearIndex(gid, nw);
  if (i >= pu(0u)) { return; }`;

// i[0] = n; f[0] = param
export function unaryShader(op: UnaryKernel): string {
  return `${PREAMBLE}${MATH}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
fn op(x: f32, p: f32) -> f32 { return ${UNARY_WGSL[op]}; }
${LINEAR_MAIN}
  Y[i] = op(X[i], P.f.x);
}`;
}

// i[0] = n, i[1] = rank; d: shape, strides of a, strides of b; f[0] = param
export function binaryShader(op: BinaryKernel): string {
  return `${PREAMBLE}${MATH}
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
fn op(a: f32, b: f32, p: f32) -> f32 { return ${BINARY_WGSL[op]}; }
${LINEAR_MAIN}
  let o = offsets3(i, pu(1u));
  Y[i] = op(A[o.x], B[o.y], P.f.x);
}`;
}

// i[0] = n, i[1] = rank; d: shape, strides of cond, a, b. Cond is packed bytes (4 per u32).
export function whereShader(): string {
  return `${PREAMBLE}
@group(0) @binding(1) var<storage, read> C: array<u32>;
@group(0) @binding(2) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
${LINEAR_MAIN}
  let o = offsets3(i, pu(1u));
  let j = u32(o.x);
  let c = (C[j >> 2u] >> ((j & 3u) * 8u)) & 0xffu;
  Y[i] = select(B[o.z], A[o.y], c != 0u);
}`;
}

// i[0] = n, i[1] = rank, i[2] = offset; d: out shape, input strides (may be negative)
export function stridedShader(): string {
  return `${PREAMBLE}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${LINEAR_MAIN}
  let o = offsets3(i, pu(1u));
  Y[i] = X[pi(2u) + o.x];
}`;
}

/** Scatter of g into distinct positions (strides injective): a plain store into a cleared output. */
export function stridedScatterShader(): string {
  return `${PREAMBLE}
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${LINEAR_MAIN}
  let o = offsets3(i, pu(1u));
  Y[pi(2u) + o.x] = G[i];
}`;
}

const ATOMIC_ADD = /* wgsl */ `
// Float add into a u32 atomic by compare-exchange (WGSL has no float atomics).
fn atomicAddF32(j: u32, v: f32) {
  var old = atomicLoad(&Y[j]);
  loop {
    let r = atomicCompareExchangeWeak(&Y[j], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}`;

/** Scatter-add of g where positions may repeat (zero or overlapping strides): atomic float adds. */
export function stridedScatterAtomicShader(): string {
  return `${PREAMBLE}
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<atomic<u32>>;
${ATOMIC_ADD}
${LINEAR_MAIN}
  let o = offsets3(i, pu(1u));
  atomicAddF32(u32(pi(2u) + o.x), G[i]);
}`;
}

// i[0] = n (= outer * size), i[1] = size, i[2] = total, i[3] = at
export function concatShader(): string {
  return `${PREAMBLE}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${LINEAR_MAIN}
  let size = pu(1u);
  let o = i / size;
  let j = i - o * size;
  Y[o * pu(2u) + pu(3u) + j] = X[i];
}`;
}

// ---------------------------------------------------------------- reductions

export type ReduceOp = 'sum' | 'max' | 'min';

function reduceCombine(op: ReduceOp): { identity: string; combine: string } {
  switch (op) {
    case 'sum':
      return { identity: '0.0', combine: 'return a + b;' };
    case 'max':
      // NaN sticks (any NaN in the group gives NaN), as the reference.
      return { identity: '-f32inf()', combine: 'if (isnan32(a)) { return a; } if (isnan32(b)) { return b; } return select(b, a, a >= b);' };
    case 'min':
      return { identity: 'f32inf()', combine: 'if (isnan32(a)) { return a; } if (isnan32(b)) { return b; } return select(b, a, a <= b);' };
  }
}

const REDUCE_ADDRESSING = /* wgsl */ `
// i[0] = outSize, i[1] = kept rank, i[2] = reduced rank, i[3] = reduced count R
// d[0..7] kept sizes, d[8..15] their input strides, d[16..23] reduced sizes, d[24..31] their input strides
fn keptBase(o: u32) -> u32 {
  var rem = o;
  var off = 0u;
  for (var d = i32(pu(1u)) - 1; d >= 0; d = d - 1) {
    let du = u32(d);
    let size = u32(pd(du));
    off = off + (rem % size) * u32(pd(8u + du));
    rem = rem / size;
  }
  return off;
}
fn reducedOffset(r: u32) -> u32 {
  var rem = r;
  var off = 0u;
  for (var d = i32(pu(2u)) - 1; d >= 0; d = d - 1) {
    let du = u32(d);
    let size = u32(pd(16u + du));
    off = off + (rem % size) * u32(pd(24u + du));
    rem = rem / size;
  }
  return off;
}`;

/** One workgroup per output element: strided partial results, then a shared-memory tree. */
export function reduceTreeShader(op: ReduceOp, wg: number): string {
  const { identity, combine } = reduceCombine(op);
  return `${PREAMBLE}${REDUCE_ADDRESSING}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
var<workgroup> red: array<f32, ${wg}>;
fn combine(a: f32, b: f32) -> f32 { ${combine} }
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let o = rowIndex(wid, nw);
  if (o >= pu(0u)) { return; }
  let base = keptBase(o);
  let R = pu(3u);
  var acc: f32 = ${identity};
  for (var r = lid.x; r < R; r = r + ${wg}u) { acc = combine(acc, X[base + reducedOffset(r)]); }
  red[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (lid.x < s) { red[lid.x] = combine(red[lid.x], red[lid.x + s]); }
    workgroupBarrier();
  }
  if (lid.x == 0u) { Y[o] = red[0]; }
}`;
}

/** One thread per output element (short reductions over many outputs). */
export function reduceSerialShader(op: ReduceOp): string {
  const { identity, combine } = reduceCombine(op);
  return `${PREAMBLE}${REDUCE_ADDRESSING}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
fn combine(a: f32, b: f32) -> f32 { ${combine} }
${LINEAR_MAIN}
  let base = keptBase(i);
  let R = pu(3u);
  var acc: f32 = ${identity};
  for (var r = 0u; r < R; r = r + 1u) { acc = combine(acc, X[base + reducedOffset(r)]); }
  Y[i] = acc;
}`;
}

/** argmax/argmin: first index on ties; the first NaN wins once any NaN is present (as the reference). */
export function argReduceShader(op: 'max' | 'min', wg: number): string {
  const better = op === 'max' ? 'va > vb' : 'va < vb';
  const worse = op === 'max' ? 'vb > va' : 'vb < va';
  return `${PREAMBLE}${REDUCE_ADDRESSING}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<i32>;
var<workgroup> rv: array<f32, ${wg}>;
var<workgroup> ri: array<i32, ${wg}>;
// Returns true when (va, ia) should be kept over (vb, ib).
fn keepA(va: f32, ia: i32, vb: f32, ib: i32) -> bool {
  if (ia < 0) { return false; }
  if (ib < 0) { return true; }
  let na = isnan32(va);
  let nb = isnan32(vb);
  if (na && nb) { return ia < ib; }
  if (na) { return true; }
  if (nb) { return false; }
  if (${better}) { return true; }
  if (${worse}) { return false; }
  return ia < ib;
}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let o = rowIndex(wid, nw);
  if (o >= pu(0u)) { return; }
  let base = keptBase(o);
  let R = pu(3u);
  var bv: f32 = 0.0;
  var bi: i32 = -1;
  for (var r = lid.x; r < R; r = r + ${WG}u) {
    let idx = base + reducedOffset(r);
    let v = X[idx];
    if (keepA(v, i32(idx), bv, bi)) { bv = v; bi = i32(idx); }
  }
  rv[lid.x] = bv;
  ri[lid.x] = bi;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid.x < s) {
      if (keepA(rv[lid.x + s], ri[lid.x + s], rv[lid.x], ri[lid.x])) {
        rv[lid.x] = rv[lid.x + s];
        ri[lid.x] = ri[lid.x + s];
      }
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) { Y[o] = ri[0]; }
}`;
}

// ---------------------------------------------------------------- matmul

/** Matmul tiling: a 64 x 64 tile of C per 64-thread (8 x 8) workgroup, 8 x 8 outputs per thread, k in steps of 16. */
export const MM_TILE = 64;
export const MM_BK = 16;
const MM_THREADS = 8;
const MM_R = MM_TILE / MM_THREADS;

/**
 * Batched C[p] = op(A)[p] @ op(B)[p] for p = batchBase + workgroup z.
 * A and B tiles (64 x 16 and 16 x 64) are staged k-major in workgroup memory; each thread keeps an
 * 8 x 8 block of C in 16 vec4 registers (rows ty + 8 i, columns tx + 8 j: neighbouring threads
 * store neighbouring columns). Tile loads are coalesced along whichever axis is contiguous, so
 * transA/transB only change the load index; entries outside the matrices load as 0.
 * i[0] = m, i[1] = k, i[2] = n, i[3] = batchBase. OFF holds [aOffset, bOffset] per product.
 */
export function matmulShader(transA: boolean, transB: boolean): string {
  const T = MM_TILE;
  const BK = MM_BK;
  const TH = MM_THREADS;
  const R = MM_R;
  const loadsPerThread = (T * BK) / (TH * TH);
  const loadA = transA
    ? `let kk = e / ${T}u; let r = e % ${T}u;
      let gr = row0 + r; let gk = k0 + kk;
      var v = 0.0;
      if (gr < M && gk < K) { v = A[aOff + gk * M + gr]; }
      As[kk * ${T}u + r] = v;`
    : `let r = e / ${BK}u; let kk = e % ${BK}u;
      let gr = row0 + r; let gk = k0 + kk;
      var v = 0.0;
      if (gr < M && gk < K) { v = A[aOff + gr * K + gk]; }
      As[kk * ${T}u + r] = v;`;
  const loadB = transB
    ? `let c = e / ${BK}u; let kk = e % ${BK}u;
      let gc = col0 + c; let gk = k0 + kk;
      var v = 0.0;
      if (gc < N && gk < K) { v = B[bOff + gc * K + gk]; }
      Bs[kk * ${T}u + c] = v;`
    : `let kk = e / ${T}u; let c = e % ${T}u;
      let gc = col0 + c; let gk = k0 + kk;
      var v = 0.0;
      if (gc < N && gk < K) { v = B[bOff + gk * N + gc]; }
      Bs[kk * ${T}u + c] = v;`;
  const rows = Array.from({ length: R }, (_, i) => i);
  const halves = Array.from({ length: R / 4 }, (_, h) => h);
  const decl = rows.map((i) => halves.map((h) => `  var acc${i}_${h} = vec4<f32>(0.0);`).join('\n')).join('\n');
  const bvecs = halves
    .map((h) => `      let b${h} = vec4<f32>(${[0, 1, 2, 3].map((q) => `Bs[bb + ${(h * 4 + q) * TH}u]`).join(', ')});`)
    .join('\n');
  const fmas = rows
    .map((i) => `      let a${i} = As[ab + ${i * TH}u];\n${halves.map((h) => `      acc${i}_${h} = acc${i}_${h} + a${i} * b${h};`).join('\n')}`)
    .join('\n');
  const stores = rows
    .map(
      (i) => `  {
    let r = row0 + lid.y + ${i * TH}u;
    if (r < M) {
${halves.map((h) => [0, 1, 2, 3].map((q) => `      if (c0 + ${(h * 4 + q) * TH}u < N) { C[cBase + r * N + c0 + ${(h * 4 + q) * TH}u] = acc${i}_${h}[${q}]; }`).join('\n')).join('\n')}
    }
  }`,
    )
    .join('\n');
  return `${PREAMBLE}
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read> OFF: array<i32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;
var<workgroup> As: array<f32, ${T * BK}>;
var<workgroup> Bs: array<f32, ${T * BK}>;
@compute @workgroup_size(${TH}, ${TH})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let M = pu(0u);
  let K = pu(1u);
  let N = pu(2u);
  let p = wid.z + pu(3u);
  let aOff = u32(OFF[2u * p]);
  let bOff = u32(OFF[2u * p + 1u]);
  let row0 = wid.y * ${T}u;
  let col0 = wid.x * ${T}u;
${decl}
  for (var k0 = 0u; k0 < K; k0 = k0 + ${BK}u) {
    for (var l = 0u; l < ${loadsPerThread}u; l = l + 1u) {
      let e = li + l * ${TH * TH}u;
      ${loadA}
    }
    for (var l = 0u; l < ${loadsPerThread}u; l = l + 1u) {
      let e = li + l * ${TH * TH}u;
      ${loadB}
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk = kk + 1u) {
      let ab = kk * ${T}u + lid.y;
      let bb = kk * ${T}u + lid.x;
${bvecs}
${fmas}
    }
    workgroupBarrier();
  }
  let cBase = p * M * N;
  let c0 = col0 + lid.x;
${stores}
}`;
}

// ---------------------------------------------------------------- row kernels (softmax, norms)

function treeHelpers(wg: number): string {
  return /* wgsl */ `
var<workgroup> red: array<f32, ${wg}>;
fn treeSum(v: f32, t: u32) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (t < s) { red[t] = red[t] + red[t + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn treeMax(v: f32, t: u32) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (t < s) {
      let a = red[t];
      let b = red[t + s];
      if (isnan32(b) || (!isnan32(a) && b > a)) { red[t] = b; }
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;
}

const ROW_MAIN = (wg: number) => `@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let row = rowIndex(wid, nw);
  if (row >= pu(0u)) { return; }
  let t = lid.x;`;

/**
 * Softmax / log-softmax over the middle axis of [outer, n, inner]: one workgroup per (outer, inner)
 * row. i[0] = rows, i[1] = n, i[2] = inner, i[3] = log.
 */
export function softmaxShader(wg: number): string {
  return `${PREAMBLE}${treeHelpers(wg)}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${ROW_MAIN(wg)}
  let n = pu(1u);
  let inner = pu(2u);
  let o = row / inner;
  let q = row - o * inner;
  let base = o * n * inner + q;
  var m = -f32inf();
  for (var i = t; i < n; i = i + ${wg}u) {
    let v = X[base + i * inner];
    if (isnan32(v) || (!isnan32(m) && v > m)) { m = v; }
  }
  var mx = treeMax(m, t);
  if (isneginf32(mx)) { mx = 0.0; }
  var s = 0.0;
  for (var i = t; i < n; i = i + ${wg}u) { s = s + exp_(X[base + i * inner] - mx); }
  let sum = treeSum(s, t);
  let logSum = log_(sum);
  let isLog = pi(3u) != 0;
  for (var i = t; i < n; i = i + ${wg}u) {
    let j = base + i * inner;
    let z = X[j] - mx;
    Y[j] = select(exp_(z) / sum, z - logSum, isLog);
  }
}`;
}

export function softmaxBackwardShader(wg: number): string {
  return `${PREAMBLE}${treeHelpers(wg)}
@group(0) @binding(1) var<storage, read> Yv: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
${ROW_MAIN(wg)}
  let n = pu(1u);
  let inner = pu(2u);
  let o = row / inner;
  let q = row - o * inner;
  let base = o * n * inner + q;
  let isLog = pi(3u) != 0;
  var d = 0.0;
  for (var i = t; i < n; i = i + ${wg}u) {
    let j = base + i * inner;
    d = d + select(G[j] * Yv[j], G[j], isLog);
  }
  let dot = treeSum(d, t);
  for (var i = t; i < n; i = i + ${wg}u) {
    let j = base + i * inner;
    O[j] = select(Yv[j] * (G[j] - dot), G[j] - exp_(Yv[j]) * dot, isLog);
  }
}`;
}

/**
 * Layer / RMS norm of each row of [rows, n]: one workgroup per row, two-pass statistics.
 * i[0] = rows, i[1] = n, i[2] = rms, i[3] = has weight, i[4] = has bias; f[0] = eps.
 */
export function layerNormShader(wg: number): string {
  return `${PREAMBLE}${treeHelpers(wg)}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<f32>;
@group(0) @binding(3) var<storage, read> Bv: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
@group(0) @binding(5) var<storage, read_write> MEAN: array<f32>;
@group(0) @binding(6) var<storage, read_write> RSTD: array<f32>;
${ROW_MAIN(wg)}
  let n = pu(1u);
  let rms = pi(2u) != 0;
  let hasW = pi(3u) != 0;
  let hasB = pi(4u) != 0;
  let base = row * n;
  var mu = 0.0;
  if (!rms) {
    var s = 0.0;
    for (var i = t; i < n; i = i + ${wg}u) { s = s + X[base + i]; }
    mu = treeSum(s, t) / f32(n);
  }
  var v = 0.0;
  for (var i = t; i < n; i = i + ${wg}u) { let dx = X[base + i] - mu; v = v + dx * dx; }
  let rs = 1.0 / sqrt(treeSum(v, t) / f32(n) + P.f.x);
  if (t == 0u) { MEAN[row] = mu; RSTD[row] = rs; }
  for (var i = t; i < n; i = i + ${wg}u) {
    var y = (X[base + i] - mu) * rs;
    if (hasW) { y = y * W[i]; }
    if (hasB) { y = y + Bv[i]; }
    Y[base + i] = y;
  }
}`;
}

/** Input gradient of layer / RMS norm, one workgroup per row. i[0] = rows, i[1] = n, i[2] = rms, i[3] = has weight. */
export function layerNormBackwardShader(wg: number): string {
  return `${PREAMBLE}${treeHelpers(wg)}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<f32>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(4) var<storage, read> MEAN: array<f32>;
@group(0) @binding(5) var<storage, read> RSTD: array<f32>;
@group(0) @binding(6) var<storage, read_write> GX: array<f32>;
${ROW_MAIN(wg)}
  let n = pu(1u);
  let rms = pi(2u) != 0;
  let hasW = pi(3u) != 0;
  let base = row * n;
  let mu = MEAN[row];
  let rs = RSTD[row];
  var sg = 0.0;
  var sgx = 0.0;
  for (var i = t; i < n; i = i + ${wg}u) {
    let xhat = (X[base + i] - mu) * rs;
    var gh = G[base + i];
    if (hasW) { gh = gh * W[i]; }
    sg = sg + gh;
    sgx = sgx + gh * xhat;
  }
  let sumG = treeSum(sg, t);
  let sumGX = treeSum(sgx, t);
  let meanG = select(sumG / f32(n), 0.0, rms);
  let meanGX = sumGX / f32(n);
  for (var i = t; i < n; i = i + ${wg}u) {
    let xhat = (X[base + i] - mu) * rs;
    var gh = G[base + i];
    if (hasW) { gh = gh * W[i]; }
    GX[base + i] = rs * (gh - meanG - xhat * meanGX);
  }
}`;
}

/**
 * Weight and bias gradients of layer norm: column sums over rows. Workgroup (64, 4): 64 columns,
 * 4 row phases combined through workgroup memory. i[0] = rows, i[1] = n.
 */
export function layerNormParamGradShader(): string {
  return `${PREAMBLE}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> MEAN: array<f32>;
@group(0) @binding(4) var<storage, read> RSTD: array<f32>;
@group(0) @binding(5) var<storage, read_write> GW: array<f32>;
@group(0) @binding(6) var<storage, read_write> GB: array<f32>;
var<workgroup> sw: array<f32, 256>;
var<workgroup> sb: array<f32, 256>;
@compute @workgroup_size(64, 4)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let rows = pu(0u);
  let n = pu(1u);
  let c = wid.x * 64u + lid.x;
  var aw = 0.0;
  var ab = 0.0;
  if (c < n) {
    for (var r = lid.y; r < rows; r = r + 4u) {
      let g = G[r * n + c];
      aw = aw + g * (X[r * n + c] - MEAN[r]) * RSTD[r];
      ab = ab + g;
    }
  }
  let slot = lid.y * 64u + lid.x;
  sw[slot] = aw;
  sb[slot] = ab;
  workgroupBarrier();
  if (lid.y == 0u && c < n) {
    GW[c] = sw[lid.x] + sw[64u + lid.x] + sw[128u + lid.x] + sw[192u + lid.x];
    GB[c] = sb[lid.x] + sb[64u + lid.x] + sb[128u + lid.x] + sb[192u + lid.x];
  }
}`;
}

// ---------------------------------------------------------------- convolution helpers and pooling

// Geometry in i[1..14]: n c h w kh kw sh sw ph pw dh dw oh ow; i[0] = element count; i[15] = flag.
const GEO = /* wgsl */ `
fn gN() -> i32 { return pi(1u); }
fn gC() -> i32 { return pi(2u); }
fn gH() -> i32 { return pi(3u); }
fn gW() -> i32 { return pi(4u); }
fn gKH() -> i32 { return pi(5u); }
fn gKW() -> i32 { return pi(6u); }
fn gSH() -> i32 { return pi(7u); }
fn gSW() -> i32 { return pi(8u); }
fn gPH() -> i32 { return pi(9u); }
fn gPW() -> i32 { return pi(10u); }
fn gDH() -> i32 { return pi(11u); }
fn gDW() -> i32 { return pi(12u); }
fn gOH() -> i32 { return pi(13u); }
fn gOW() -> i32 { return pi(14u); }
`;

/** [n, c, h, w] -> columns [n, c*kh*kw, oh*ow]; one thread per column entry. */
export function im2colShader(): string {
  return `${PREAMBLE}${GEO}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${LINEAR_MAIN}
  var e = i32(i);
  let ox = e % gOW(); e = e / gOW();
  let oy = e % gOH(); e = e / gOH();
  let kj = e % gKW(); e = e / gKW();
  let ki = e % gKH(); e = e / gKH();
  let plane = e; // b * c + ch
  let iy = oy * gSH() - gPH() + ki * gDH();
  let ix = ox * gSW() - gPW() + kj * gDW();
  var v = 0.0;
  if (iy >= 0 && iy < gH() && ix >= 0 && ix < gW()) { v = X[(plane * gH() + iy) * gW() + ix]; }
  Y[i] = v;
}`;
}

/** VJP of im2col: each image element sums the columns that read it (no atomics). */
export function col2imShader(): string {
  return `${PREAMBLE}${GEO}
@group(0) @binding(1) var<storage, read> COLS: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${LINEAR_MAIN}
  var e = i32(i);
  let ix = e % gW(); e = e / gW();
  let iy = e % gH(); e = e / gH();
  let plane = e;
  var s = 0.0;
  for (var ki = 0; ki < gKH(); ki = ki + 1) {
    let ty = iy + gPH() - ki * gDH();
    if (ty < 0 || ty % gSH() != 0) { continue; }
    let oy = ty / gSH();
    if (oy >= gOH()) { continue; }
    for (var kj = 0; kj < gKW(); kj = kj + 1) {
      let tx = ix + gPW() - kj * gDW();
      if (tx < 0 || tx % gSW() != 0) { continue; }
      let ox = tx / gSW();
      if (ox >= gOW()) { continue; }
      s = s + COLS[(((plane * gKH() + ki) * gKW() + kj) * gOH() + oy) * gOW() + ox];
    }
  }
  Y[i] = s;
}`;
}

/** Max pooling: value and flat input index of the first max (NaN wins) per window. */
export function maxPoolShader(): string {
  return `${PREAMBLE}${GEO}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<storage, read_write> ARG: array<i32>;
${LINEAR_MAIN}
  var e = i32(i);
  let ox = e % gOW(); e = e / gOW();
  let oy = e % gOH(); e = e / gOH();
  let plane = e;
  let y0 = oy * gSH() - gPH();
  let x0 = ox * gSW() - gPW();
  var best = -f32inf();
  var arg = -1;
  var done = false;
  for (var ki = 0; ki < gKH() && !done; ki = ki + 1) {
    let iy = y0 + ki * gDH();
    if (iy < 0 || iy >= gH()) { continue; }
    for (var kj = 0; kj < gKW(); kj = kj + 1) {
      let ix = x0 + kj * gDW();
      if (ix < 0 || ix >= gW()) { continue; }
      let idx = (plane * gH() + iy) * gW() + ix;
      let v = X[idx];
      if (arg < 0) { arg = idx; }
      if (v > best || isnan32(v)) {
        best = v;
        arg = idx;
        if (isnan32(v)) { done = true; break; }
      }
    }
  }
  Y[i] = best;
  ARG[i] = max(arg, 0);
}`;
}

/** VJP of max pooling from the argmax indices: each input element gathers the windows that chose it. */
export function maxPoolBackwardShader(): string {
  return `${PREAMBLE}${GEO}
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read> ARG: array<i32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
${LINEAR_MAIN}
  var e = i32(i);
  let ix = e % gW(); e = e / gW();
  let iy = e % gH(); e = e / gH();
  let plane = e;
  var s = 0.0;
  for (var ki = 0; ki < gKH(); ki = ki + 1) {
    let ty = iy + gPH() - ki * gDH();
    if (ty < 0 || ty % gSH() != 0) { continue; }
    let oy = ty / gSH();
    if (oy >= gOH()) { continue; }
    for (var kj = 0; kj < gKW(); kj = kj + 1) {
      let tx = ix + gPW() - kj * gDW();
      if (tx < 0 || tx % gSW() != 0) { continue; }
      let ox = tx / gSW();
      if (ox >= gOW()) { continue; }
      let o = (plane * gOH() + oy) * gOW() + ox;
      if (ARG[o] == i32(i)) { s = s + G[o]; }
    }
  }
  Y[i] = s;
}`;
}

const POOL_DIVISOR = /* wgsl */ `
// Divisor of window (oy, ox): the full (padded) window area with count_include_pad, else the in-bounds count.
fn poolDivisor(oy: i32, ox: i32) -> f32 {
  let y0 = oy * gSH() - gPH();
  let x0 = ox * gSW() - gPW();
  if (pi(15u) != 0) {
    return f32((min(y0 + gKH(), gH() + gPH()) - y0) * (min(x0 + gKW(), gW() + gPW()) - x0));
  }
  var cy = 0;
  for (var ki = 0; ki < gKH(); ki = ki + 1) { let iy = y0 + ki * gDH(); if (iy >= 0 && iy < gH()) { cy = cy + 1; } }
  var cx = 0;
  for (var kj = 0; kj < gKW(); kj = kj + 1) { let ix = x0 + kj * gDW(); if (ix >= 0 && ix < gW()) { cx = cx + 1; } }
  return f32(cy * cx);
}`;

export function avgPoolShader(): string {
  return `${PREAMBLE}${GEO}${POOL_DIVISOR}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${LINEAR_MAIN}
  var e = i32(i);
  let ox = e % gOW(); e = e / gOW();
  let oy = e % gOH(); e = e / gOH();
  let plane = e;
  let y0 = oy * gSH() - gPH();
  let x0 = ox * gSW() - gPW();
  var s = 0.0;
  for (var ki = 0; ki < gKH(); ki = ki + 1) {
    let iy = y0 + ki * gDH();
    if (iy < 0 || iy >= gH()) { continue; }
    for (var kj = 0; kj < gKW(); kj = kj + 1) {
      let ix = x0 + kj * gDW();
      if (ix < 0 || ix >= gW()) { continue; }
      s = s + X[(plane * gH() + iy) * gW() + ix];
    }
  }
  Y[i] = s / poolDivisor(oy, ox);
}`;
}

export function avgPoolBackwardShader(): string {
  return `${PREAMBLE}${GEO}${POOL_DIVISOR}
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${LINEAR_MAIN}
  var e = i32(i);
  let ix = e % gW(); e = e / gW();
  let iy = e % gH(); e = e / gH();
  let plane = e;
  var s = 0.0;
  for (var ki = 0; ki < gKH(); ki = ki + 1) {
    let ty = iy + gPH() - ki * gDH();
    if (ty < 0 || ty % gSH() != 0) { continue; }
    let oy = ty / gSH();
    if (oy >= gOH()) { continue; }
    for (var kj = 0; kj < gKW(); kj = kj + 1) {
      let tx = ix + gPW() - kj * gDW();
      if (tx < 0 || tx % gSW() != 0) { continue; }
      let ox = tx / gSW();
      if (ox >= gOW()) { continue; }
      s = s + G[(plane * gOH() + oy) * gOW() + ox] / poolDivisor(oy, ox);
    }
  }
  Y[i] = s;
}`;
}

// ---------------------------------------------------------------- gather / scatter

// i[0] = n (outer * k * inner), i[1] = k, i[2] = axisLen, i[3] = inner
export function gatherShader(): string {
  return `${PREAMBLE}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> IDX: array<i32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
${LINEAR_MAIN}
  let k = pu(1u);
  let inner = pu(3u);
  let q = i % inner;
  let oj = i / inner;
  let j = oj % k;
  let o = oj / k;
  Y[i] = X[(o * pu(2u) + u32(IDX[j])) * inner + q];
}`;
}

/**
 * scatterAdd with host-known indices, as a gather over the inverse map (CSR: for each axis slot a,
 * the positions j with indices[j] == a), so it is deterministic and needs no atomics.
 * INV = [start[0..axisLen], js[0..k)]. i[0] = n (outer * axisLen * inner), i[1] = k, i[2] = axisLen, i[3] = inner.
 */
export function scatterAddCsrShader(): string {
  return `${PREAMBLE}
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read> INV: array<i32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
${LINEAR_MAIN}
  let k = pu(1u);
  let axisLen = pu(2u);
  let inner = pu(3u);
  let q = i % inner;
  let oa = i / inner;
  let a = oa % axisLen;
  let o = oa / axisLen;
  let js = axisLen + 1u;
  var s = 0.0;
  for (var t = u32(INV[a]); t < u32(INV[a + 1u]); t = t + 1u) {
    s = s + G[(o * k + u32(INV[js + t])) * inner + q];
  }
  Y[i] = s;
}`;
}

/** scatterAdd with device-resident indices: atomic float adds. i[0] = n (outer * k * inner), rest as above. */
export function scatterAddAtomicShader(): string {
  return `${PREAMBLE}
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read> IDX: array<i32>;
@group(0) @binding(3) var<storage, read_write> Y: array<atomic<u32>>;
${ATOMIC_ADD}
${LINEAR_MAIN}
  let k = pu(1u);
  let inner = pu(3u);
  let q = i % inner;
  let oj = i / inner;
  let j = oj % k;
  let o = oj / k;
  atomicAddF32((o * pu(2u) + u32(IDX[j])) * inner + q, G[i]);
}`;
}
