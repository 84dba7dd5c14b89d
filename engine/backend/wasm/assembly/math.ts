// @ts-nocheck -- AssemblyScript source (compiled by asc via engine/backend/wasm/build.mjs, not by tsc).
/**
 * Math helpers for the kernels: a 4-lane float32 exp / sigmoid / tanh, and float64 scalar special
 * functions ported from engine/backend/special.ts so erf and GELU agree with the reference closely.
 */

// ---- SIMD exp (Cephes expf: Cody-Waite range reduction + degree-5 polynomial, about 1 ulp) ----

/** exp(x) on 4 lanes. Results below ~1e-38 flush to 0; x > 88.72 gives +inf; NaN stays NaN. */
@inline export function expV(x: v128): v128 {
  x = f32x4.max(f32x4.min(x, f32x4.splat(89.0)), f32x4.splat(-87.5));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.44269504088896341)));
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  const z = f32x4.mul(r, r);
  let y = f32x4.splat(1.9875691500e-4);
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(1.3981999507e-3));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(8.3334519073e-3));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(4.1665795894e-2));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(1.6666665459e-1));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(5.0000001201e-1));
  y = f32x4.add(f32x4.add(f32x4.mul(y, z), r), f32x4.splat(1.0));
  // 2^(n-1) built in the exponent field (n in [-126, 128]), then doubled: no overflow of the scale itself.
  const e = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(126)), 23);
  return f32x4.mul(f32x4.mul(y, e), f32x4.splat(2.0));
}

/** Logistic sigmoid on 4 lanes, split by sign so exp never overflows. */
@inline export function sigmoidV(x: v128): v128 {
  const e = expV(f32x4.neg(f32x4.abs(x)));
  const d = f32x4.add(f32x4.splat(1.0), e);
  const pos = f32x4.div(f32x4.splat(1.0), d);
  const neg = f32x4.div(e, d);
  // NaN: both branches are NaN.
  return v128.bitselect(pos, neg, f32x4.ge(x, f32x4.splat(0)));
}

/** tanh on 4 lanes: Cephes tanhf (odd polynomial below 0.625, 1 - 2/(exp(2|x|)+1) above). */
@inline export function tanhV(x: v128): v128 {
  const ax = f32x4.abs(x);
  const z = f32x4.mul(x, x);
  let p = f32x4.splat(-5.70498872745e-3);
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(2.06390887954e-2));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(-5.37397155531e-2));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(1.33314422036e-1));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(-3.33332819422e-1));
  const small = f32x4.add(f32x4.mul(f32x4.mul(p, z), x), x);
  const e = expV(f32x4.add(ax, ax));
  let big = f32x4.sub(f32x4.splat(1.0), f32x4.div(f32x4.splat(2.0), f32x4.add(e, f32x4.splat(1.0))));
  // Copy the sign of x onto the large-|x| branch.
  big = v128.or(big, v128.and(x, f32x4.splat(-0.0)));
  return v128.bitselect(small, big, f32x4.lt(ax, f32x4.splat(0.625)));
}

// ---- float64 scalar special functions (same algorithms as engine/backend/special.ts) ----

const TWO_OVER_SQRT_PI: f64 = 1.1283791670955126;
const INV_SQRT_PI: f64 = 0.5641895835477563;
const SQRT_HALF: f64 = 0.7071067811865476;
const INV_SQRT_2PI: f64 = 0.3989422804014327;
const GELU_TANH_C: f64 = 0.7978845608028654;

export function erf64(x: f64): f64 {
  if (isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 2.5) {
    const x2 = x * x;
    let term = x;
    let sum = x;
    for (let n = 1; n < 80; n++) {
      term *= -x2 / <f64>n;
      const add = term / <f64>(2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return TWO_OVER_SQRT_PI * sum;
  }
  if (ax > 6) return x > 0 ? 1.0 : -1.0;
  let f = ax;
  for (let k = 60; k >= 1; k--) f = ax + (<f64>k / 2) / f;
  const erfc = (Math.exp(-ax * ax) * INV_SQRT_PI) / f;
  return x > 0 ? 1 - erfc : erfc - 1;
}

@inline export function erfGrad64(x: f64): f64 {
  return TWO_OVER_SQRT_PI * Math.exp(-x * x);
}

/** erfc without cancellation in the far tails (as engine/backend/special.ts). */
export function erfc64(x: f64): f64 {
  if (isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc64(-x);
  if (x < 2.5) return 1 - erf64(x);
  if (x > 27) return 0;
  let f = x;
  for (let k = 60; k >= 1; k--) f = x + (<f64>k / 2) / f;
  return (Math.exp(-x * x) * INV_SQRT_PI) / f;
}

@inline function sigmoid64(x: f64): f64 {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** x Φ(x) with Φ from erfc: full relative precision in the negative tail. */
@inline export function gelu64(x: f64): f64 {
  return 0.5 * x * erfc64(-x * SQRT_HALF);
}

@inline export function geluGrad64(x: f64): f64 {
  return 0.5 * erfc64(-x * SQRT_HALF) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

/** 0.5 x (1 + tanh u) as x σ(2u), which does not cancel for very negative u. */
@inline export function geluTanh64(x: f64): f64 {
  return x * sigmoid64(2 * GELU_TANH_C * (x + 0.044715 * x * x * x));
}

export function geluTanhGrad64(x: f64): f64 {
  const s = sigmoid64(2 * GELU_TANH_C * (x + 0.044715 * x * x * x));
  return s + x * s * (1 - s) * 2 * GELU_TANH_C * (1 + 3 * 0.044715 * x * x);
}

/** Math.pow with JavaScript's edge cases (C's pow gives 1 for pow(1, NaN) and pow(-1, +-Infinity); JS gives NaN). */
export function powJs(x: f64, e: f64): f64 {
  if (isNaN(e)) return NaN;
  if (!isFinite(e) && Math.abs(x) == 1) return NaN;
  return Math.pow(x, e);
}
