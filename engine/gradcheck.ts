import { Tensor } from './tensor';
import { backward, noGrad } from './autograd';
import { Rng } from './random';

export interface GradcheckOptions {
  /** Finite-difference step. */
  eps?: number;
  atol?: number;
  rtol?: number;
  seed?: number;
}

export interface GradcheckResult {
  ok: boolean;
  /** Worst |analytic - numeric| - (atol + rtol |numeric|) over all checked elements (<= 0 passes). */
  worstExcess: number;
  /** Human-readable description of the worst mismatch. */
  message: string;
}

/**
 * Checks the VJPs of `fn` against central finite differences in float64. The output is reduced with
 * a fixed random cotangent v, L = sum(v * fn(x)), and every element of every input that requires
 * grad is perturbed: dL/dx_i from backward must equal (L(x+e) - L(x-e)) / 2e.
 */
export function gradcheck(fn: (...inputs: Tensor[]) => Tensor | Tensor[], inputs: Tensor[], options: GradcheckOptions = {}): GradcheckResult {
  const { eps = 1e-6, atol = 1e-6, rtol = 1e-4, seed = 7 } = options;
  for (const t of inputs) {
    if (t.requiresGrad && t.dtype !== 'float64') throw new TypeError(`gradcheck needs float64 inputs, got ${t.dtype}${t.name ? ` for ${t.name}` : ''}`);
  }
  const rng = new Rng(seed);
  const outputs = () => {
    const out = fn(...inputs);
    return Array.isArray(out) ? out : [out];
  };
  const first = outputs();
  const cotangents = first.map((o) => {
    const v = new Float64Array(o.size);
    for (let i = 0; i < v.length; i++) v[i] = rng.normal();
    return v;
  });
  const loss = (outs: Tensor[]) =>
    outs.reduce((acc, o, j) => {
      let s = 0;
      for (let i = 0; i < o.size; i++) s += o.data[i] * cotangents[j][i];
      return acc + s;
    }, 0);

  for (const t of inputs) t.grad = null;
  first.forEach((o, j) => {
    if (o.requiresGrad) backward(o, new Tensor(Float64Array.from(cotangents[j]), o.shape));
  });

  let worstExcess = -Infinity;
  let message = 'no inputs require grad';
  inputs.forEach((t, k) => {
    if (!t.requiresGrad) return;
    const analytic = t.grad?.data ?? new Float64Array(t.size);
    const data = t.data as Float64Array;
    for (let i = 0; i < t.size; i++) {
      const orig = data[i];
      data[i] = orig + eps;
      const plus = noGrad(() => loss(outputs()));
      data[i] = orig - eps;
      const minus = noGrad(() => loss(outputs()));
      data[i] = orig;
      const numeric = (plus - minus) / (2 * eps);
      const excess = Math.abs(analytic[i] - numeric) - (atol + rtol * Math.abs(numeric));
      if (!(excess <= worstExcess) || Number.isNaN(excess)) {
        worstExcess = Number.isNaN(excess) ? Infinity : excess;
        message = `input ${k}${t.name ? ` (${t.name})` : ''} element ${i}: analytic ${analytic[i]}, numeric ${numeric}`;
      }
    }
  });
  return { ok: worstExcess <= 0, worstExcess, message };
}
