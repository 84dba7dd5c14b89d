// @ts-nocheck -- AssemblyScript source (compiled by asc via engine/backend/wasm/build.mjs, not by tsc).
/**
 * Max pooling vectorised across channels, as depthwise.ts does for depthwise convolution: each image is
 * transposed to channels-last and every output position compares its in-bounds window inputs 4 channels at a
 * time, keeping value and position per lane. layout.ts's maxPool2d visits one window element at a time with
 * bounds checks (about 4 ns per element: a ResNet stem's 3x3 stride-2 pool took over 1 ms). Same result: the
 * first maximum in (ki, kj) order, or the first NaN; the argmax is the flat input index.
 */
import { align64, ceil4, transpose, windowTaps } from './depthwise';

export function maxPoolChannelsLastScratchBytes(c: i32, h: i32, w: i32, kh: i32, kw: i32, oh: i32, ow: i32): i32 {
  const cp = ceil4(c);
  return align64(h * w * cp * 4) + 2 * align64(oh * ow * cp * 4) + align64(kh * kw * 8) + 64;
}

export function maxPoolChannelsLast(x: usize, y: usize, argmax: usize, n: i32, c: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, oh: i32, ow: i32, scratch: usize): void {
  const cp = ceil4(c);
  const cpb = cp << 2;
  const plane = h * w;
  const oplane = oh * ow;
  const xcl = scratch;
  const ycl = xcl + <usize>align64(plane * cp * 4);
  const acl = ycl + <usize>align64(oplane * cp * 4);
  const list = acl + <usize>align64(oplane * cp * 4); // (tap, input position) pairs of one window
  if (c != cp) memory.fill(xcl, 0, <usize>(plane * cp) << 2);
  const ninf = f32x4.splat(-Infinity);
  for (let b = 0; b < n; b++) {
    transpose(x + (<usize>(b * c * plane) << 2), plane, xcl, cp, c, plane);
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        const count = windowTaps(list, oy, ox, h, w, kh, kw, sh, sw, ph, pw, dh, dw, 1);
        const o = <usize>((oy * ow + ox) * cpb);
        const first = count > 0 ? load<i32>(list, 4) : 0;
        for (let ch = 0; ch < cp; ch += 4) {
          const cb = <usize>(ch << 2);
          let best = ninf;
          let arg = i32x4.splat(first);
          for (let t = 0; t < count; t++) {
            const pos = load<i32>(list + (<usize>t << 3), 4);
            const v = v128.load(xcl + <usize>(pos * cpb) + cb);
            // v > best, or v is the first NaN (once best is NaN nothing replaces it)
            const upd = v128.or(f32x4.gt(v, best), v128.andnot(f32x4.ne(v, v), f32x4.ne(best, best)));
            best = v128.bitselect(v, best, upd);
            arg = v128.bitselect(i32x4.splat(pos), arg, upd);
          }
          v128.store(ycl + o + cb, best);
          v128.store(acl + o + cb, arg);
        }
      }
    }
    const yb = y + (<usize>(b * c * oplane) << 2);
    const ab = argmax + (<usize>(b * c * oplane) << 2);
    transpose(ycl, cp, yb, oplane, oplane, c);
    transpose(acl, cp, ab, oplane, oplane, c);
    // Window positions -> flat input indices.
    for (let ch = 0; ch < c; ch++) {
      const base = (b * c + ch) * plane;
      const row = ab + (<usize>(ch * oplane) << 2);
      for (let i = 0; i < oplane; i++) store<i32>(row + (<usize>i << 2), load<i32>(row + (<usize>i << 2)) + base);
    }
  }
}
