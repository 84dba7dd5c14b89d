// @ts-nocheck -- AssemblyScript source (compiled by asc via engine/backend/wasm/build.mjs, not by tsc).
/**
 * Depthwise convolution vectorised across channels: each image is transposed to channels-last [positions, c]
 * (c rounded up to 4 lanes, zero past c), and every output position sums, for each in-bounds tap only, the
 * tap's filter row times the input row, 4 or 8 channels per step, in registers. layout.ts's plane kernels
 * vectorise along output rows instead: on MobileNet/EfficientNet's stride-2 layers they run scalar, and on small
 * planes (4x4, 2x2 with 5x5 or 7x7 filters) most of their lanes and taps fall in the padding; those layers ran at
 * 0.3-2 GFLOP/s. Any stride, dilation and padding.
 *   mode 0: y = conv(x, w);  mode 1: gx = the input gradient from g and w;  mode 2: gw = the weight gradient
 *   from x and g (f32 sums over one image's positions per tap and channel, then added in float64 across images).
 * Taps are summed in (ki, kj) order, as layout.ts does.
 */

/** Channels rounded up to a whole v128 (4 lanes). */
@inline export function ceil4(v: i32): i32 {
  return (v + 3) & ~3;
}

/** Scratch regions start on 64-byte lines. */
@inline export function align64(bytes: i32): i32 {
  return (bytes + 63) & ~63;
}

/**
 * Lists the in-bounds taps of output (oy, ox)'s window at `list`, in (ki, kj) order: per tap a pair of i32, the tap
 * ki*kw + kj and the input position iy*w + ix, both times `scale` (byte offsets into channels-last rows when
 * scale is their width in bytes). Returns how many taps.
 */
@inline export function windowTaps(list: usize, oy: i32, ox: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, scale: i32): i32 {
  let count = 0;
  for (let ki = 0; ki < kh; ki++) {
    const iy = oy * sh - ph + ki * dh;
    if (iy < 0 || iy >= h) continue;
    for (let kj = 0; kj < kw; kj++) {
      const ix = ox * sw - pw + kj * dw;
      if (ix < 0 || ix >= w) continue;
      store<i32>(list + (<usize>count << 3), (ki * kw + kj) * scale);
      store<i32>(list + (<usize>count << 3), (iy * w + ix) * scale, 4);
      count++;
    }
  }
  return count;
}

/** dst[j * dstStride + i] = src[i * srcStride + j] for i < rows, j < cols: a strided transpose, 4x4 blocks. */
export function transpose(src: usize, srcStride: i32, dst: usize, dstStride: i32, rows: i32, cols: i32): void {
  const ss = <usize>srcStride << 2;
  const ds = <usize>dstStride << 2;
  const rows4 = rows & ~3;
  const cols4 = cols & ~3;
  for (let i = 0; i < rows4; i += 4) {
    const s = src + <usize>i * ss;
    const d = dst + (<usize>i << 2);
    for (let j = 0; j < cols4; j += 4) {
      const o = <usize>j << 2;
      const r0 = v128.load(s + o), r1 = v128.load(s + ss + o), r2 = v128.load(s + 2 * ss + o), r3 = v128.load(s + 3 * ss + o);
      const t0 = v128.shuffle<i32>(r0, r1, 0, 4, 1, 5);
      const t1 = v128.shuffle<i32>(r2, r3, 0, 4, 1, 5);
      const t2 = v128.shuffle<i32>(r0, r1, 2, 6, 3, 7);
      const t3 = v128.shuffle<i32>(r2, r3, 2, 6, 3, 7);
      const dj = d + <usize>j * ds;
      v128.store(dj, v128.shuffle<i32>(t0, t1, 0, 1, 4, 5));
      v128.store(dj + ds, v128.shuffle<i32>(t0, t1, 2, 3, 6, 7));
      v128.store(dj + 2 * ds, v128.shuffle<i32>(t2, t3, 0, 1, 4, 5));
      v128.store(dj + 3 * ds, v128.shuffle<i32>(t2, t3, 2, 3, 6, 7));
    }
    for (let j = cols4; j < cols; j++) {
      for (let ii = i; ii < i + 4; ii++) store<f32>(dst + (<usize>(j * dstStride + ii) << 2), load<f32>(src + (<usize>(ii * srcStride + j) << 2)));
    }
  }
  for (let i = rows4; i < rows; i++) {
    for (let j = 0; j < cols; j++) store<f32>(dst + (<usize>(j * dstStride + i) << 2), load<f32>(src + (<usize>(i * srcStride + j) << 2)));
  }
}

/** Bytes of scratch depthwiseChannelsLast needs. */
export function depthwiseChannelsLastScratchBytes(c: i32, h: i32, w: i32, kh: i32, kw: i32, oh: i32, ow: i32): i32 {
  const cp = ceil4(c);
  const taps = kh * kw;
  return align64(h * w * cp * 4) + align64(oh * ow * cp * 4) + align64(taps * cp * 4) + align64(taps * 8) + align64(taps * cp * 8) + 64;
}

/**
 * Sums, for each destination position, list (tap, source position) pairs: dst[P, :] = sum w[tap, :] * src[pos, :]
 * over the `count` pairs at `list` (byte offsets into wcl and src), 8 then 4 channels at a time.
 */
@inline function gatherRow(list: usize, count: i32, wcl: usize, src: usize, dst: usize, cp: i32): void {
  let c = 0;
  for (; c + 8 <= cp; c += 8) {
    const o = <usize>c << 2;
    let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
    for (let t = 0; t < count; t++) {
      const wp = wcl + <usize>load<i32>(list + (<usize>t << 3)) + o;
      const xp = src + <usize>load<i32>(list + (<usize>t << 3), 4) + o;
      s0 = f32x4.add(s0, f32x4.mul(v128.load(wp), v128.load(xp)));
      s1 = f32x4.add(s1, f32x4.mul(v128.load(wp, 16), v128.load(xp, 16)));
    }
    v128.store(dst + o, s0);
    v128.store(dst + o, s1, 16);
  }
  for (; c < cp; c += 4) {
    const o = <usize>c << 2;
    let s0 = f32x4.splat(0);
    for (let t = 0; t < count; t++) {
      s0 = f32x4.add(s0, f32x4.mul(v128.load(wcl + <usize>load<i32>(list + (<usize>t << 3)) + o), v128.load(src + <usize>load<i32>(list + (<usize>t << 3), 4) + o)));
    }
    v128.store(dst + o, s0);
  }
}

export function depthwiseChannelsLast(mode: i32, a: usize, b: usize, out: usize, n: i32, c: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, oh: i32, ow: i32, scratch: usize): void {
  const cp = ceil4(c);
  const taps = kh * kw;
  const plane = h * w;
  const oplane = oh * ow;
  const xcl = scratch; // [plane, cp]: x (modes 0, 2) or, mode 1, the input gradient being built
  const gcl = xcl + <usize>align64(plane * cp * 4); // [oplane, cp]: y (mode 0) or g (modes 1, 2)
  const wcl = gcl + <usize>align64(oplane * cp * 4); // [taps, cp]
  const list = wcl + <usize>align64(taps * cp * 4); // (tap offset, position offset) byte pairs
  const acc = list + <usize>align64(taps * 8); // [taps, cp] float64 (mode 2)
  const cpb = cp << 2;
  if (mode == 2) {
    memory.fill(acc, 0, <usize>(taps * cp) << 3);
  } else {
    // Filters [c, taps] -> [taps, cp], zero lanes past c.
    memory.fill(wcl, 0, <usize>(taps * cp) << 2);
    transpose(b, taps, wcl, cp, c, taps);
  }
  if (c != cp) {
    memory.fill(xcl, 0, <usize>(plane * cp) << 2);
    memory.fill(gcl, 0, <usize>(oplane * cp) << 2);
  }
  for (let bi = 0; bi < n; bi++) {
    if (mode == 0) {
      transpose(a + (<usize>(bi * c * plane) << 2), plane, xcl, cp, c, plane);
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          const count = windowTaps(list, oy, ox, h, w, kh, kw, sh, sw, ph, pw, dh, dw, cpb);
          gatherRow(list, count, wcl, xcl, gcl + <usize>((oy * ow + ox) * cpb), cp);
        }
      }
      transpose(gcl, cp, out + (<usize>(bi * c * oplane) << 2), oplane, oplane, c);
    } else if (mode == 1) {
      transpose(a + (<usize>(bi * c * oplane) << 2), oplane, gcl, cp, c, oplane);
      for (let iy = 0; iy < h; iy++) {
        for (let ix = 0; ix < w; ix++) {
          let count = 0;
          for (let ki = 0; ki < kh; ki++) {
            const ny = iy + ph - ki * dh;
            if (ny < 0 || ny % sh != 0 || ny / sh >= oh) continue;
            for (let kj = 0; kj < kw; kj++) {
              const nx = ix + pw - kj * dw;
              if (nx < 0 || nx % sw != 0 || nx / sw >= ow) continue;
              store<i32>(list + (<usize>count << 3), (ki * kw + kj) * cpb);
              store<i32>(list + (<usize>count << 3), ((ny / sh) * ow + nx / sw) * cpb, 4);
              count++;
            }
          }
          gatherRow(list, count, wcl, gcl, xcl + <usize>((iy * w + ix) * cpb), cp);
        }
      }
      transpose(xcl, cp, out + (<usize>(bi * c * plane) << 2), plane, plane, c);
    } else {
      transpose(a + (<usize>(bi * c * plane) << 2), plane, xcl, cp, c, plane);
      transpose(b + (<usize>(bi * c * oplane) << 2), oplane, gcl, cp, c, oplane);
      for (let ki = 0; ki < kh; ki++) {
        // Output rows whose input row oy*sh - ph + ki*dh is in [0, h).
        const ry = ph - ki * dh;
        const oy0 = ry <= 0 ? 0 : (ry + sh - 1) / sh;
        const oy1 = h - 1 + ry < 0 ? 0 : min(oh, (h - 1 + ry) / sh + 1);
        for (let kj = 0; kj < kw; kj++) {
          const rx = pw - kj * dw;
          const ox0 = rx <= 0 ? 0 : (rx + sw - 1) / sw;
          const ox1 = w - 1 + rx < 0 ? 0 : min(ow, (w - 1 + rx) / sw + 1);
          const tap = ki * kw + kj;
          for (let ch = 0; ch < cp; ch += 4) {
            let s = f32x4.splat(0);
            for (let oy = oy0; oy < oy1; oy++) {
              const gr = gcl + <usize>(oy * ow * cpb + (ch << 2));
              const xr = xcl + <usize>((oy * sh - ry) * w * cpb + (ch << 2));
              for (let ox = ox0; ox < ox1; ox++) {
                s = f32x4.add(s, f32x4.mul(v128.load(gr + <usize>(ox * cpb)), v128.load(xr + <usize>((ox * sw - rx) * cpb))));
              }
            }
            const q = acc + (<usize>(tap * cp + ch) << 3);
            store<f64>(q, load<f64>(q) + <f64>f32x4.extract_lane(s, 0));
            store<f64>(q, load<f64>(q, 8) + <f64>f32x4.extract_lane(s, 1), 8);
            store<f64>(q, load<f64>(q, 16) + <f64>f32x4.extract_lane(s, 2), 16);
            store<f64>(q, load<f64>(q, 24) + <f64>f32x4.extract_lane(s, 3), 24);
          }
        }
      }
    }
  }
  if (mode == 2) {
    for (let ch = 0; ch < c; ch++) {
      for (let t = 0; t < taps; t++) store<f32>(out + (<usize>(ch * taps + t) << 2), <f32>load<f64>(acc + (<usize>(t * cp + ch) << 3)));
    }
  }
}
