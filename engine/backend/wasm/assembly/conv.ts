// @ts-nocheck -- AssemblyScript source (compiled by asc via engine/backend/wasm/build.mjs, not by tsc).
/**
 * Dense (grouped) 2-D convolution and its two gradients, one call each, with the im2col column matrix built and
 * consumed in scratch. Composed from the im2col and matmul kernels, each convolution copied its kh*kw-times
 * expanded columns out of wasm memory and back in (forward), and again for both gradients (plus a permute of
 * them for the weight gradient): most of a ResNet step's bytes copied, and the garbage behind its GC.
 *
 * The columns of all images sit side by side, cols [C*kh*kw, N*L] (L = oh*ow), so each group is one product
 * over every image (late layers have L = 4 per image: one product of width N*L instead of N narrow ones):
 *   forward     Y [O, N*L]       = W [O, K] cols                (per group, K = C/groups * kh*kw)
 *   inputGrad   dcols [K, N*L]   = W^T G,  then col2im
 *   weightGrad  dW [O, K]        = G cols^T
 * with G, Y the [N, O, L] gradient / output staged as [O, N*L]. Per output element the products sum over the
 * same k in the same order as the composite did (im2col + batched matmul), so values are unchanged.
 */
import { product, productScratchBytes } from './matmul';
import { im2colStrided } from './layout';
import { align64 } from './depthwise';

/** Images [n, c, h, w] -> cols [c*kh*kw, n*L] (image b at columns b*L ..), or with `add` the reverse, col2im. */
function columns(img: usize, cols: usize, n: i32, c: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, oh: i32, ow: i32, add: bool): void {
  const l = oh * ow;
  im2colStrided(img, cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, l, n * l, add);
}

/** [n, o, l] -> [o, n*l] (toStaged) or back. */
function restage(src: usize, dst: usize, n: i32, o: i32, l: i32, toStaged: bool): void {
  const bytes = <usize>l << 2;
  for (let b = 0; b < n; b++) {
    for (let oc = 0; oc < o; oc++) {
      const batched = <usize>((b * o + oc) * l) << 2;
      const staged = <usize>((oc * n + b) * l) << 2;
      if (toStaged) memory.copy(dst + staged, src + batched, bytes);
      else memory.copy(dst + batched, src + staged, bytes);
    }
  }
}

/** Bytes of scratch conv2d needs (mode 0 forward, 1 inputGrad, 2 weightGrad). */
export function conv2dScratchBytes(mode: i32, n: i32, c: i32, o: i32, groups: i32, kh: i32, kw: i32, oh: i32, ow: i32): i32 {
  const nl = n * oh * ow;
  const k = (c / groups) * kh * kw;
  const og = o / groups;
  const gemm = mode == 0 ? productScratchBytes(og, k, nl) : mode == 1 ? productScratchBytes(k, og, nl) : productScratchBytes(og, nl, k);
  return align64(c * kh * kw * nl * 4) + align64(o * nl * 4) + gemm;
}

/**
 * mode 0: out [n, o, oh, ow] = conv(a = x [n, c, h, w], b = weight [o, c/groups, kh, kw]);
 * mode 1: out [n, c, h, w] = its input gradient from a = g [n, o, oh, ow] and b = weight;
 * mode 2: out [o, c/groups, kh, kw] = its weight gradient from a = g and b = x.
 * `work` holds conv2dScratchBytes(mode, ...).
 */
export function conv2d(mode: i32, a: usize, b: usize, out: usize, n: i32, c: i32, o: i32, groups: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, oh: i32, ow: i32, work: usize): void {
  const l = oh * ow;
  const nl = n * l;
  const k = (c / groups) * kh * kw;
  const og = o / groups;
  const cols = work;
  const staged = cols + <usize>align64(c * kh * kw * nl * 4);
  const scratch = staged + <usize>align64(o * nl * 4);
  if (mode == 0) {
    columns(a, cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, false);
    const y = n == 1 ? out : staged;
    for (let gr = 0; gr < groups; gr++) {
      product(b + (<usize>(gr * og * k) << 2), k, 1, cols + (<usize>(gr * k * nl) << 2), nl, 1, y + (<usize>(gr * og * nl) << 2), og, k, nl, scratch);
    }
    if (n > 1) restage(staged, out, n, o, l, false);
    return;
  }
  let g = a;
  if (n > 1) {
    restage(a, staged, n, o, l, true);
    g = staged;
  }
  if (mode == 1) {
    // dcols = W^T G: W [og, k] read transposed.
    for (let gr = 0; gr < groups; gr++) {
      product(b + (<usize>(gr * og * k) << 2), 1, k, g + (<usize>(gr * og * nl) << 2), nl, 1, cols + (<usize>(gr * k * nl) << 2), k, og, nl, scratch);
    }
    columns(out, cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, true);
  } else {
    // dW = G cols^T: cols [k, nl] read transposed.
    columns(b, cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, false);
    for (let gr = 0; gr < groups; gr++) {
      product(g + (<usize>(gr * og * nl) << 2), nl, 1, cols + (<usize>(gr * k * nl) << 2), 1, nl, out + (<usize>(gr * og * k) << 2), og, nl, k, scratch);
    }
  }
}
