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
const SQRT_HALF: f64 = 0.7071067811865476;
const INV_SQRT_2PI: f64 = 0.3989422804014327;
const GELU_TANH_C: f64 = 0.7978845608028654;

// erf64 / erfc64: fdlibm's s_erf.c, as engine/backend/special.ts (error below 1 ulp of float64).
const ERX: f64 = 8.45062911510467529297e-1;
const EFX: f64 = 1.28379167095512586316e-1;

@inline function erfSmall(x: f64): f64 {
  const z = x * x;
  const r = 1.28379167095512558561e-1 + z * (-3.25042107247001499370e-1 + z * (-2.84817495755985104766e-2 + z * (-5.77027029648944159157e-3 + z * -2.37630166566501626084e-5)));
  const s = 1 + z * (3.97917223959155352819e-1 + z * (6.50222499887672944485e-2 + z * (5.08130628187576562776e-3 + z * (1.32494738004321644526e-4 + z * -3.96022827877536812320e-6))));
  return r / s;
}

@inline function erfNearOne(s: f64): f64 {
  const p = -2.36211856075265944077e-3 + s * (4.14856118683748331666e-1 + s * (-3.72207876035701323847e-1 + s * (3.18346619901161753674e-1 + s * (-1.10894694282396677476e-1 + s * (3.54783043256182359371e-2 + s * -2.16637559486879084300e-3)))));
  const q = 1 + s * (1.06420880400844228286e-1 + s * (5.40397917702171048937e-1 + s * (7.18286544141962662868e-2 + s * (1.26171219808761642112e-1 + s * (1.36370839120290507362e-2 + s * 1.19844998467991074170e-2)))));
  return p / q;
}

function erfcTail(ax: f64): f64 {
  const s = 1 / (ax * ax);
  let r: f64;
  let q: f64;
  if (ax < 1 / 0.35) {
    r = -9.86494403484714822705e-3 + s * (-6.93858572707181764372e-1 + s * (-1.05586262253232909814e1 + s * (-6.23753324503260060396e1 + s * (-1.62396669462573470355e2 + s * (-1.84605092906711035994e2 + s * (-8.12874355063065934246e1 + s * -9.81432934416914548592e0))))));
    q = 1 + s * (1.96512716674392571292e1 + s * (1.37657754143519042600e2 + s * (4.34565877475229228821e2 + s * (6.45387271733267880336e2 + s * (4.29008140027567833386e2 + s * (1.08635005541779435134e2 + s * (6.57024977031928170135e0 + s * -6.04244152148580987438e-2)))))));
  } else {
    r = -9.86494292470009928597e-3 + s * (-7.99283237680523006574e-1 + s * (-1.77579549177547519889e1 + s * (-1.60636384855821916062e2 + s * (-6.37566443368389627722e2 + s * (-1.02509513161107724954e3 + s * -4.83519191608651397019e2)))));
    q = 1 + s * (3.03380607434824582924e1 + s * (3.25792512996573918826e2 + s * (1.53672958608443695994e3 + s * (3.19985821950859553908e3 + s * (2.55305040643316442583e3 + s * (4.74528541206955367215e2 + s * -2.24409524465858183362e1))))));
  }
  const z = reinterpret<f64>(reinterpret<u64>(ax) & 0xFFFFFFFF00000000);
  return (Math.exp(-z * z - 0.5625) * Math.exp((z - ax) * (z + ax) + r / q)) / ax;
}

export function erf64(x: f64): f64 {
  if (isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 0.84375) return ax < 3.725290298461914e-9 ? x + EFX * x : x + x * erfSmall(x);
  if (ax < 1.25) {
    const e = ERX + erfNearOne(ax - 1);
    return x >= 0 ? e : -e;
  }
  if (ax >= 6) return x >= 0 ? 1.0 : -1.0;
  const e = 1 - erfcTail(ax);
  return x >= 0 ? e : -e;
}

@inline export function erfGrad64(x: f64): f64 {
  return TWO_OVER_SQRT_PI * Math.exp(-x * x);
}

/** erfc without cancellation in the far tails (as engine/backend/special.ts). */
export function erfc64(x: f64): f64 {
  if (isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 0.84375) {
    if (ax < 1.3877787807814457e-17) return 1 - x;
    const y = x * erfSmall(x);
    return x < 0.25 ? 1 - (x + y) : 0.5 - (y + (x - 0.5));
  }
  if (ax < 1.25) {
    const p = erfNearOne(ax - 1);
    return x >= 0 ? 1 - ERX - p : 1 + (ERX + p);
  }
  if (ax < 28) {
    if (x < -6) return 2;
    const t = erfcTail(ax);
    return x > 0 ? t : 2 - t;
  }
  return x > 0 ? 0 : 2;
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

// ---- float64 on 2 lanes: the same formulas as the scalar functions above, without per-element calls ----
// A float32 kernel evaluates 4 lanes as two f64x2 halves (lo = lanes 0-1, hi = lanes 2-3).

@inline export function f64Lo(x: v128): v128 { return f64x2.promote_low_f32x4(x); }
@inline export function f64Hi(x: v128): v128 { return f64x2.promote_low_f32x4(v128.shuffle<f32>(x, x, 2, 3, 2, 3)); }
/** Rounds two f64x2 halves back to one f32x4 (lanes 0-1 from lo, 2-3 from hi). */
@inline export function f32Join(lo: v128, hi: v128): v128 {
  return v128.shuffle<f32>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
}

/**
 * exp on 2 float64 lanes: fdlibm's Cody-Waite reduction x = n ln2 + r (|r| <= ln2/2), e^r by its Taylor series
 * to r^11 (truncation below 7e-15 relative: far below float32's 6e-8, so the float32 kernels round as with
 * Math.exp), 2^n built in the exponent field. Arguments are clamped to [-700, 700]: e^-700 ~ 1e-304 is 0 in
 * float32 and e^700 is +inf there, as the exact values are; below -700 the result is exactly 0. NaN stays NaN.
 */
@inline export function expF64x2(xIn: v128): v128 {
  const x = f64x2.max(f64x2.min(xIn, f64x2.splat(700.0)), f64x2.splat(-700.0));
  // kd = x / ln2 + 1.5 * 2^52: its low mantissa bits hold round(x / ln2) (two's complement).
  const shift = f64x2.splat(6755399441055744.0);
  const kd = f64x2.add(f64x2.mul(x, f64x2.splat(1.4426950408889634)), shift);
  const n = f64x2.sub(kd, shift);
  const r = f64x2.sub(f64x2.sub(x, f64x2.mul(n, f64x2.splat(6.93147180369123816490e-01))), f64x2.mul(n, f64x2.splat(1.90821492927058770002e-10)));
  let p = f64x2.splat(2.505210838544172e-8); // 1/11!
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(2.755731922398589e-7)); // 1/10!
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(2.7557319223985893e-6)); // 1/9!
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(2.48015873015873e-5)); // 1/8!
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.984126984126984e-4)); // 1/7!
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.3888888888888889e-3)); // 1/6!
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(8.333333333333333e-3)); // 1/5!
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(4.1666666666666664e-2)); // 1/4!
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.6666666666666666e-1)); // 1/3!
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(0.5));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0));
  // 2^n: n shifted into the exponent field plus the bias (|n| <= 1010, always a normal number).
  const scale = i64x2.add(i64x2.shl(kd, 52), i64x2.splat(<i64>1023 << 52));
  // Below -700: exactly 0, as Math.exp gives from -745 on, so 0 * inf is NaN as in the scalar formulas.
  return v128.andnot(f64x2.mul(p, scale), f64x2.lt(xIn, f64x2.splat(-700.0)));
}

/** True when every lane of `x` (f64x2) is below `bound` in magnitude (NaN is not). */
@inline export function allBelowF64x2(x: v128, bound: f64): bool {
  return i64x2.all_true(f64x2.lt(f64x2.abs(x), f64x2.splat(bound)));
}

/** erfSmall on 2 lanes (same coefficients and order). */
@inline function erfSmallF64x2(x: v128): v128 {
  const z = f64x2.mul(x, x);
  let r = f64x2.add(f64x2.splat(-5.77027029648944159157e-3), f64x2.mul(z, f64x2.splat(-2.37630166566501626084e-5)));
  r = f64x2.add(f64x2.splat(-2.84817495755985104766e-2), f64x2.mul(z, r));
  r = f64x2.add(f64x2.splat(-3.25042107247001499370e-1), f64x2.mul(z, r));
  r = f64x2.add(f64x2.splat(1.28379167095512558561e-1), f64x2.mul(z, r));
  let s = f64x2.add(f64x2.splat(1.32494738004321644526e-4), f64x2.mul(z, f64x2.splat(-3.96022827877536812320e-6)));
  s = f64x2.add(f64x2.splat(5.08130628187576562776e-3), f64x2.mul(z, s));
  s = f64x2.add(f64x2.splat(6.50222499887672944485e-2), f64x2.mul(z, s));
  s = f64x2.add(f64x2.splat(3.97917223959155352819e-1), f64x2.mul(z, s));
  s = f64x2.add(f64x2.splat(1.0), f64x2.mul(z, s));
  return f64x2.div(r, s);
}

/** erfNearOne on 2 lanes (same coefficients and order). */
@inline function erfNearOneF64x2(s: v128): v128 {
  let p = f64x2.add(f64x2.splat(3.54783043256182359371e-2), f64x2.mul(s, f64x2.splat(-2.16637559486879084300e-3)));
  p = f64x2.add(f64x2.splat(-1.10894694282396677476e-1), f64x2.mul(s, p));
  p = f64x2.add(f64x2.splat(3.18346619901161753674e-1), f64x2.mul(s, p));
  p = f64x2.add(f64x2.splat(-3.72207876035701323847e-1), f64x2.mul(s, p));
  p = f64x2.add(f64x2.splat(4.14856118683748331666e-1), f64x2.mul(s, p));
  p = f64x2.add(f64x2.splat(-2.36211856075265944077e-3), f64x2.mul(s, p));
  let q = f64x2.add(f64x2.splat(1.36370839120290507362e-2), f64x2.mul(s, f64x2.splat(1.19844998467991074170e-2)));
  q = f64x2.add(f64x2.splat(1.26171219808761642112e-1), f64x2.mul(s, q));
  q = f64x2.add(f64x2.splat(7.18286544141962662868e-2), f64x2.mul(s, q));
  q = f64x2.add(f64x2.splat(5.40397917702171048937e-1), f64x2.mul(s, q));
  q = f64x2.add(f64x2.splat(1.06420880400844228286e-1), f64x2.mul(s, q));
  q = f64x2.add(f64x2.splat(1.0), f64x2.mul(s, q));
  return f64x2.div(p, q);
}

/** erf64 for lanes with |x| < 1.25 (the caller checks): its small and near-one cases, chosen per lane. */
@inline export function erfMidRangeF64x2(x: v128): v128 {
  const ax = f64x2.abs(x);
  const small = f64x2.lt(ax, f64x2.splat(0.84375));
  if (i64x2.all_true(small)) return erfSmallRangeF64x2(x); // the common case: skip the near-one rational
  const near = f64x2.add(f64x2.splat(ERX), erfNearOneF64x2(f64x2.sub(ax, f64x2.splat(1.0))));
  const nearSigned = v128.bitselect(near, f64x2.neg(near), f64x2.ge(x, f64x2.splat(0.0)));
  return v128.bitselect(erfSmallRangeF64x2(x), nearSigned, small);
}

/** erfc64 for lanes with |x| < 1.25 (the caller checks): its small and near-one cases, chosen per lane. */
@inline function erfcMidRangeF64x2(x: v128): v128 {
  const ax = f64x2.abs(x);
  const small = f64x2.lt(ax, f64x2.splat(0.84375));
  if (i64x2.all_true(small)) return erfcSmallRangeF64x2(x); // the common case: skip the near-one rational
  const p = erfNearOneF64x2(f64x2.sub(ax, f64x2.splat(1.0)));
  const nearPos = f64x2.sub(f64x2.sub(f64x2.splat(1.0), f64x2.splat(ERX)), p);
  const nearNeg = f64x2.add(f64x2.splat(1.0), f64x2.add(f64x2.splat(ERX), p));
  const near = v128.bitselect(nearPos, nearNeg, f64x2.ge(x, f64x2.splat(0.0)));
  return v128.bitselect(erfcSmallRangeF64x2(x), near, small);
}

/** erf64 for lanes with |x| < 0.84375 (the caller checks): x + x erfSmall(x). */
@inline export function erfSmallRangeF64x2(x: v128): v128 {
  return f64x2.add(x, f64x2.mul(x, erfSmallF64x2(x)));
}

/** erfc64 for lanes with |x| < 0.84375 (the caller checks), with erfc64's two sub-cases. */
@inline function erfcSmallRangeF64x2(x: v128): v128 {
  const y = f64x2.mul(x, erfSmallF64x2(x));
  const below = f64x2.sub(f64x2.splat(1.0), f64x2.add(x, y));
  const above = f64x2.sub(f64x2.splat(0.5), f64x2.add(y, f64x2.sub(x, f64x2.splat(0.5))));
  return v128.bitselect(below, above, f64x2.lt(x, f64x2.splat(0.25)));
}

/** geluGrad64 for lanes with |x| sqrt(1/2) < 1.25 (the caller checks). */
@inline export function geluGradMidRangeF64x2(x: v128): v128 {
  const phi2 = erfcMidRangeF64x2(f64x2.mul(f64x2.neg(x), f64x2.splat(SQRT_HALF)));
  const e = expF64x2(f64x2.mul(f64x2.mul(f64x2.splat(-0.5), x), x));
  return f64x2.add(f64x2.mul(f64x2.splat(0.5), phi2), f64x2.mul(f64x2.mul(x, f64x2.splat(INV_SQRT_2PI)), e));
}

/** geluTanhGrad64 on 2 lanes (same formula and order; sigmoid split by sign as sigmoid64). */
@inline export function geluTanhGradF64x2(x: v128): v128 {
  const u = f64x2.mul(f64x2.splat(2 * GELU_TANH_C), f64x2.add(x, f64x2.mul(f64x2.mul(f64x2.mul(f64x2.splat(0.044715), x), x), x)));
  const e = expF64x2(f64x2.neg(f64x2.abs(u)));
  const d = f64x2.add(f64x2.splat(1.0), e);
  const s = v128.bitselect(f64x2.div(f64x2.splat(1.0), d), f64x2.div(e, d), f64x2.ge(u, f64x2.splat(0.0)));
  const t = f64x2.mul(f64x2.mul(f64x2.mul(f64x2.mul(x, s), f64x2.sub(f64x2.splat(1.0), s)), f64x2.splat(2.0)), f64x2.splat(GELU_TANH_C));
  return f64x2.add(s, f64x2.mul(t, f64x2.add(f64x2.splat(1.0), f64x2.mul(f64x2.mul(f64x2.splat(3 * 0.044715), x), x))));
}

/** Math.pow with JavaScript's edge cases (C's pow gives 1 for pow(1, NaN) and pow(-1, +-Infinity); JS gives NaN). */
export function powJs(x: f64, e: f64): f64 {
  if (isNaN(e)) return NaN;
  if (!isFinite(e) && Math.abs(x) == 1) return NaN;
  return Math.pow(x, e);
}
