// @ts-nocheck -- AssemblyScript source (compiled by asc via engine/backend/wasm/build.mjs, not by tsc).
/**
 * Hard sigmoid t = clamp(alpha x + beta, 0, 1) and hard swish x t (MobileNetV3's activations), forward and VJP
 * in one pass each. Composed from scale, add, two masks, two selects and a product, one HardSwish took about a
 * dozen kernels per step over the whole activation. NaN stays NaN (the comparisons are false for it).
 *   forward: out = swish ? x t : t
 *   backward: out = g (t + alpha x) (swish) or g alpha (hard sigmoid) where 0 <= alpha x + beta <= 1, else g t
 *   (swish) or 0; the bounds are inside, as torch.clamp's gradient.
 */
import { sigmoidV } from './math';

export function hardSigmoid(x: usize, g: usize, out: usize, n: i32, alpha: f32, beta: f32, swish: i32, backward: i32): void {
  const va = f32x4.splat(alpha);
  const vb = f32x4.splat(beta);
  const zero = f32x4.splat(0);
  const one = f32x4.splat(1);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const xv = v128.load(x + o);
    const ax = f32x4.mul(va, xv);
    const s = f32x4.add(ax, vb);
    const lo = f32x4.lt(s, zero);
    const hi = f32x4.gt(s, one);
    const t = v128.bitselect(one, v128.bitselect(zero, s, lo), hi);
    let r: v128;
    if (!backward) {
      r = swish ? f32x4.mul(xv, t) : t;
    } else {
      const inside = v128.not(v128.or(lo, hi));
      const gv = v128.load(g + o);
      r = swish ? f32x4.mul(gv, f32x4.add(t, v128.and(ax, inside))) : v128.and(f32x4.mul(gv, va), inside);
    }
    v128.store(out + o, r);
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const xv = load<f32>(x + o);
    const ax = alpha * xv;
    const s = ax + beta;
    const t: f32 = s < 0 ? 0 : s > 1 ? 1 : s;
    const inside = !(s < 0) && !(s > 1);
    let r: f32;
    if (!backward) r = swish ? xv * t : t;
    else {
      const gv = load<f32>(g + o);
      r = swish ? gv * (t + (inside ? ax : 0)) : inside ? gv * alpha : 0;
    }
    store<f32>(out + o, r);
  }
}

/**
 * VJP of SiLU x sigmoid(x) (exported as Mul(x, Sigmoid(x))): g s (1 + x (1 - s)) with s = sigmoid(x), the same
 * s as the sigmoid kernel computes. One kernel instead of the product's two, the sigmoid's and their sum.
 */
export function swishBackward(x: usize, g: usize, out: usize, n: i32): void {
  const one = f32x4.splat(1);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const xv = v128.load(x + o);
    const s = sigmoidV(xv);
    v128.store(out + o, f32x4.mul(f32x4.mul(v128.load(g + o), s), f32x4.add(one, f32x4.mul(xv, f32x4.sub(one, s)))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const xv = load<f32>(x + o);
    const s = f32x4.extract_lane(sigmoidV(f32x4.splat(xv)), 0);
    store<f32>(out + o, load<f32>(g + o) * s * (1 + xv * (1 - s)));
  }
}
