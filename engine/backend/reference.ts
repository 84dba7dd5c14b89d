import { FloatArray, FloatDType, allocateFloat } from '../dtype';
import { Shape, broadcastStrides, shapeEquals, sizeOf, stridesOf } from '../shape';
import { Backend, BinaryKernel, Conv2dGeometry, Conv2dMode, DepthwiseMode, MatmulPlan, ReduceKernel, UnaryKernel } from './backend';
import { erf, erfGrad, gelu, geluGrad, geluTanh, geluTanhGrad, sigmoid } from './special';

/**
 * The plain TypeScript backend: the reference every faster backend is tested against.
 * Written for clarity and exactness (float64 accumulators), not speed.
 */

type Unary = (x: number, p: number) => number;
const UNARY: Record<UnaryKernel, Unary> = {
  neg: (x) => -x,
  exp: (x) => Math.exp(x),
  log: (x) => Math.log(x),
  sqrt: (x) => Math.sqrt(x),
  rsqrt: (x) => 1 / Math.sqrt(x),
  abs: (x) => Math.abs(x),
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : x),
  square: (x) => x * x,
  reciprocal: (x) => 1 / x,
  tanh: (x) => Math.tanh(x),
  sigmoid: (x) => sigmoid(x),
  relu: (x) => (x > 0 ? x : x !== x ? x : 0),
  erf: (x) => erf(x),
  gelu: (x) => gelu(x),
  geluTanh: (x) => geluTanh(x),
  leakyRelu: (x, s) => (x > 0 ? x : x * s),
  powScalar: (x, e) => Math.pow(x, e),
  scale: (x, s) => x * s,
  addScalar: (x, s) => x + s,
  sin: (x) => Math.sin(x),
  cos: (x) => Math.cos(x),
  tan: (x) => Math.tan(x),
  asin: (x) => Math.asin(x),
  acos: (x) => Math.acos(x),
  atan: (x) => Math.atan(x),
};

type Binary = (a: number, b: number, p: number) => number;
const BINARY: Record<BinaryKernel, Binary> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: (a, b) => Math.pow(a, b),
  max: (a, b) => (a !== a || b !== b ? NaN : a > b ? a : b),
  min: (a, b) => (a !== a || b !== b ? NaN : a < b ? a : b),
  eq: (a, b) => (a === b ? 1 : 0),
  reluGrad: (g, x) => (x > 0 ? g : 0),
  leakyReluGrad: (g, x, s) => (x > 0 ? g : g * s),
  absGrad: (g, x) => (x > 0 ? g : x < 0 ? -g : 0),
  tanhGrad: (g, y) => g * (1 - y * y),
  sigmoidGrad: (g, y) => g * y * (1 - y),
  erfGrad: (g, x) => g * erfGrad(x),
  geluGrad: (g, x) => g * geluGrad(x),
  geluTanhGrad: (g, x) => g * geluTanhGrad(x),
};

/** Visits every element of `outShape` in row-major order with the matching offsets into broadcast operands. */
function forEachBroadcast(outShape: Shape, operandStrides: number[][], visit: (i: number, offsets: Int32Array) => void): void {
  const rank = outShape.length;
  const n = sizeOf(outShape);
  const k = operandStrides.length;
  const offsets = new Int32Array(k);
  const idx = new Int32Array(rank);
  for (let i = 0; i < n; i++) {
    visit(i, offsets);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      for (let j = 0; j < k; j++) offsets[j] += operandStrides[j][d];
      if (idx[d] < outShape[d]) break;
      for (let j = 0; j < k; j++) offsets[j] -= operandStrides[j][d] * outShape[d];
      idx[d] = 0;
    }
  }
}

function unary(op: UnaryKernel, x: FloatArray, param: number, dtype: FloatDType): FloatArray {
  const f = UNARY[op];
  const out = allocateFloat(dtype, x.length);
  for (let i = 0; i < x.length; i++) out[i] = f(x[i], param);
  return out;
}

function binary(op: BinaryKernel, a: FloatArray, aShape: Shape, b: FloatArray, bShape: Shape, outShape: Shape, dtype: FloatDType, param = 0): FloatArray {
  const f = BINARY[op];
  const out = allocateFloat(dtype, sizeOf(outShape));
  if (shapeEquals(aShape, outShape) && shapeEquals(bShape, outShape)) {
    for (let i = 0; i < out.length; i++) out[i] = f(a[i], b[i], param);
  } else if (shapeEquals(aShape, outShape) && b.length === 1) {
    const bv = b[0];
    for (let i = 0; i < out.length; i++) out[i] = f(a[i], bv, param);
  } else {
    const strides = [broadcastStrides(aShape, outShape), broadcastStrides(bShape, outShape)];
    forEachBroadcast(outShape, strides, (i, o) => {
      out[i] = f(a[o[0]], b[o[1]], param);
    });
  }
  return out;
}

/** Strides that map an input coordinate to its reduced output slot (0 along reduced axes). */
function reducedStrides(shape: Shape, axes: readonly number[]): { outShape: number[]; strides: number[] } {
  const outShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const own = stridesOf(outShape);
  return { outShape, strides: shape.map((_, i) => (axes.includes(i) ? 0 : own[i])) };
}

function reduce(op: ReduceKernel, x: FloatArray, shape: Shape, axes: readonly number[], dtype: FloatDType): FloatArray {
  const { outShape, strides } = reducedStrides(shape, axes);
  const acc = new Float64Array(sizeOf(outShape));
  if (op === 'sum') {
    forEachBroadcast(shape, [strides], (i, o) => {
      acc[o[0]] += x[i];
    });
  } else {
    const isMax = op === 'max';
    acc.fill(isMax ? -Infinity : Infinity);
    forEachBroadcast(shape, [strides], (i, o) => {
      const v = x[i];
      const cur = acc[o[0]];
      if (cur !== cur) return; // NaN sticks, as in PyTorch
      if (v !== v || (isMax ? v > cur : v < cur)) acc[o[0]] = v;
    });
  }
  const out = allocateFloat(dtype, acc.length);
  out.set(acc);
  return out;
}

function argReduce(op: 'max' | 'min', x: FloatArray, shape: Shape, axes: readonly number[]): Int32Array {
  const { outShape, strides } = reducedStrides(shape, axes);
  const n = sizeOf(outShape);
  const best = new Float64Array(n).fill(op === 'max' ? -Infinity : Infinity);
  const arg = new Int32Array(n).fill(-1);
  forEachBroadcast(shape, [strides], (i, o) => {
    const slot = o[0];
    const v = x[i];
    if (arg[slot] >= 0 && best[slot] !== best[slot]) return;
    if (arg[slot] < 0 || v !== v || (op === 'max' ? v > best[slot] : v < best[slot])) {
      best[slot] = v;
      arg[slot] = i;
    }
  });
  return arg;
}

function matmul(a: FloatArray, b: FloatArray, plan: MatmulPlan, dtype: FloatDType): FloatArray {
  const { batch, m, k, n, aOffsets, bOffsets, transA, transB } = plan;
  const out = allocateFloat(dtype, batch * m * n);
  const row = new Float64Array(n);
  for (let p = 0; p < batch; p++) {
    const ao = aOffsets[p];
    const bo = bOffsets[p];
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let kk = 0; kk < k; kk++) {
        const av = transA ? a[ao + kk * m + i] : a[ao + i * k + kk];
        if (transB) {
          for (let j = 0; j < n; j++) row[j] += av * b[bo + j * k + kk];
        } else {
          const base = bo + kk * n;
          for (let j = 0; j < n; j++) row[j] += av * b[base + j];
        }
      }
      out.set(row, p * m * n + i * n);
    }
  }
  return out;
}

function strided(x: FloatArray, outShape: Shape, strides: readonly number[], offset: number, dtype: FloatDType): FloatArray {
  const out = allocateFloat(dtype, sizeOf(outShape));
  forEachBroadcast(outShape, [[...strides]], (i, o) => {
    out[i] = x[offset + o[0]];
  });
  return out;
}

function stridedScatterAdd(g: FloatArray, gShape: Shape, strides: readonly number[], offset: number, size: number, dtype: FloatDType): FloatArray {
  const acc = new Float64Array(size);
  forEachBroadcast(gShape, [[...strides]], (i, o) => {
    acc[offset + o[0]] += g[i];
  });
  const out = allocateFloat(dtype, size);
  out.set(acc);
  return out;
}

function concat(parts: readonly FloatArray[], outer: number, sizes: readonly number[], dtype: FloatDType): FloatArray {
  const total = sizes.reduce((a, b) => a + b, 0);
  const out = allocateFloat(dtype, outer * total);
  for (let o = 0; o < outer; o++) {
    let at = o * total;
    parts.forEach((p, i) => {
      out.set(p.subarray(o * sizes[i], (o + 1) * sizes[i]), at);
      at += sizes[i];
    });
  }
  return out;
}

function softmax(x: FloatArray, outer: number, n: number, inner: number, log: boolean, dtype: FloatDType): FloatArray {
  const out = allocateFloat(dtype, x.length);
  for (let o = 0; o < outer; o++) {
    for (let q = 0; q < inner; q++) {
      const base = o * n * inner + q;
      let max = -Infinity;
      for (let i = 0; i < n; i++) max = Math.max(max, x[base + i * inner]);
      if (max === -Infinity) max = 0; // an all -inf row gives NaN below, as in PyTorch
      let sum = 0;
      for (let i = 0; i < n; i++) sum += Math.exp(x[base + i * inner] - max);
      const logSum = Math.log(sum);
      for (let i = 0; i < n; i++) {
        const z = x[base + i * inner] - max;
        out[base + i * inner] = log ? z - logSum : Math.exp(z) / sum;
      }
    }
  }
  return out;
}

function softmaxBackward(y: FloatArray, g: FloatArray, outer: number, n: number, inner: number, log: boolean, dtype: FloatDType): FloatArray {
  const out = allocateFloat(dtype, y.length);
  for (let o = 0; o < outer; o++) {
    for (let q = 0; q < inner; q++) {
      const base = o * n * inner + q;
      let dot = 0;
      for (let i = 0; i < n; i++) dot += log ? g[base + i * inner] : g[base + i * inner] * y[base + i * inner];
      for (let i = 0; i < n; i++) {
        const j = base + i * inner;
        out[j] = log ? g[j] - Math.exp(y[j]) * dot : y[j] * (g[j] - dot);
      }
    }
  }
  return out;
}

function layerNorm(x: FloatArray, weight: FloatArray | null, bias: FloatArray | null, rows: number, n: number, eps: number, rms: boolean, dtype: FloatDType) {
  const y = allocateFloat(dtype, x.length);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * n;
    let mu = 0;
    if (!rms) {
      for (let i = 0; i < n; i++) mu += x[base + i];
      mu /= n;
    }
    let v = 0;
    for (let i = 0; i < n; i++) {
      const d = x[base + i] - mu;
      v += d * d;
    }
    const rs = 1 / Math.sqrt(v / n + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let i = 0; i < n; i++) {
      let val = (x[base + i] - mu) * rs;
      if (weight) val *= weight[i];
      if (bias) val += bias[i];
      y[base + i] = val;
    }
  }
  return { y, mean, rstd };
}

function batchNorm(x: FloatArray, weight: FloatArray | null, bias: FloatArray | null, outer: number, c: number, inner: number, eps: number, dtype: FloatDType) {
  const y = allocateFloat(dtype, x.length);
  const mean = new Float64Array(c);
  const rstd = new Float64Array(c);
  const count = outer * inner;
  for (let ch = 0; ch < c; ch++) {
    let mu = 0;
    for (let o = 0; o < outer; o++) for (let i = 0, j = (o * c + ch) * inner; i < inner; i++, j++) mu += x[j];
    mu /= count;
    let v = 0;
    for (let o = 0; o < outer; o++) {
      for (let i = 0, j = (o * c + ch) * inner; i < inner; i++, j++) {
        const d = x[j] - mu;
        v += d * d;
      }
    }
    const rs = 1 / Math.sqrt(v / count + eps);
    mean[ch] = mu;
    rstd[ch] = rs;
    const w = weight ? weight[ch] : 1;
    const b = bias ? bias[ch] : 0;
    for (let o = 0; o < outer; o++) for (let i = 0, j = (o * c + ch) * inner; i < inner; i++, j++) y[j] = (x[j] - mu) * rs * w + b;
  }
  return { y, mean, rstd };
}

function batchNormBackward(x: FloatArray, weight: FloatArray | null, g: FloatArray, mean: Float64Array, rstd: Float64Array, outer: number, c: number, inner: number, dtype: FloatDType) {
  const gx = allocateFloat(dtype, x.length);
  const gw = allocateFloat(dtype, c);
  const gb = allocateFloat(dtype, c);
  const count = outer * inner;
  for (let ch = 0; ch < c; ch++) {
    const mu = mean[ch];
    const rs = rstd[ch];
    let sumG = 0;
    let sumGX = 0;
    for (let o = 0; o < outer; o++) {
      for (let i = 0, j = (o * c + ch) * inner; i < inner; i++, j++) {
        sumG += g[j];
        sumGX += g[j] * (x[j] - mu) * rs;
      }
    }
    gw[ch] = sumGX;
    gb[ch] = sumG;
    // gx = w * rs * (g - mean(g) - xhat * mean(g * xhat)): the batch mean and variance depend on x too.
    const scale = (weight ? weight[ch] : 1) * rs;
    const meanG = sumG / count;
    const meanGX = sumGX / count;
    for (let o = 0; o < outer; o++) {
      for (let i = 0, j = (o * c + ch) * inner; i < inner; i++, j++) gx[j] = scale * (g[j] - meanG - (x[j] - mu) * rs * meanGX);
    }
  }
  return { gx, gw, gb };
}

function layerNormBackward(x: FloatArray, weight: FloatArray | null, g: FloatArray, mean: Float64Array, rstd: Float64Array, rows: number, n: number, rms: boolean, dtype: FloatDType) {
  const gx = allocateFloat(dtype, x.length);
  const gw = new Float64Array(n);
  const gb = new Float64Array(n);
  const gxhat = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    const base = r * n;
    const mu = mean[r];
    const rs = rstd[r];
    let sumG = 0;
    let sumGX = 0;
    for (let i = 0; i < n; i++) {
      const xhat = (x[base + i] - mu) * rs;
      const gi = g[base + i];
      gw[i] += gi * xhat;
      gb[i] += gi;
      const gh = weight ? gi * weight[i] : gi;
      gxhat[i] = gh;
      sumG += gh;
      sumGX += gh * xhat;
    }
    const meanG = rms ? 0 : sumG / n;
    const meanGX = sumGX / n;
    for (let i = 0; i < n; i++) {
      const xhat = (x[base + i] - mu) * rs;
      gx[base + i] = rs * (gxhat[i] - meanG - xhat * meanGX);
    }
  }
  const outW = allocateFloat(dtype, n);
  outW.set(gw);
  const outB = allocateFloat(dtype, n);
  outB.set(gb);
  return { gx, gw: outW, gb: outB };
}

/** Calls visit(colIndex, inputIndex or -1 for padding) for every im2col entry. */
function forEachIm2col(geo: Conv2dGeometry, visit: (col: number, input: number) => void): void {
  const { n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow } = geo;
  let col = 0;
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const inBase = (b * c + ch) * h * w;
      for (let ki = 0; ki < kh; ki++) {
        for (let kj = 0; kj < kw; kj++) {
          for (let oy = 0; oy < oh; oy++) {
            const iy = oy * sh - ph + ki * dh;
            for (let ox = 0; ox < ow; ox++, col++) {
              const ix = ox * sw - pw + kj * dw;
              visit(col, iy >= 0 && iy < h && ix >= 0 && ix < w ? inBase + iy * w + ix : -1);
            }
          }
        }
      }
    }
  }
}

function im2col(x: FloatArray, geo: Conv2dGeometry, dtype: FloatDType): FloatArray {
  const out = allocateFloat(dtype, geo.n * geo.c * geo.kh * geo.kw * geo.oh * geo.ow);
  forEachIm2col(geo, (col, input) => {
    if (input >= 0) out[col] = x[input];
  });
  return out;
}

function col2im(cols: FloatArray, geo: Conv2dGeometry, dtype: FloatDType): FloatArray {
  const acc = new Float64Array(geo.n * geo.c * geo.h * geo.w);
  forEachIm2col(geo, (col, input) => {
    if (input >= 0) acc[input] += cols[col];
  });
  const out = allocateFloat(dtype, acc.length);
  out.set(acc);
  return out;
}

/** Depthwise convolution over the im2col walk (see Backend.depthwiseConv2d), float64 accumulation. */
function depthwiseConv2d(mode: DepthwiseMode, a: FloatArray, b: FloatArray, geo: Conv2dGeometry, dtype: FloatDType): FloatArray {
  const taps = geo.kh * geo.kw;
  const l = geo.oh * geo.ow;
  const acc = new Float64Array(mode === 'forward' ? geo.n * geo.c * l : mode === 'inputGrad' ? geo.n * geo.c * geo.h * geo.w : geo.c * taps);
  // im2col entry `col` is (plane, tap, position); `input` the image element it reads.
  forEachIm2col(geo, (col, input) => {
    if (input < 0) return;
    const plane = Math.floor(col / (taps * l));
    const tap = (plane % geo.c) * taps + (Math.floor(col / l) % taps);
    const at = plane * l + (col % l);
    if (mode === 'forward') acc[at] += b[tap] * a[input];
    else if (mode === 'inputGrad') acc[input] += b[tap] * a[at];
    else acc[tap] += b[at] * a[input];
  });
  const out = allocateFloat(dtype, acc.length);
  out.set(acc);
  return out;
}

/**
 * Dense grouped convolution over the im2col walk (see Backend.conv2d), float64 accumulation: each column entry
 * (image, input channel, tap, position) meets the og filters of its channel's group.
 */
function conv2d(mode: Conv2dMode, a: FloatArray, b: FloatArray, geo: Conv2dGeometry, groups: number, o: number, dtype: FloatDType): FloatArray {
  const { n, c, h, w } = geo;
  const taps = geo.kh * geo.kw;
  const l = geo.oh * geo.ow;
  const cg = c / groups;
  const og = o / groups;
  const acc = new Float64Array(mode === 'forward' ? n * o * l : mode === 'inputGrad' ? n * c * h * w : o * cg * taps);
  forEachIm2col(geo, (col, input) => {
    if (input < 0) return;
    const pos = col % l;
    const rest = Math.floor(col / l);
    const tap = rest % taps;
    const plane = Math.floor(rest / taps);
    const ch = plane % c;
    const img = Math.floor(plane / c);
    const o0 = Math.floor(ch / cg) * og;
    const wAt = (ch % cg) * taps + tap; // weight index past the output channel's block
    for (let oc = o0; oc < o0 + og; oc++) {
      const at = (img * o + oc) * l + pos;
      const wi = oc * cg * taps + wAt;
      if (mode === 'forward') acc[at] += b[wi] * a[input];
      else if (mode === 'inputGrad') acc[input] += b[wi] * a[at];
      else acc[wi] += a[at] * b[input];
    }
  });
  const out = allocateFloat(dtype, acc.length);
  out.set(acc);
  return out;
}

/** See Backend.hardSigmoid (float64 arithmetic, rounded once on store). */
function hardSigmoid(x: FloatArray, g: FloatArray | null, alpha: number, beta: number, swish: boolean, dtype: FloatDType): FloatArray {
  const out = allocateFloat(dtype, x.length);
  for (let i = 0; i < x.length; i++) {
    const ax = alpha * x[i];
    const s = ax + beta;
    const t = s < 0 ? 0 : s > 1 ? 1 : s;
    if (!g) out[i] = swish ? x[i] * t : t;
    else {
      const inside = !(s < 0) && !(s > 1);
      out[i] = swish ? g[i] * (t + (inside ? ax : 0)) : inside ? g[i] * alpha : 0;
    }
  }
  return out;
}

/** See Backend.swishBackward (float64 arithmetic, rounded once on store). */
function swishBackward(x: FloatArray, g: FloatArray, dtype: FloatDType): FloatArray {
  const out = allocateFloat(dtype, x.length);
  for (let i = 0; i < x.length; i++) {
    const s = sigmoid(x[i]);
    out[i] = g[i] * s * (1 + x[i] * (1 - s));
  }
  return out;
}

function gather(x: FloatArray, outer: number, axisLen: number, inner: number, indices: Int32Array, dtype: FloatDType): FloatArray {
  const k = indices.length;
  const out = allocateFloat(dtype, outer * k * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      const src = (o * axisLen + indices[j]) * inner;
      out.set(x.subarray(src, src + inner), (o * k + j) * inner);
    }
  }
  return out;
}

function scatterAdd(g: FloatArray, outer: number, axisLen: number, inner: number, indices: Int32Array, dtype: FloatDType): FloatArray {
  const k = indices.length;
  const acc = new Float64Array(outer * axisLen * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      const dst = (o * axisLen + indices[j]) * inner;
      const src = (o * k + j) * inner;
      for (let q = 0; q < inner; q++) acc[dst + q] += g[src + q];
    }
  }
  const out = allocateFloat(dtype, acc.length);
  out.set(acc);
  return out;
}

/** Visits every pooling window: (output index, list of in-bounds input indices, PyTorch's count_include_pad divisor). */
function forEachPoolWindow(geo: Conv2dGeometry, visit: (out: number, inputs: number[], padDivisor: number) => void): void {
  const { n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow } = geo;
  const inputs: number[] = [];
  let o = 0;
  for (let plane = 0; plane < n * c; plane++) {
    const base = plane * h * w;
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++, o++) {
        inputs.length = 0;
        const y0 = oy * sh - ph;
        const x0 = ox * sw - pw;
        for (let ki = 0; ki < kh; ki++) {
          const iy = y0 + ki * dh;
          if (iy < 0 || iy >= h) continue;
          for (let kj = 0; kj < kw; kj++) {
            const ix = x0 + kj * dw;
            if (ix >= 0 && ix < w) inputs.push(base + iy * w + ix);
          }
        }
        const padDivisor = (Math.min(y0 + kh, h + ph) - y0) * (Math.min(x0 + kw, w + pw) - x0);
        visit(o, inputs, padDivisor);
      }
    }
  }
}

function maxPool2d(x: FloatArray, geo: Conv2dGeometry, dtype: FloatDType) {
  const size = geo.n * geo.c * geo.oh * geo.ow;
  const y = allocateFloat(dtype, size);
  const argmax = new Int32Array(size);
  forEachPoolWindow(geo, (o, inputs) => {
    let best = -Infinity;
    let arg = inputs[0] ?? 0;
    for (const i of inputs) {
      const v = x[i];
      if (v > best || v !== v) {
        best = v;
        arg = i;
        if (v !== v) break;
      }
    }
    y[o] = best;
    argmax[o] = arg;
  });
  return { y, argmax };
}

function avgPool2d(x: FloatArray, geo: Conv2dGeometry, countIncludePad: boolean, dtype: FloatDType): FloatArray {
  const y = allocateFloat(dtype, geo.n * geo.c * geo.oh * geo.ow);
  forEachPoolWindow(geo, (o, inputs, padDivisor) => {
    let s = 0;
    for (const i of inputs) s += x[i];
    y[o] = s / (countIncludePad ? padDivisor : inputs.length);
  });
  return y;
}

function avgPool2dBackward(g: FloatArray, geo: Conv2dGeometry, countIncludePad: boolean, dtype: FloatDType): FloatArray {
  const acc = new Float64Array(geo.n * geo.c * geo.h * geo.w);
  forEachPoolWindow(geo, (o, inputs, padDivisor) => {
    const share = g[o] / (countIncludePad ? padDivisor : inputs.length);
    for (const i of inputs) acc[i] += share;
  });
  const out = allocateFloat(dtype, acc.length);
  out.set(acc);
  return out;
}

function where(cond: Uint8Array, condShape: Shape, a: FloatArray, aShape: Shape, b: FloatArray, bShape: Shape, outShape: Shape, dtype: FloatDType): FloatArray {
  const out = allocateFloat(dtype, sizeOf(outShape));
  const strides = [broadcastStrides(condShape, outShape), broadcastStrides(aShape, outShape), broadcastStrides(bShape, outShape)];
  forEachBroadcast(outShape, strides, (i, o) => {
    out[i] = cond[o[0]] ? a[o[1]] : b[o[2]];
  });
  return out;
}

export const referenceBackend: Backend = {
  name: 'typescript',
  unary,
  binary,
  reduce,
  argReduce,
  matmul,
  strided,
  stridedScatterAdd,
  concat,
  softmax,
  softmaxBackward,
  layerNorm,
  layerNormBackward,
  batchNorm,
  batchNormBackward,
  im2col,
  col2im,
  depthwiseConv2d,
  conv2d,
  hardSigmoid,
  swishBackward,
  gather,
  scatterAdd,
  maxPool2d,
  avgPool2d,
  avgPool2dBackward,
  where,
};
