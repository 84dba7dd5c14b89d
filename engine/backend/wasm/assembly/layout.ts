// @ts-nocheck -- AssemblyScript source (compiled by asc via engine/backend/wasm/build.mjs, not by tsc).
/**
 * Data movement: strided copies (permute/slice/expand) and their scatter-add VJP, gather's
 * scatter-add VJP, im2col/col2im and 2-D pooling.
 */

const IDX = memory.data(64 * 4);

/** Transposes the 4x4 block with rows r0..r3 and stores its rows at dst, dst+step, ... */
@inline function transpose4Store(r0: v128, r1: v128, r2: v128, r3: v128, dst: usize, step: usize): void {
  const t0 = v128.shuffle<i32>(r0, r1, 0, 4, 1, 5);
  const t1 = v128.shuffle<i32>(r2, r3, 0, 4, 1, 5);
  const t2 = v128.shuffle<i32>(r0, r1, 2, 6, 3, 7);
  const t3 = v128.shuffle<i32>(r2, r3, 2, 6, 3, 7);
  v128.store(dst, v128.shuffle<i32>(t0, t1, 0, 1, 4, 5));
  v128.store(dst + step, v128.shuffle<i32>(t0, t1, 2, 3, 6, 7));
  v128.store(dst + 2 * step, v128.shuffle<i32>(t2, t3, 0, 1, 4, 5));
  v128.store(dst + 3 * step, v128.shuffle<i32>(t2, t3, 2, 3, 6, 7));
}

const TILE: i32 = 32;

/**
 * out[rows, cols] = x(i, j) at x + (i + j*cs) floats: a transpose of a block whose columns are
 * contiguous. Walks 32x32 tiles (both sides stay in L1) of 4x4 SIMD transposes.
 */
function transposeBlock(x: usize, cs: i32, out: usize, rows: i32, cols: i32): void {
  const csb = <usize>cs << 2;
  const ob = <usize>cols << 2;
  const rows4 = rows & ~3;
  const cols4 = cols & ~3;
  for (let i0 = 0; i0 < rows4; i0 += TILE) {
    const i1 = min(i0 + TILE, rows4);
    for (let j0 = 0; j0 < cols4; j0 += TILE) {
      const j1 = min(j0 + TILE, cols4);
      for (let i = i0; i < i1; i += 4) {
        const src = x + (<usize>i << 2);
        const dst = out + <usize>i * ob;
        for (let j = j0; j < j1; j += 4) {
          const s = src + <usize>j * csb;
          transpose4Store(v128.load(s), v128.load(s + csb), v128.load(s + 2 * csb), v128.load(s + 3 * csb), dst + (<usize>j << 2), ob);
        }
      }
    }
  }
  // Edges: the last cols % 4 columns of the first rows4 rows, then the last rows % 4 rows.
  for (let i = 0; i < rows4; i++) {
    for (let j = cols4; j < cols; j++) store<f32>(out + <usize>i * ob + (<usize>j << 2), load<f32>(x + (<usize>(i + j * cs) << 2)));
  }
  for (let i = rows4; i < rows; i++) {
    for (let j = 0; j < cols; j++) store<f32>(out + <usize>i * ob + (<usize>j << 2), load<f32>(x + (<usize>(i + j * cs) << 2)));
  }
}

/**
 * out (dense, shape of the descriptor) = x at offset + sum(index_d * stride_d). Descriptor:
 * [rank, shape[rank], strides[rank]] (strides may be 0 or negative). Fast paths: contiguous rows
 * (memory.copy), broadcast rows (fill), and 2-D transposes (4x4 SIMD blocks).
 */
export function strided(x: usize, out: usize, desc: usize, offset: i32): void {
  const rank = load<i32>(desc);
  const shape = desc + 4;
  const strides = shape + (<usize>rank << 2);
  const last = <usize>(rank - 1) << 2;
  const n = load<i32>(shape + last);
  const s = load<i32>(strides + last);
  // A transpose of the last two dims: inner stride s != 1 while the dim before it has stride 1.
  const transposed = rank >= 2 && s != 1 && s != 0 && load<i32>(strides + last - 4) == 1 && load<i32>(shape + last - 4) >= 4;
  const loopDims = transposed ? rank - 2 : rank - 1;
  let outer = 1;
  for (let d = 0; d < loopDims; d++) {
    outer *= load<i32>(shape + (<usize>d << 2));
    store<i32>(IDX + (<usize>d << 2), 0);
  }
  const rows = transposed ? load<i32>(shape + last - 4) : 1;
  const block = <usize>(rows * n) << 2;
  let off = offset;
  let po = out;
  for (let o = 0; o < outer; o++) {
    const src = x + (<usize>off << 2);
    if (transposed) {
      transposeBlock(src, s, po, rows, n);
    } else if (s == 1) {
      memory.copy(po, src, <usize>n << 2);
    } else if (s == 0) {
      const v = load<f32>(src);
      const vv = f32x4.splat(v);
      let i = 0;
      for (; i + 4 <= n; i += 4) v128.store(po + (<usize>i << 2), vv);
      for (; i < n; i++) store<f32>(po + (<usize>i << 2), v);
    } else {
      for (let i = 0; i < n; i++) store<f32>(po + (<usize>i << 2), load<f32>(src + (<usize>(i * s) << 2)));
    }
    po += block;
    for (let d = loopDims - 1; d >= 0; d--) {
      const dd = <usize>d << 2;
      const c = load<i32>(IDX + dd) + 1;
      const st = load<i32>(strides + dd), sz = load<i32>(shape + dd);
      off += st;
      if (c < sz) {
        store<i32>(IDX + dd, c);
        break;
      }
      off -= st * sz;
      store<i32>(IDX + dd, 0);
    }
  }
}

/** VJP of strided: out[size] = 0, then out[offset + sum(index_d * stride_d)] += g[i] (positions may repeat). */
export function stridedScatterAdd(g: usize, out: usize, desc: usize, offset: i32, size: i32): void {
  memory.fill(out, 0, <usize>size << 2);
  const rank = load<i32>(desc);
  const shape = desc + 4;
  const strides = shape + (<usize>rank << 2);
  const last = <usize>(rank - 1) << 2;
  const n = load<i32>(shape + last);
  const s = load<i32>(strides + last);
  let outer = 1;
  for (let d = 0; d < rank - 1; d++) {
    outer *= load<i32>(shape + (<usize>d << 2));
    store<i32>(IDX + (<usize>d << 2), 0);
  }
  let off = offset;
  let pg = g;
  for (let o = 0; o < outer; o++) {
    const dst = out + (<usize>off << 2);
    if (s == 1) {
      let i = 0;
      for (; i + 4 <= n; i += 4) {
        const q = <usize>i << 2;
        v128.store(dst + q, f32x4.add(v128.load(dst + q), v128.load(pg + q)));
      }
      for (; i < n; i++) {
        const q = <usize>i << 2;
        store<f32>(dst + q, load<f32>(dst + q) + load<f32>(pg + q));
      }
    } else {
      for (let i = 0; i < n; i++) {
        const p = dst + (<usize>(i * s) << 2);
        store<f32>(p, load<f32>(p) + load<f32>(pg + (<usize>i << 2)));
      }
    }
    pg += <usize>n << 2;
    for (let d = rank - 2; d >= 0; d--) {
      const dd = <usize>d << 2;
      const c = load<i32>(IDX + dd) + 1;
      const st = load<i32>(strides + dd), sz = load<i32>(shape + dd);
      off += st;
      if (c < sz) {
        store<i32>(IDX + dd, c);
        break;
      }
      off -= st * sz;
      store<i32>(IDX + dd, 0);
    }
  }
}

/** VJP of gather: out [outer, axisLen, inner] = 0, then row (o, indices[j]) += g row (o, j). */
export function scatterAdd(g: usize, out: usize, outer: i32, axisLen: i32, inner: i32, indices: usize, k: i32): void {
  memory.fill(out, 0, <usize>(outer * axisLen * inner) << 2);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      const dst = out + (<usize>((o * axisLen + load<i32>(indices + (<usize>j << 2))) * inner) << 2);
      const src = g + (<usize>((o * k + j) * inner) << 2);
      let q = 0;
      for (; q + 4 <= inner; q += 4) {
        const b = <usize>q << 2;
        v128.store(dst + b, f32x4.add(v128.load(dst + b), v128.load(src + b)));
      }
      for (; q < inner; q++) {
        const b = <usize>q << 2;
        store<f32>(dst + b, load<f32>(dst + b) + load<f32>(src + b));
      }
    }
  }
}

// ---------------------------------------------------------------- im2col / col2im

/** First and one-past-last output column ox with 0 <= ox*s + c0 < w. */
@inline export function validStart(c0: i32, s: i32): i32 {
  return c0 >= 0 ? 0 : (-c0 + s - 1) / s;
}
@inline export function validEnd(c0: i32, s: i32, w: i32, ow: i32): i32 {
  if (w - 1 - c0 < 0) return 0;
  return min(ow, (w - 1 - c0) / s + 1);
}

/**
 * Images [n, c, h, w] -> columns (add = false), or its VJP col2im (add = true: columns -> images, zeroed first, summing
 * overlaps). Column row r = (ch*kh + ki)*kw + kj of image b (oh*ow values) starts at element b*imageStride +
 * r*rowStride: [n, c*kh*kw, oh*ow] is imageStride = c*kh*kw*oh*ow, rowStride = oh*ow (im2col below); conv.ts lays
 * all images side by side, [c*kh*kw, n*oh*ow], with imageStride = oh*ow, rowStride = n*oh*ow.
 */
export function im2colStrided(img: usize, cols: usize, n: i32, c: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, oh: i32, ow: i32, imageStride: i32, rowStride: i32, add: bool): void {
  if (add) memory.fill(img, 0, <usize>(n * c * h * w) << 2);
  const rowBytes = <usize>ow << 2;
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const plane = img + (<usize>((b * c + ch) * h * w) << 2);
      for (let ki = 0; ki < kh; ki++) {
        for (let kj = 0; kj < kw; kj++) {
          let col = cols + (<usize>(b * imageStride + ((ch * kh + ki) * kw + kj) * rowStride) << 2);
          const c0 = kj * dw - pw;
          const x0 = validStart(c0, sw);
          const x1 = max(x0, validEnd(c0, sw, w, ow));
          for (let oy = 0; oy < oh; oy++) {
            const iy = oy * sh - ph + ki * dh;
            if (iy < 0 || iy >= h) {
              if (!add) memory.fill(col, 0, rowBytes);
              col += rowBytes;
              continue;
            }
            const src = plane + (<usize>(iy * w + x0 * sw + c0) << 2);
            if (!add) {
              if (x0 > 0) memory.fill(col, 0, <usize>x0 << 2);
              if (sw == 1) memory.copy(col + (<usize>x0 << 2), src, <usize>(x1 - x0) << 2);
              else for (let ox = x0; ox < x1; ox++) store<f32>(col + (<usize>ox << 2), load<f32>(src + (<usize>((ox - x0) * sw) << 2)));
              if (x1 < ow) memory.fill(col + (<usize>x1 << 2), 0, <usize>(ow - x1) << 2);
            } else if (sw == 1) {
              let ox = x0;
              for (; ox + 4 <= x1; ox += 4) {
                const d = src + (<usize>(ox - x0) << 2);
                v128.store(d, f32x4.add(v128.load(d), v128.load(col + (<usize>ox << 2))));
              }
              for (; ox < x1; ox++) {
                const d = src + (<usize>(ox - x0) << 2);
                store<f32>(d, load<f32>(d) + load<f32>(col + (<usize>ox << 2)));
              }
            } else {
              for (let ox = x0; ox < x1; ox++) {
                const d = src + (<usize>((ox - x0) * sw) << 2);
                store<f32>(d, load<f32>(d) + load<f32>(col + (<usize>ox << 2)));
              }
            }
            col += rowBytes;
          }
        }
      }
    }
  }
}

export function im2col(x: usize, cols: usize, n: i32, c: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, oh: i32, ow: i32): void {
  im2colStrided(x, cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, c * kh * kw * oh * ow, oh * ow, false);
}

export function col2im(cols: usize, img: usize, n: i32, c: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, oh: i32, ow: i32): void {
  im2colStrided(img, cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, c * kh * kw * oh * ow, oh * ow, true);
}

/**
 * Depthwise convolution (one kh x kw filter per channel: groups = channels, as MobileNet/EfficientNet/ConvNeXt
 * blocks), directly on the planes: im2col would copy each input kh*kw times and feed n*c tiny matrix products.
 * mode 0: y[n,c,oh,ow] = sum over the window of w[c,ki,kj] x (y zeroed first);
 * mode 1: the input gradient gx[n,c,h,w] += w[c,ki,kj] g at every window position (gx zeroed first);
 * mode 2: the weight gradient gw[c,kh,kw] = sum over n and positions of g x, accumulated in float64 in `acc`
 * (c*kh*kw doubles). `a` is x (modes 0, 2) or g (mode 1), `b` the filters (modes 0, 1) or g (mode 2).
 */
/**
 * Stride-1, dilation-1 depthwise convolution through a zero-padded copy of each plane, for the small planes of
 * ConvNeXt (7x7 filters on 16x16 ... 2x2 planes) where the tap-at-a-time loop above spends its time on bounds:
 * every output row is computed in 4-wide chunks (rows padded to a multiple of 4) that sum all kh*kw taps in
 * registers, with no bounds checks. The input gradient is the same correlation of the padded gradient with the
 * flipped filter (padding kh-1-ph); the weight gradient sums g times the shifted padded input per tap.
 * `scratch` holds the padded plane, the padded gradient plane (mode 2) and the filter splats (see
 * depthwisePaddedScratchBytes). Taps accumulate in the same order as the loop above (ki, then kj).
 */
@inline function ceil4(v: i32): i32 {
  return (v + 3) & ~3;
}

/** Copies the [sh, sw] plane `src` into the zeroed [hp, wp] buffer `dst` at row `top`, column `left`. */
function padPlane(src: usize, sh: i32, sw: i32, dst: usize, hp: i32, wp: i32, top: i32, left: i32): void {
  memory.fill(dst, 0, <usize>(hp * wp) << 2);
  for (let r = 0; r < sh; r++) memory.copy(dst + (<usize>((r + top) * wp + left) << 2), src + (<usize>(r * sw) << 2), <usize>sw << 2);
}

export function depthwisePaddedScratchBytes(mode: i32, h: i32, w: i32, kh: i32, kw: i32, oh: i32, ow: i32): i32 {
  const outH = mode == 1 ? h : oh;
  const outW = mode == 1 ? w : ow;
  const plane = (outH + kh - 1) * (ceil4(outW) + kw - 1);
  const grid = mode == 2 ? oh * ceil4(ow) : 4;
  return (plane + grid + kh * kw * 4) * 4 + 64;
}

function depthwisePadded(mode: i32, a: usize, b: usize, out: usize, acc: usize, n: i32, c: i32, h: i32, w: i32, kh: i32, kw: i32, ph: i32, pw: i32, oh: i32, ow: i32, scratch: usize): void {
  const taps = kh * kw;
  const outH = mode == 1 ? h : oh;
  const outW = mode == 1 ? w : ow;
  const owp = ceil4(outW);
  const hp = outH + kh - 1;
  const wp = owp + kw - 1;
  const srcH = mode == 1 ? oh : h;
  const srcW = mode == 1 ? ow : w;
  const top = mode == 1 ? kh - 1 - ph : ph;
  const left = mode == 1 ? kw - 1 - pw : pw;
  const padded = (scratch + 15) & ~(<usize>15);
  const grid = padded + (<usize>(hp * wp) << 2);
  const splats = grid + (<usize>(mode == 2 ? oh * owp : 4) << 2);
  const wpb = <usize>wp << 2;
  if (mode == 2) memory.fill(acc, 0, <usize>(c * taps) << 3);
  for (let bi = 0; bi < n; bi++) {
    for (let ch = 0; ch < c; ch++) {
      const p = bi * c + ch;
      const srcPlane = a + (<usize>(p * srcH * srcW) << 2);
      padPlane(srcPlane, srcH, srcW, padded, hp, wp, top, left);
      if (mode == 2) {
        // g padded to whole chunks; the lanes past ow are masked out of the products (0 * inf would be NaN).
        padPlane(b + (<usize>(p * oh * ow) << 2), oh, ow, grid, oh, owp, 0, 0);
        const lastMask = i32x4.lt_s(i32x4(0, 1, 2, 3), i32x4.splat(ow - (owp - 4)));
        for (let ki = 0; ki < kh; ki++) {
          for (let kj = 0; kj < kw; kj++) {
            let sum = f32x4.splat(0);
            for (let oy = 0; oy < oh; oy++) {
              const gr = grid + (<usize>(oy * owp) << 2);
              const xr = padded + (<usize>(oy + ki) * wpb) + (<usize>kj << 2);
              let ox = 0;
              for (; ox + 4 < owp; ox += 4) sum = f32x4.add(sum, f32x4.mul(v128.load(gr + (<usize>ox << 2)), v128.load(xr + (<usize>ox << 2))));
              sum = f32x4.add(sum, v128.and(f32x4.mul(v128.load(gr + (<usize>ox << 2)), v128.load(xr + (<usize>ox << 2))), lastMask));
            }
            const q = acc + (<usize>(ch * taps + ki * kw + kj) << 3);
            store<f64>(q, load<f64>(q) + <f64>f32x4.extract_lane(sum, 0) + <f64>f32x4.extract_lane(sum, 1) + <f64>f32x4.extract_lane(sum, 2) + <f64>f32x4.extract_lane(sum, 3));
          }
        }
        continue;
      }
      // Filter splats, flipped for the input gradient.
      for (let t = 0; t < taps; t++) {
        const src = mode == 1 ? ch * taps + (taps - 1 - t) : ch * taps + t;
        v128.store(splats + (<usize>t << 4), f32x4.splat(load<f32>(b + (<usize>src << 2))));
      }
      const dst = out + (<usize>(p * outH * outW) << 2);
      for (let oy = 0; oy < outH; oy++) {
        const orow = dst + (<usize>(oy * outW) << 2);
        for (let ox = 0; ox < owp; ox += 4) {
          let sum = f32x4.splat(0);
          let xr = padded + (<usize>oy * wpb) + (<usize>ox << 2);
          let wt = splats;
          for (let ki = 0; ki < kh; ki++) {
            for (let kj = 0; kj < kw; kj++) {
              sum = f32x4.add(sum, f32x4.mul(v128.load(wt), v128.load(xr + (<usize>kj << 2))));
              wt += 16;
            }
            xr += wpb;
          }
          if (ox + 4 <= outW) {
            v128.store(orow + (<usize>ox << 2), sum);
          } else {
            v128.store(grid, sum);
            for (let l = ox; l < outW; l++) store<f32>(orow + (<usize>l << 2), load<f32>(grid + (<usize>(l - ox) << 2)));
          }
        }
      }
    }
  }
  if (mode == 2) for (let i = 0; i < c * taps; i++) store<f32>(out + (<usize>i << 2), <f32>load<f64>(acc + (<usize>i << 3)));
}

/** True when depthwisePadded handles the geometry (stride 1, dilation 1, padding at most kernel - 1). */
export function depthwisePaddedFits(kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32): i32 {
  return sh == 1 && sw == 1 && dh == 1 && dw == 1 && ph >= 0 && pw >= 0 && ph <= kh - 1 && pw <= kw - 1 ? 1 : 0;
}

export function depthwiseConv2d(mode: i32, a: usize, b: usize, out: usize, acc: usize, n: i32, c: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, oh: i32, ow: i32, scratchPadded: usize): void {
  if (scratchPadded != 0) {
    depthwisePadded(mode, a, b, out, acc, n, c, h, w, kh, kw, ph, pw, oh, ow, scratchPadded);
    return;
  }
  const plane = h * w, oplane = oh * ow, taps = kh * kw;
  if (mode == 0) memory.fill(out, 0, <usize>(n * c * oplane) << 2);
  else if (mode == 1) memory.fill(out, 0, <usize>(n * c * plane) << 2);
  else memory.fill(acc, 0, <usize>(c * taps) << 3);
  for (let bi = 0; bi < n; bi++) {
    for (let ch = 0; ch < c; ch++) {
      const p = bi * c + ch;
      // img: the [h, w] plane (x, or the input gradient in mode 1); grid: the [oh, ow] plane (y, or g).
      const img = mode == 1 ? out + (<usize>(p * plane) << 2) : a + (<usize>(p * plane) << 2);
      const grid = mode == 0 ? out + (<usize>(p * oplane) << 2) : mode == 1 ? a + (<usize>(p * oplane) << 2) : b + (<usize>(p * oplane) << 2);
      for (let ki = 0; ki < kh; ki++) {
        for (let kj = 0; kj < kw; kj++) {
          const tap = ch * taps + ki * kw + kj;
          const wv: f32 = mode == 2 ? 0 : load<f32>(b + (<usize>tap << 2));
          const c0 = kj * dw - pw;
          const x0 = validStart(c0, sw);
          const x1 = max(x0, validEnd(c0, sw, w, ow));
          let sum = f32x4.splat(0);
          let tail: f32 = 0;
          for (let oy = 0; oy < oh; oy++) {
            const iy = oy * sh - ph + ki * dh;
            if (iy < 0 || iy >= h) continue;
            const src = img + (<usize>(iy * w + x0 * sw + c0) << 2);
            const row = grid + (<usize>(oy * ow) << 2);
            let ox = x0;
            if (sw == 1) {
              const wvv = f32x4.splat(wv);
              for (; ox + 4 <= x1; ox += 4) {
                const pi = src + (<usize>(ox - x0) << 2);
                const po = row + (<usize>ox << 2);
                if (mode == 0) v128.store(po, f32x4.add(v128.load(po), f32x4.mul(wvv, v128.load(pi))));
                else if (mode == 1) v128.store(pi, f32x4.add(v128.load(pi), f32x4.mul(wvv, v128.load(po))));
                else sum = f32x4.add(sum, f32x4.mul(v128.load(po), v128.load(pi)));
              }
            }
            for (; ox < x1; ox++) {
              const pi = src + (<usize>((ox - x0) * sw) << 2);
              const po = row + (<usize>ox << 2);
              if (mode == 0) store<f32>(po, load<f32>(po) + wv * load<f32>(pi));
              else if (mode == 1) store<f32>(pi, load<f32>(pi) + wv * load<f32>(po));
              else tail += load<f32>(po) * load<f32>(pi);
            }
          }
          if (mode == 2) {
            const q = acc + (<usize>tap << 3);
            store<f64>(q, load<f64>(q) + <f64>f32x4.extract_lane(sum, 0) + <f64>f32x4.extract_lane(sum, 1) + <f64>f32x4.extract_lane(sum, 2) + <f64>f32x4.extract_lane(sum, 3) + <f64>tail);
          }
        }
      }
    }
  }
  if (mode == 2) for (let i = 0; i < c * taps; i++) store<f32>(out + (<usize>i << 2), <f32>load<f64>(acc + (<usize>i << 3)));
}

// ---------------------------------------------------------------- pooling

/** Max pooling; argmax gets the flat input index of each max (first on ties; NaN wins). */
export function maxPool2d(x: usize, y: usize, argmax: usize, planes: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, oh: i32, ow: i32): void {
  let o: usize = 0;
  for (let plane = 0; plane < planes; plane++) {
    const base = plane * h * w;
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++, o++) {
        const y0 = oy * sh - ph, x0 = ox * sw - pw;
        let best: f32 = -Infinity;
        let arg = -1;
        let done = false;
        for (let ki = 0; ki < kh && !done; ki++) {
          const iy = y0 + ki * dh;
          if (iy < 0 || iy >= h) continue;
          for (let kj = 0; kj < kw; kj++) {
            const ix = x0 + kj * dw;
            if (ix < 0 || ix >= w) continue;
            const i = base + iy * w + ix;
            if (arg < 0) arg = i;
            const v = load<f32>(x + (<usize>i << 2));
            if (v > best || v != v) {
              best = v;
              arg = i;
              if (v != v) {
                done = true;
                break;
              }
            }
          }
        }
        store<f32>(y + (o << 2), best);
        store<i32>(argmax + (o << 2), arg < 0 ? 0 : arg);
      }
    }
  }
}

/** Average pooling (mode 0) or its VJP (mode 1: y is the gradient, x receives it). cip: count_include_pad. */
function avgPoolImpl(x: usize, y: usize, planes: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, oh: i32, ow: i32, cip: i32, backward: bool): void {
  if (backward) memory.fill(x, 0, <usize>(planes * h * w) << 2);
  let o: usize = 0;
  for (let plane = 0; plane < planes; plane++) {
    const base = x + (<usize>(plane * h * w) << 2);
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++, o++) {
        const y0 = oy * sh - ph, x0 = ox * sw - pw;
        let count = 0;
        for (let ki = 0; ki < kh; ki++) {
          const iy = y0 + ki * dh;
          if (iy < 0 || iy >= h) continue;
          for (let kj = 0; kj < kw; kj++) {
            const ix = x0 + kj * dw;
            if (ix >= 0 && ix < w) count++;
          }
        }
        const padDivisor = (min(y0 + kh, h + ph) - y0) * (min(x0 + kw, w + pw) - x0);
        const div = <f32>(cip ? padDivisor : count);
        if (backward) {
          const share = load<f32>(y + (o << 2)) / div;
          for (let ki = 0; ki < kh; ki++) {
            const iy = y0 + ki * dh;
            if (iy < 0 || iy >= h) continue;
            for (let kj = 0; kj < kw; kj++) {
              const ix = x0 + kj * dw;
              if (ix < 0 || ix >= w) continue;
              const p = base + (<usize>(iy * w + ix) << 2);
              store<f32>(p, load<f32>(p) + share);
            }
          }
        } else {
          let s: f32 = 0;
          for (let ki = 0; ki < kh; ki++) {
            const iy = y0 + ki * dh;
            if (iy < 0 || iy >= h) continue;
            for (let kj = 0; kj < kw; kj++) {
              const ix = x0 + kj * dw;
              if (ix >= 0 && ix < w) s += load<f32>(base + (<usize>(iy * w + ix) << 2));
            }
          }
          store<f32>(y + (o << 2), s / div);
        }
      }
    }
  }
}

export function avgPool2d(x: usize, y: usize, planes: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, oh: i32, ow: i32, cip: i32): void {
  avgPoolImpl(x, y, planes, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cip, false);
}

export function avgPool2dBackward(g: usize, out: usize, planes: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, oh: i32, ow: i32, cip: i32): void {
  avgPoolImpl(out, g, planes, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cip, true);
}
