// @ts-nocheck -- AssemblyScript source (compiled by asc via engine/backend/wasm/build.mjs, not by tsc).
/**
 * Reductions (sum/max/min, argmax/argmin), softmax and log-softmax with their VJP, layer/RMS norm
 * with its VJP. Sums accumulate in float64 lanes (f64x2, promoted from f32x4 loads) like the
 * reference; softmax sums and norm statistics are per row.
 */
import { expV } from './math';

const IDX = memory.data(64 * 4);

@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}
@inline function hsum64(v: v128): f64 {
  return f64x2.extract_lane(v, 0) + f64x2.extract_lane(v, 1);
}
@inline function hi(v: v128): v128 {
  return v128.shuffle<i32>(v, v, 2, 3, 2, 3);
}
@inline function hmax(v: v128): f32 {
  const m = f32x4.max(v, v128.shuffle<i32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(f32x4.max(m, v128.shuffle<i32>(m, m, 1, 0, 3, 2)), 0);
}
@inline function hmin(v: v128): f32 {
  const m = f32x4.min(v, v128.shuffle<i32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(f32x4.min(m, v128.shuffle<i32>(m, m, 1, 0, 3, 2)), 0);
}

/** Float64 sum of n floats at x. */
function rowSum(x: usize, n: i32): f64 {
  let a0 = f64x2.splat(0), a1 = f64x2.splat(0), a2 = f64x2.splat(0), a3 = f64x2.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    const v = v128.load(x + o);
    const w = v128.load(x + o, 16);
    a0 = f64x2.add(a0, f64x2.promote_low_f32x4(v));
    a1 = f64x2.add(a1, f64x2.promote_low_f32x4(hi(v)));
    a2 = f64x2.add(a2, f64x2.promote_low_f32x4(w));
    a3 = f64x2.add(a3, f64x2.promote_low_f32x4(hi(w)));
  }
  let s = hsum64(f64x2.add(f64x2.add(a0, a1), f64x2.add(a2, a3)));
  for (; i < n; i++) s += <f64>load<f32>(x + (<usize>i << 2));
  return s;
}

/**
 * Reduces the middle axis of [outer, r, inner] (op 0 sum, 1 max, 2 min) into out [outer, inner].
 * `work` holds inner float64s for the sum accumulators.
 */
export function reduce3(op: i32, x: usize, out: usize, outer: i32, r: i32, inner: i32, work: usize): void {
  const isMax = op == 1;
  const init: f32 = isMax ? -Infinity : Infinity;
  for (let o = 0; o < outer; o++) {
    const base = x + (<usize>(o * r * inner) << 2);
    const dst = out + (<usize>(o * inner) << 2);
    if (inner == 1) {
      if (op == 0) {
        store<f32>(dst, <f32>rowSum(base, r));
      } else {
        let m = f32x4.splat(init);
        let i = 0;
        for (; i + 4 <= r; i += 4) {
          const v = v128.load(base + (<usize>i << 2));
          m = isMax ? f32x4.max(m, v) : f32x4.min(m, v);
        }
        let s: f32 = isMax ? hmax(m) : hmin(m);
        for (; i < r; i++) {
          const v = load<f32>(base + (<usize>i << 2));
          if (s != s) break;
          if (v != v || (isMax ? v > s : v < s)) s = v;
        }
        store<f32>(dst, s);
      }
      continue;
    }
    if (op == 0) {
      memory.fill(work, 0, <usize>inner << 3);
      for (let i = 0; i < r; i++) {
        const row = base + (<usize>(i * inner) << 2);
        let q = 0;
        for (; q + 4 <= inner; q += 4) {
          const v = v128.load(row + (<usize>q << 2));
          const w = work + (<usize>q << 3);
          v128.store(w, f64x2.add(v128.load(w), f64x2.promote_low_f32x4(v)));
          v128.store(w, f64x2.add(v128.load(w, 16), f64x2.promote_low_f32x4(hi(v))), 16);
        }
        for (; q < inner; q++) {
          const w = work + (<usize>q << 3);
          store<f64>(w, load<f64>(w) + <f64>load<f32>(row + (<usize>q << 2)));
        }
      }
      let q = 0;
      for (; q + 4 <= inner; q += 4) {
        const w = work + (<usize>q << 3);
        const lo = f32x4.demote_f64x2_zero(v128.load(w));
        const hi2 = f32x4.demote_f64x2_zero(v128.load(w, 16));
        v128.store(dst + (<usize>q << 2), v128.shuffle<i32>(lo, hi2, 0, 1, 4, 5));
      }
      for (; q < inner; q++) store<f32>(dst + (<usize>q << 2), <f32>load<f64>(work + (<usize>q << 3)));
    } else {
      // Lane-wise max/min over rows; wasm's f32x4.max/min propagate NaN (NaN sticks, as PyTorch).
      if (r == 0) {
        for (let q = 0; q < inner; q++) store<f32>(dst + (<usize>q << 2), init);
        continue;
      }
      memory.copy(dst, base, <usize>inner << 2);
      for (let i = 1; i < r; i++) {
        const row = base + (<usize>(i * inner) << 2);
        let q = 0;
        for (; q + 4 <= inner; q += 4) {
          const o = <usize>q << 2;
          const v = v128.load(row + o);
          const cur = v128.load(dst + o);
          v128.store(dst + o, isMax ? f32x4.max(cur, v) : f32x4.min(cur, v));
        }
        for (; q < inner; q++) {
          const o = <usize>q << 2;
          const v = load<f32>(row + o);
          const cur = load<f32>(dst + o);
          if (cur != cur) continue;
          if (v != v || (isMax ? v > cur : v < cur)) store<f32>(dst + o, v);
        }
      }
    }
  }
}

/**
 * General reduction over any set of axes. Descriptor [rank, shape[rank], outStrides[rank]] with
 * outStrides 0 along reduced axes; `acc` holds outSize float64 accumulators.
 */
export function reduceGeneral(op: i32, x: usize, out: usize, desc: usize, outSize: i32, acc: usize): void {
  const rank = load<i32>(desc);
  const shape = desc + 4;
  const strides = shape + (<usize>rank << 2);
  const isMax = op == 1;
  const init: f64 = op == 0 ? 0 : isMax ? -Infinity : Infinity;
  let total = 1;
  for (let d = 0; d < rank; d++) {
    total *= load<i32>(shape + (<usize>d << 2));
    store<i32>(IDX + (<usize>d << 2), 0);
  }
  for (let i = 0; i < outSize; i++) store<f64>(acc + (<usize>i << 3), init);
  if (op == 0 && rank > 1) {
    sumRows(x, acc, rank, shape, strides, total);
  } else {
    elementwiseReduce(x, acc, rank, shape, strides, total, op);
  }
  for (let i = 0; i < outSize; i++) store<f32>(out + (<usize>i << 2), <f32>load<f64>(acc + (<usize>i << 3)));
}

/**
 * The sum of reduceGeneral a row of the last (merged) dim at a time, SIMD within the row: a reduced last dim adds
 * the row's float64 sum into one accumulator, a kept one adds the row into consecutive accumulators. (Summing a
 * [N, C, H*W] gradient over N and H*W, the bias and batch-norm reductions of a conv net, was an index walk per
 * element.)
 */
function sumRows(x: usize, acc: usize, rank: i32, shape: usize, strides: usize, total: i32): void {
  const last = <usize>(rank - 1) << 2;
  const len = load<i32>(shape + last);
  const reducedLast = load<i32>(strides + last) == 0;
  const rows = len == 0 ? 0 : total / len;
  let slot = 0;
  let row = x;
  for (let r = 0; r < rows; r++) {
    if (reducedLast) {
      const p = acc + (<usize>slot << 3);
      store<f64>(p, load<f64>(p) + rowSum(row, len));
    } else {
      const dst = acc + (<usize>slot << 3);
      let q = 0;
      for (; q + 4 <= len; q += 4) {
        const v = v128.load(row + (<usize>q << 2));
        const w = dst + (<usize>q << 3);
        v128.store(w, f64x2.add(v128.load(w), f64x2.promote_low_f32x4(v)));
        v128.store(w, f64x2.add(v128.load(w, 16), f64x2.promote_low_f32x4(hi(v))), 16);
      }
      for (; q < len; q++) {
        const w = dst + (<usize>q << 3);
        store<f64>(w, load<f64>(w) + <f64>load<f32>(row + (<usize>q << 2)));
      }
    }
    row += <usize>len << 2;
    for (let d = rank - 2; d >= 0; d--) {
      const dd = <usize>d << 2;
      const c = load<i32>(IDX + dd) + 1;
      const s = load<i32>(strides + dd), sz = load<i32>(shape + dd);
      slot += s;
      if (c < sz) {
        store<i32>(IDX + dd, c);
        break;
      }
      slot -= s * sz;
      store<i32>(IDX + dd, 0);
    }
  }
}

/** reduceGeneral one element at a time (max/min, and sums of rank 1). */
function elementwiseReduce(x: usize, acc: usize, rank: i32, shape: usize, strides: usize, total: i32, op: i32): void {
  const isMax = op == 1;
  let slot = 0;
  for (let i = 0; i < total; i++) {
    const v = <f64>load<f32>(x + (<usize>i << 2));
    const p = acc + (<usize>slot << 3);
    if (op == 0) {
      store<f64>(p, load<f64>(p) + v);
    } else {
      const cur = load<f64>(p);
      if (cur == cur && (v != v || (isMax ? v > cur : v < cur))) store<f64>(p, v);
    }
    for (let d = rank - 1; d >= 0; d--) {
      const dd = <usize>d << 2;
      const c = load<i32>(IDX + dd) + 1;
      const s = load<i32>(strides + dd), sz = load<i32>(shape + dd);
      slot += s;
      if (c < sz) {
        store<i32>(IDX + dd, c);
        break;
      }
      slot -= s * sz;
      store<i32>(IDX + dd, 0);
    }
  }
}

/** Flat index of the max (op 1) / min (op 2) of each reduced group, first on ties, NaN wins. best: outSize floats. */
export function argReduce(op: i32, x: usize, out: usize, desc: usize, outSize: i32, best: usize): void {
  const rank = load<i32>(desc);
  const shape = desc + 4;
  const strides = shape + (<usize>rank << 2);
  const isMax = op == 1;
  let total = 1;
  for (let d = 0; d < rank; d++) {
    total *= load<i32>(shape + (<usize>d << 2));
    store<i32>(IDX + (<usize>d << 2), 0);
  }
  for (let i = 0; i < outSize; i++) store<i32>(out + (<usize>i << 2), -1);
  let slot = 0;
  for (let i = 0; i < total; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    const pa = out + (<usize>slot << 2);
    const pb = best + (<usize>slot << 2);
    const arg = load<i32>(pa);
    const b = load<f32>(pb);
    if (!(arg >= 0 && b != b)) {
      if (arg < 0 || v != v || (isMax ? v > b : v < b)) {
        store<f32>(pb, v);
        store<i32>(pa, i);
      }
    }
    for (let d = rank - 1; d >= 0; d--) {
      const dd = <usize>d << 2;
      const c = load<i32>(IDX + dd) + 1;
      const s = load<i32>(strides + dd), sz = load<i32>(shape + dd);
      slot += s;
      if (c < sz) {
        store<i32>(IDX + dd, c);
        break;
      }
      slot -= s * sz;
      store<i32>(IDX + dd, 0);
    }
  }
}

// ---------------------------------------------------------------- softmax

/** Softmax (log = 0) or log-softmax (log = 1) over the middle axis of [outer, n, inner]. work: 3*inner floats. */
export function softmax(x: usize, out: usize, outer: i32, n: i32, inner: i32, log: i32, work: usize): void {
  const ninf = f32x4.splat(-Infinity);
  for (let o = 0; o < outer; o++) {
    const off = <usize>(o * n * inner) << 2;
    const xb = x + off;
    const ob = out + off;
    if (inner == 1) {
      let mv = ninf;
      let i = 0;
      for (; i + 4 <= n; i += 4) mv = f32x4.max(mv, v128.load(xb + (<usize>i << 2)));
      let m = hmax(mv);
      for (; i < n; i++) {
        const v = load<f32>(xb + (<usize>i << 2));
        m = v != v || m != m ? NaN : v > m ? v : m;
      }
      if (m == -Infinity) m = 0; // an all -inf row gives NaN below, as in PyTorch
      const mm = f32x4.splat(m);
      let sv = f32x4.splat(0);
      i = 0;
      for (; i + 4 <= n; i += 4) {
        const q = <usize>i << 2;
        const e = expV(f32x4.sub(v128.load(xb + q), mm));
        if (!log) v128.store(ob + q, e);
        sv = f32x4.add(sv, e);
      }
      let s = hsum(sv);
      for (; i < n; i++) {
        const q = <usize>i << 2;
        const e = f32x4.extract_lane(expV(f32x4.splat(load<f32>(xb + q) - m)), 0);
        if (!log) store<f32>(ob + q, e);
        s += e;
      }
      i = 0;
      if (log) {
        const ls = f32x4.splat(<f32>Math.log(<f64>s));
        for (; i + 4 <= n; i += 4) {
          const q = <usize>i << 2;
          v128.store(ob + q, f32x4.sub(f32x4.sub(v128.load(xb + q), mm), ls));
        }
        const lsf = f32x4.extract_lane(ls, 0);
        for (; i < n; i++) {
          const q = <usize>i << 2;
          store<f32>(ob + q, load<f32>(xb + q) - m - lsf);
        }
      } else {
        const sv4 = f32x4.splat(s);
        for (; i + 4 <= n; i += 4) {
          const q = <usize>i << 2;
          v128.store(ob + q, f32x4.div(v128.load(ob + q), sv4));
        }
        for (; i < n; i++) {
          const q = <usize>i << 2;
          store<f32>(ob + q, load<f32>(ob + q) / s);
        }
      }
      continue;
    }
    // inner > 1: vectorise across the inner positions; work = [max | sum | log sum] per position.
    const mx = work;
    const sm = work + (<usize>inner << 2);
    const row = <usize>inner << 2;
    memory.copy(mx, xb, row);
    for (let i = 1; i < n; i++) {
      const xr = xb + <usize>i * row;
      let q = 0;
      for (; q + 4 <= inner; q += 4) {
        const b = <usize>q << 2;
        v128.store(mx + b, f32x4.max(v128.load(mx + b), v128.load(xr + b)));
      }
      for (; q < inner; q++) {
        const b = <usize>q << 2;
        const m = load<f32>(mx + b), v = load<f32>(xr + b);
        store<f32>(mx + b, v != v || m != m ? NaN : v > m ? v : m);
      }
    }
    for (let q = 0; q < inner; q++) {
      const b = <usize>q << 2;
      if (load<f32>(mx + b) == -Infinity) store<f32>(mx + b, 0);
      store<f32>(sm + b, 0);
    }
    for (let i = 0; i < n; i++) {
      const xr = xb + <usize>i * row;
      const or = ob + <usize>i * row;
      let q = 0;
      for (; q + 4 <= inner; q += 4) {
        const b = <usize>q << 2;
        const e = expV(f32x4.sub(v128.load(xr + b), v128.load(mx + b)));
        if (!log) v128.store(or + b, e);
        v128.store(sm + b, f32x4.add(v128.load(sm + b), e));
      }
      for (; q < inner; q++) {
        const b = <usize>q << 2;
        const e = f32x4.extract_lane(expV(f32x4.splat(load<f32>(xr + b) - load<f32>(mx + b))), 0);
        if (!log) store<f32>(or + b, e);
        store<f32>(sm + b, load<f32>(sm + b) + e);
      }
    }
    if (log) {
      for (let q = 0; q < inner; q++) {
        const b = <usize>q << 2;
        store<f32>(sm + b, <f32>Math.log(<f64>load<f32>(sm + b)));
      }
    }
    for (let i = 0; i < n; i++) {
      const xr = xb + <usize>i * row;
      const or = ob + <usize>i * row;
      let q = 0;
      for (; q + 4 <= inner; q += 4) {
        const b = <usize>q << 2;
        if (log) v128.store(or + b, f32x4.sub(f32x4.sub(v128.load(xr + b), v128.load(mx + b)), v128.load(sm + b)));
        else v128.store(or + b, f32x4.div(v128.load(or + b), v128.load(sm + b)));
      }
      for (; q < inner; q++) {
        const b = <usize>q << 2;
        if (log) store<f32>(or + b, load<f32>(xr + b) - load<f32>(mx + b) - load<f32>(sm + b));
        else store<f32>(or + b, load<f32>(or + b) / load<f32>(sm + b));
      }
    }
  }
}

/** VJP of softmax (y = softmax output) or log-softmax (y = log-softmax output). work: inner floats. */
export function softmaxBackward(y: usize, g: usize, out: usize, outer: i32, n: i32, inner: i32, log: i32, work: usize): void {
  for (let o = 0; o < outer; o++) {
    const off = <usize>(o * n * inner) << 2;
    const yb = y + off, gb = g + off, ob = out + off;
    if (inner == 1) {
      let dv = f32x4.splat(0);
      let i = 0;
      for (; i + 4 <= n; i += 4) {
        const q = <usize>i << 2;
        const gv = v128.load(gb + q);
        dv = f32x4.add(dv, log ? gv : f32x4.mul(gv, v128.load(yb + q)));
      }
      let dot = hsum(dv);
      for (; i < n; i++) {
        const q = <usize>i << 2;
        dot += log ? load<f32>(gb + q) : load<f32>(gb + q) * load<f32>(yb + q);
      }
      const d4 = f32x4.splat(dot);
      i = 0;
      for (; i + 4 <= n; i += 4) {
        const q = <usize>i << 2;
        const yv = v128.load(yb + q), gv = v128.load(gb + q);
        v128.store(ob + q, log ? f32x4.sub(gv, f32x4.mul(expV(yv), d4)) : f32x4.mul(yv, f32x4.sub(gv, d4)));
      }
      for (; i < n; i++) {
        const q = <usize>i << 2;
        const yv = load<f32>(yb + q), gv = load<f32>(gb + q);
        store<f32>(ob + q, log ? gv - f32x4.extract_lane(expV(f32x4.splat(yv)), 0) * dot : yv * (gv - dot));
      }
      continue;
    }
    const row = <usize>inner << 2;
    memory.fill(work, 0, row);
    for (let i = 0; i < n; i++) {
      const yr = yb + <usize>i * row, gr = gb + <usize>i * row;
      for (let q = 0; q < inner; q++) {
        const b = <usize>q << 2;
        store<f32>(work + b, load<f32>(work + b) + (log ? load<f32>(gr + b) : load<f32>(gr + b) * load<f32>(yr + b)));
      }
    }
    for (let i = 0; i < n; i++) {
      const yr = yb + <usize>i * row, gr = gb + <usize>i * row, or = ob + <usize>i * row;
      let q = 0;
      for (; q + 4 <= inner; q += 4) {
        const b = <usize>q << 2;
        const yv = v128.load(yr + b), gv = v128.load(gr + b), d4 = v128.load(work + b);
        v128.store(or + b, log ? f32x4.sub(gv, f32x4.mul(expV(yv), d4)) : f32x4.mul(yv, f32x4.sub(gv, d4)));
      }
      for (; q < inner; q++) {
        const b = <usize>q << 2;
        const yv = load<f32>(yr + b), gv = load<f32>(gr + b), dot = load<f32>(work + b);
        store<f32>(or + b, log ? gv - f32x4.extract_lane(expV(f32x4.splat(yv)), 0) * dot : yv * (gv - dot));
      }
    }
  }
}

// ---------------------------------------------------------------- layer norm

/** Layer norm (rms = 0) or RMS norm (rms = 1) of each row of [rows, n]. weight/bias may be 0 (absent). mean/rstd: float64 per row. */
export function layerNorm(x: usize, weight: usize, bias: usize, y: usize, mean: usize, rstd: usize, rows: i32, n: i32, eps: f64, rms: i32): void {
  for (let r = 0; r < rows; r++) {
    const xb = x + (<usize>(r * n) << 2);
    const yb = y + (<usize>(r * n) << 2);
    const mu: f64 = rms ? 0 : rowSum(xb, n) / <f64>n;
    const rs: f64 = 1 / Math.sqrt(rowSquaredDeviation(xb, n, mu) / <f64>n + eps);
    store<f64>(mean + (<usize>r << 3), mu);
    store<f64>(rstd + (<usize>r << 3), rs);
    const mu4 = f32x4.splat(<f32>mu), rs4 = f32x4.splat(<f32>rs);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const q = <usize>i << 2;
      let val = f32x4.mul(f32x4.sub(v128.load(xb + q), mu4), rs4);
      if (weight) val = f32x4.mul(val, v128.load(weight + q));
      if (bias) val = f32x4.add(val, v128.load(bias + q));
      v128.store(yb + q, val);
    }
    for (; i < n; i++) {
      const q = <usize>i << 2;
      let val = (load<f32>(xb + q) - <f32>mu) * <f32>rs;
      if (weight) val *= load<f32>(weight + q);
      if (bias) val += load<f32>(bias + q);
      store<f32>(yb + q, val);
    }
  }
}

/**
 * VJP of layerNorm: gx [rows, n], gw and gb [n] (float32 outputs; gw/gb accumulate in float64 in
 * `work`, 2n doubles, plus n floats of per-row scratch).
 */
export function layerNormBackward(x: usize, weight: usize, g: usize, mean: usize, rstd: usize, gx: usize, gw: usize, gb: usize, rows: i32, n: i32, rms: i32, work: usize): void {
  const accW = work;
  const accB = work + (<usize>n << 3);
  const gh = accB + (<usize>n << 3);
  memory.fill(accW, 0, <usize>n << 4);
  for (let r = 0; r < rows; r++) {
    const xb = x + (<usize>(r * n) << 2), gr = g + (<usize>(r * n) << 2), gxr = gx + (<usize>(r * n) << 2);
    const mu = <f32>load<f64>(mean + (<usize>r << 3));
    const rs = <f32>load<f64>(rstd + (<usize>r << 3));
    const mu4 = f32x4.splat(mu), rs4 = f32x4.splat(rs);
    let sg = f32x4.splat(0), sgx = f32x4.splat(0);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const q = <usize>i << 2;
      const xhat = f32x4.mul(f32x4.sub(v128.load(xb + q), mu4), rs4);
      const gi = v128.load(gr + q);
      const pw = f32x4.mul(gi, xhat);
      const w8 = accW + (<usize>i << 3), b8 = accB + (<usize>i << 3);
      v128.store(w8, f64x2.add(v128.load(w8), f64x2.promote_low_f32x4(pw)));
      v128.store(w8, f64x2.add(v128.load(w8, 16), f64x2.promote_low_f32x4(hi(pw))), 16);
      v128.store(b8, f64x2.add(v128.load(b8), f64x2.promote_low_f32x4(gi)));
      v128.store(b8, f64x2.add(v128.load(b8, 16), f64x2.promote_low_f32x4(hi(gi))), 16);
      const h = weight ? f32x4.mul(gi, v128.load(weight + q)) : gi;
      v128.store(gh + q, h);
      sg = f32x4.add(sg, h);
      sgx = f32x4.add(sgx, f32x4.mul(h, xhat));
    }
    let sumG = hsum(sg), sumGX = hsum(sgx);
    for (; i < n; i++) {
      const q = <usize>i << 2;
      const xhat = (load<f32>(xb + q) - mu) * rs;
      const gi = load<f32>(gr + q);
      const w8 = accW + (<usize>i << 3), b8 = accB + (<usize>i << 3);
      store<f64>(w8, load<f64>(w8) + <f64>(gi * xhat));
      store<f64>(b8, load<f64>(b8) + <f64>gi);
      const h = weight ? gi * load<f32>(weight + q) : gi;
      store<f32>(gh + q, h);
      sumG += h;
      sumGX += h * xhat;
    }
    const meanG: f32 = rms ? 0 : sumG / <f32>n;
    const meanGX: f32 = sumGX / <f32>n;
    const mg4 = f32x4.splat(meanG), mgx4 = f32x4.splat(meanGX);
    i = 0;
    for (; i + 4 <= n; i += 4) {
      const q = <usize>i << 2;
      const xhat = f32x4.mul(f32x4.sub(v128.load(xb + q), mu4), rs4);
      v128.store(gxr + q, f32x4.mul(rs4, f32x4.sub(f32x4.sub(v128.load(gh + q), mg4), f32x4.mul(xhat, mgx4))));
    }
    for (; i < n; i++) {
      const q = <usize>i << 2;
      const xhat = (load<f32>(xb + q) - mu) * rs;
      store<f32>(gxr + q, rs * (load<f32>(gh + q) - meanG - xhat * meanGX));
    }
  }
  for (let i = 0; i < n; i++) {
    store<f32>(gw + (<usize>i << 2), <f32>load<f64>(accW + (<usize>i << 3)));
    store<f32>(gb + (<usize>i << 2), <f32>load<f64>(accB + (<usize>i << 3)));
  }
}

/** Float64 sum of (x - mu)^2 over n floats at x. */
function rowSquaredDeviation(x: usize, n: i32, mu: f64): f64 {
  const m2 = f64x2.splat(mu);
  let a0 = f64x2.splat(0), a1 = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    const d0 = f64x2.sub(f64x2.promote_low_f32x4(v), m2);
    const d1 = f64x2.sub(f64x2.promote_low_f32x4(hi(v)), m2);
    a0 = f64x2.add(a0, f64x2.mul(d0, d0));
    a1 = f64x2.add(a1, f64x2.mul(d1, d1));
  }
  let s: f64 = hsum64(f64x2.add(a0, a1));
  for (; i < n; i++) {
    const d = <f64>load<f32>(x + (<usize>i << 2)) - mu;
    s += d * d;
  }
  return s;
}

/**
 * Training-mode batch norm of x [outer, c, inner]: per channel, mean and 1/std (biased variance, float64) over
 * the outer x inner values, y = (x - mean) * rstd * weight + bias. Channel ch's values are `outer` runs of
 * `inner` contiguous floats, `c * inner` apart. weight / bias may be 0 (absent).
 */
export function batchNorm(x: usize, weight: usize, bias: usize, y: usize, mean: usize, rstd: usize, outer: i32, c: i32, inner: i32, eps: f64): void {
  const count = <f64>outer * <f64>inner;
  const stride = <usize>(c * inner) << 2;
  for (let ch = 0; ch < c; ch++) {
    const first = <usize>(ch * inner) << 2;
    let s: f64 = 0;
    for (let o = 0; o < outer; o++) s += rowSum(x + first + <usize>o * stride, inner);
    const mu = s / count;
    let v: f64 = 0;
    for (let o = 0; o < outer; o++) v += rowSquaredDeviation(x + first + <usize>o * stride, inner, mu);
    const rs: f64 = 1 / Math.sqrt(v / count + eps);
    store<f64>(mean + (<usize>ch << 3), mu);
    store<f64>(rstd + (<usize>ch << 3), rs);
    // y = x * scale + shift with scale = rstd * w, shift = b - mean * scale (float64, then float32).
    const w: f64 = weight ? <f64>load<f32>(weight + (<usize>ch << 2)) : 1;
    const b: f64 = bias ? <f64>load<f32>(bias + (<usize>ch << 2)) : 0;
    const scale = <f32>(rs * w);
    const mu32 = <f32>mu;
    const sc4 = f32x4.splat(scale), mu4 = f32x4.splat(mu32), b4 = f32x4.splat(<f32>b), b32 = <f32>b;
    for (let o = 0; o < outer; o++) {
      const xb = x + first + <usize>o * stride;
      const yb = y + first + <usize>o * stride;
      let i = 0;
      for (; i + 4 <= inner; i += 4) {
        const q = <usize>i << 2;
        v128.store(yb + q, f32x4.add(f32x4.mul(f32x4.sub(v128.load(xb + q), mu4), sc4), b4));
      }
      for (; i < inner; i++) {
        const q = <usize>i << 2;
        store<f32>(yb + q, (load<f32>(xb + q) - mu32) * scale + b32);
      }
    }
  }
}

/**
 * VJP of batchNorm (batch statistics as functions of x): gw = sum g * xhat, gb = sum g (float64 sums), and
 * gx = w * rstd * (g - gb / count - xhat * gw / count).
 */
export function batchNormBackward(x: usize, weight: usize, g: usize, mean: usize, rstd: usize, gx: usize, gw: usize, gb: usize, outer: i32, c: i32, inner: i32): void {
  const count = <f64>outer * <f64>inner;
  const stride = <usize>(c * inner) << 2;
  for (let ch = 0; ch < c; ch++) {
    const first = <usize>(ch * inner) << 2;
    const mu = <f32>load<f64>(mean + (<usize>ch << 3));
    const rs = <f32>load<f64>(rstd + (<usize>ch << 3));
    const mu4 = f32x4.splat(mu), rs4 = f32x4.splat(rs);
    let sumG: f64 = 0, sumGX: f64 = 0;
    for (let o = 0; o < outer; o++) {
      const xb = x + first + <usize>o * stride;
      const gr = g + first + <usize>o * stride;
      let ag0 = f64x2.splat(0), ag1 = f64x2.splat(0), ax0 = f64x2.splat(0), ax1 = f64x2.splat(0);
      let i = 0;
      for (; i + 4 <= inner; i += 4) {
        const q = <usize>i << 2;
        const gi = v128.load(gr + q);
        const gxh = f32x4.mul(gi, f32x4.mul(f32x4.sub(v128.load(xb + q), mu4), rs4));
        ag0 = f64x2.add(ag0, f64x2.promote_low_f32x4(gi));
        ag1 = f64x2.add(ag1, f64x2.promote_low_f32x4(hi(gi)));
        ax0 = f64x2.add(ax0, f64x2.promote_low_f32x4(gxh));
        ax1 = f64x2.add(ax1, f64x2.promote_low_f32x4(hi(gxh)));
      }
      sumG += hsum64(f64x2.add(ag0, ag1));
      sumGX += hsum64(f64x2.add(ax0, ax1));
      for (; i < inner; i++) {
        const q = <usize>i << 2;
        const gi = load<f32>(gr + q);
        sumG += <f64>gi;
        sumGX += <f64>(gi * ((load<f32>(xb + q) - mu) * rs));
      }
    }
    store<f32>(gw + (<usize>ch << 2), <f32>sumGX);
    store<f32>(gb + (<usize>ch << 2), <f32>sumG);
    const w: f32 = weight ? load<f32>(weight + (<usize>ch << 2)) : 1;
    const scale = w * rs;
    const meanG = <f32>(sumG / count), meanGX = <f32>(sumGX / count);
    const sc4 = f32x4.splat(scale), mg4 = f32x4.splat(meanG), mgx4 = f32x4.splat(meanGX);
    for (let o = 0; o < outer; o++) {
      const xb = x + first + <usize>o * stride;
      const gr = g + first + <usize>o * stride;
      const gxb = gx + first + <usize>o * stride;
      let i = 0;
      for (; i + 4 <= inner; i += 4) {
        const q = <usize>i << 2;
        const xhat = f32x4.mul(f32x4.sub(v128.load(xb + q), mu4), rs4);
        v128.store(gxb + q, f32x4.mul(sc4, f32x4.sub(f32x4.sub(v128.load(gr + q), mg4), f32x4.mul(xhat, mgx4))));
      }
      for (; i < inner; i++) {
        const q = <usize>i << 2;
        const xhat = (load<f32>(xb + q) - mu) * rs;
        store<f32>(gxb + q, scale * (load<f32>(gr + q) - meanG - xhat * meanGX));
      }
    }
  }
}
