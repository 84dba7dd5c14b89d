/** Scalar special functions, accurate to float64 rounding, so float64 gradient checks and gold comparisons are tight. */

const TWO_OVER_SQRT_PI = 1.1283791670955126;
const INV_SQRT_PI = 0.5641895835477563;

/** erf(x): Maclaurin series for |x| < 2.5, continued fraction for erfc beyond. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 2.5) {
    const x2 = x * x;
    let term = x;
    let sum = x;
    for (let n = 1; n < 80; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return TWO_OVER_SQRT_PI * sum;
  }
  if (ax > 6) return Math.sign(x);
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated bottom-up.
  let f = ax;
  for (let k = 60; k >= 1; k--) f = ax + (k / 2) / f;
  const erfc = (Math.exp(-ax * ax) * INV_SQRT_PI) / f;
  return Math.sign(x) * (1 - erfc);
}

/** erfc(x) = 1 - erf(x) without cancellation where erf(x) is near 1 (the far tails). */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < 2.5) return 1 - erf(x);
  if (x > 27) return 0;
  let f = x;
  for (let k = 60; k >= 1; k--) f = x + (k / 2) / f;
  return (Math.exp(-x * x) * INV_SQRT_PI) / f;
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
