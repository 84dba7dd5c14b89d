/** Scalar special functions, accurate to float64 rounding, so float64 gradient checks and gold comparisons are tight. */

const TWO_OVER_SQRT_PI = 1.1283791670955126;

// erf and erfc are fdlibm's s_erf.c (Sun Microsystems, 1993; the algorithm of most C libraries): rational
// approximations on four intervals, error below 1 ulp of float64. (A Maclaurin series summed up to 80 terms was
// both slower, by about 10x, and less accurate near |x| = 2.5, where its alternating terms cancel.)
const ERX = 8.45062911510467529297e-1;
const EFX = 1.28379167095512586316e-1;

/** erf(x) = x + x P(x^2)/Q(x^2) for |x| < 0.84375. */
function erfSmall(x: number): number {
  const z = x * x;
  const r = 1.28379167095512558561e-1 + z * (-3.25042107247001499370e-1 + z * (-2.84817495755985104766e-2 + z * (-5.77027029648944159157e-3 + z * -2.37630166566501626084e-5)));
  const s = 1 + z * (3.97917223959155352819e-1 + z * (6.50222499887672944485e-2 + z * (5.08130628187576562776e-3 + z * (1.32494738004321644526e-4 + z * -3.96022827877536812320e-6))));
  return r / s;
}

/** erf(1 + s) - ERX for 0.84375 <= |x| < 1.25, s = |x| - 1. */
function erfNearOne(s: number): number {
  const p = -2.36211856075265944077e-3 + s * (4.14856118683748331666e-1 + s * (-3.72207876035701323847e-1 + s * (3.18346619901161753674e-1 + s * (-1.10894694282396677476e-1 + s * (3.54783043256182359371e-2 + s * -2.16637559486879084300e-3)))));
  const q = 1 + s * (1.06420880400844228286e-1 + s * (5.40397917702171048937e-1 + s * (7.18286544141962662868e-2 + s * (1.26171219808761642112e-1 + s * (1.36370839120290507362e-2 + s * 1.19844998467991074170e-2)))));
  return p / q;
}

const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);
const LOW_WORD = new Uint32Array(new Float64Array([1]).buffer)[0] === 0 ? 0 : 1; // little-endian: word 0 is low

/** erfc(ax) for 1.25 <= ax < 28 (ax = |x|): exp(-ax^2 - 0.5625 + R/S) / ax, with ax^2 split to stay exact. */
function erfcTail(ax: number): number {
  const s = 1 / (ax * ax);
  let r: number;
  let q: number;
  if (ax < 1 / 0.35) {
    r = -9.86494403484714822705e-3 + s * (-6.93858572707181764372e-1 + s * (-1.05586262253232909814e1 + s * (-6.23753324503260060396e1 + s * (-1.62396669462573470355e2 + s * (-1.84605092906711035994e2 + s * (-8.12874355063065934246e1 + s * -9.81432934416914548592e0))))));
    q = 1 + s * (1.96512716674392571292e1 + s * (1.37657754143519042600e2 + s * (4.34565877475229228821e2 + s * (6.45387271733267880336e2 + s * (4.29008140027567833386e2 + s * (1.08635005541779435134e2 + s * (6.57024977031928170135e0 + s * -6.04244152148580987438e-2)))))));
  } else {
    r = -9.86494292470009928597e-3 + s * (-7.99283237680523006574e-1 + s * (-1.77579549177547519889e1 + s * (-1.60636384855821916062e2 + s * (-6.37566443368389627722e2 + s * (-1.02509513161107724954e3 + s * -4.83519191608651397019e2)))));
    q = 1 + s * (3.03380607434824582924e1 + s * (3.25792512996573918826e2 + s * (1.53672958608443695994e3 + s * (3.19985821950859553908e3 + s * (2.55305040643316442583e3 + s * (4.74528541206955367215e2 + s * -2.24409524465858183362e1))))));
  }
  F64[0] = ax;
  U32[LOW_WORD] = 0;
  const z = F64[0];
  return (Math.exp(-z * z - 0.5625) * Math.exp((z - ax) * (z + ax) + r / q)) / ax;
}

export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 0.84375) return ax < 3.725290298461914e-9 ? x + EFX * x : x + x * erfSmall(x);
  if (ax < 1.25) {
    const e = ERX + erfNearOne(ax - 1);
    return x >= 0 ? e : -e;
  }
  if (ax >= 6) return x >= 0 ? 1 : -1;
  const e = 1 - erfcTail(ax);
  return x >= 0 ? e : -e;
}

/** erfc(x) = 1 - erf(x) without cancellation where erf(x) is near 1 (the far tails). */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
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

/** d/dx erf(x). */
export function erfGrad(x: number): number {
  return TWO_OVER_SQRT_PI * Math.exp(-x * x);
}

const SQRT_HALF = Math.SQRT1_2;
const INV_SQRT_2PI = 0.3989422804014327;

/** x Φ(x), with Φ(x) = erfc(-x/√2)/2 so the negative tail (Φ tiny) keeps full relative precision. */
export function gelu(x: number): number {
  return 0.5 * x * erfc(-x * SQRT_HALF);
}

export function geluGrad(x: number): number {
  return 0.5 * erfc(-x * SQRT_HALF) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

const GELU_TANH_C = Math.sqrt(2 / Math.PI);

/** 0.5 x (1 + tanh u) written as x σ(2u): 1 + tanh u cancels for very negative u, σ does not. */
export function geluTanh(x: number): number {
  const u = GELU_TANH_C * (x + 0.044715 * x * x * x);
  return x * sigmoid(2 * u);
}

export function geluTanhGrad(x: number): number {
  const u = GELU_TANH_C * (x + 0.044715 * x * x * x);
  const s = sigmoid(2 * u);
  return s + x * s * (1 - s) * 2 * GELU_TANH_C * (1 + 3 * 0.044715 * x * x);
}

export function sigmoid(x: number): number {
  // Split by sign so exp never overflows.
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}
