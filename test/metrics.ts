/** Error measures shared by the Node tests and the browser harness (no Node imports, so both can bundle it). */

/** ‖a - b‖ / max(‖b‖, tiny): the per-tensor relative error used against PyTorch gold values. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = actual[i] - expected[i];
    if (Number.isNaN(d)) return Infinity;
    num += d * d;
    den += expected[i] * expected[i];
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}
