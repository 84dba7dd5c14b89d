// @ts-nocheck -- AssemblyScript source (compiled by asc via engine/backend/wasm/build.mjs, not by tsc).
/**
 * Elementwise kernels: unary ops, broadcasting binary ops (incl. the fused *Grad VJPs) and where.
 * Each op is a small @final class with a 4-lane method `v` and a scalar method `s`; the loops are
 * generic over the op class, so asc emits one specialised, inlined loop per op (no per-element switch).
 *
 * Broadcast descriptor (Int32 at `desc`, written by the TypeScript side after merging dimensions):
 *   [rank R, shape[0..R), strides of operand 0 [0..R), strides of operand 1, ...]
 * in elements, 0 along broadcast dims. The innermost dim runs as a SIMD loop when each operand's
 * stride there is 1 (contiguous) or 0 (broadcast scalar); the outer dims are walked with counters.
 */
import { allBelowF64x2, erf64, erfGrad64, erfMidRangeF64x2, expV, f32Join, f64Hi, f64Lo, gelu64, geluGrad64, geluGradMidRangeF64x2, geluTanh64, geluTanhGrad64, geluTanhGradF64x2, powJs, sigmoidV, tanhV } from './math';

const SQRT_HALF_F64: f64 = 0.7071067811865476;

const IDX = memory.data(64 * 4);

// ---------------------------------------------------------------- unary

@final class Neg { @inline v(x: v128, p: v128): v128 { return f32x4.neg(x); } @inline s(x: f32, p: f32): f32 { return -x; } }
@final class Exp { @inline v(x: v128, p: v128): v128 { return expV(x); } @inline s(x: f32, p: f32): f32 { return f32x4.extract_lane(expV(f32x4.splat(x)), 0); } }
@final class Log {
  @inline v(x: v128, p: v128): v128 {
    let r = f32x4.splat(<f32>Math.log(<f64>f32x4.extract_lane(x, 0)));
    r = f32x4.replace_lane(r, 1, <f32>Math.log(<f64>f32x4.extract_lane(x, 1)));
    r = f32x4.replace_lane(r, 2, <f32>Math.log(<f64>f32x4.extract_lane(x, 2)));
    return f32x4.replace_lane(r, 3, <f32>Math.log(<f64>f32x4.extract_lane(x, 3)));
  }
  @inline s(x: f32, p: f32): f32 { return <f32>Math.log(<f64>x); }
}
@final class Sqrt { @inline v(x: v128, p: v128): v128 { return f32x4.sqrt(x); } @inline s(x: f32, p: f32): f32 { return Mathf.sqrt(x); } }
@final class Rsqrt {
  @inline v(x: v128, p: v128): v128 { return f32x4.div(f32x4.splat(1), f32x4.sqrt(x)); }
  @inline s(x: f32, p: f32): f32 { return <f32>1 / Mathf.sqrt(x); }
}
@final class Abs { @inline v(x: v128, p: v128): v128 { return f32x4.abs(x); } @inline s(x: f32, p: f32): f32 { return Mathf.abs(x); } }
@final class Sign {
  // x > 0 ? 1 : x < 0 ? -1 : x  (keeps 0, -0 and NaN)
  @inline v(x: v128, p: v128): v128 {
    const one = f32x4.splat(1);
    const r = v128.bitselect(one, x, f32x4.gt(x, f32x4.splat(0)));
    return v128.bitselect(f32x4.splat(-1), r, f32x4.lt(x, f32x4.splat(0)));
  }
  @inline s(x: f32, p: f32): f32 { return x > 0 ? 1 : x < 0 ? -1 : x; }
}
@final class Square { @inline v(x: v128, p: v128): v128 { return f32x4.mul(x, x); } @inline s(x: f32, p: f32): f32 { return x * x; } }
@final class Reciprocal { @inline v(x: v128, p: v128): v128 { return f32x4.div(f32x4.splat(1), x); } @inline s(x: f32, p: f32): f32 { return <f32>1 / x; } }
@final class Tanh { @inline v(x: v128, p: v128): v128 { return tanhV(x); } @inline s(x: f32, p: f32): f32 { return f32x4.extract_lane(tanhV(f32x4.splat(x)), 0); } }
@final class Sigmoid { @inline v(x: v128, p: v128): v128 { return sigmoidV(x); } @inline s(x: f32, p: f32): f32 { return f32x4.extract_lane(sigmoidV(f32x4.splat(x)), 0); } }
@final class Relu {
  // wasm max propagates NaN, and max(-0, 0) = +0, as the reference's x > 0 ? x : (NaN ? x : 0).
  @inline v(x: v128, p: v128): v128 { return f32x4.max(x, f32x4.splat(0)); }
  @inline s(x: f32, p: f32): f32 { return x > 0 ? x : x != x ? x : 0; }
}
@final class Erf {
  @inline v(x: v128, p: v128): v128 {
    // Every lane below 1.25 in magnitude (activations mostly are: erf64's two cases without exp): two f64x2
    // evaluations of the same formulas instead of 4 calls.
    const lo = f64Lo(x), hi = f64Hi(x);
    if (allBelowF64x2(lo, 1.25) && allBelowF64x2(hi, 1.25)) return f32Join(erfMidRangeF64x2(lo), erfMidRangeF64x2(hi));
    let r = f32x4.splat(<f32>erf64(<f64>f32x4.extract_lane(x, 0)));
    r = f32x4.replace_lane(r, 1, <f32>erf64(<f64>f32x4.extract_lane(x, 1)));
    r = f32x4.replace_lane(r, 2, <f32>erf64(<f64>f32x4.extract_lane(x, 2)));
    return f32x4.replace_lane(r, 3, <f32>erf64(<f64>f32x4.extract_lane(x, 3)));
  }
  @inline s(x: f32, p: f32): f32 { return <f32>erf64(<f64>x); }
}
@final class Gelu {
  @inline v(x: v128, p: v128): v128 {
    let r = f32x4.splat(<f32>gelu64(<f64>f32x4.extract_lane(x, 0)));
    r = f32x4.replace_lane(r, 1, <f32>gelu64(<f64>f32x4.extract_lane(x, 1)));
    r = f32x4.replace_lane(r, 2, <f32>gelu64(<f64>f32x4.extract_lane(x, 2)));
    return f32x4.replace_lane(r, 3, <f32>gelu64(<f64>f32x4.extract_lane(x, 3)));
  }
  @inline s(x: f32, p: f32): f32 { return <f32>gelu64(<f64>x); }
}
@final class GeluTanh {
  @inline v(x: v128, p: v128): v128 {
    let r = f32x4.splat(<f32>geluTanh64(<f64>f32x4.extract_lane(x, 0)));
    r = f32x4.replace_lane(r, 1, <f32>geluTanh64(<f64>f32x4.extract_lane(x, 1)));
    r = f32x4.replace_lane(r, 2, <f32>geluTanh64(<f64>f32x4.extract_lane(x, 2)));
    return f32x4.replace_lane(r, 3, <f32>geluTanh64(<f64>f32x4.extract_lane(x, 3)));
  }
  @inline s(x: f32, p: f32): f32 { return <f32>geluTanh64(<f64>x); }
}
@final class LeakyRelu {
  @inline v(x: v128, p: v128): v128 { return v128.bitselect(x, f32x4.mul(x, p), f32x4.gt(x, f32x4.splat(0))); }
  @inline s(x: f32, p: f32): f32 { return x > 0 ? x : x * p; }
}
@final class Scale { @inline v(x: v128, p: v128): v128 { return f32x4.mul(x, p); } @inline s(x: f32, p: f32): f32 { return x * p; } }
@final class AddScalar { @inline v(x: v128, p: v128): v128 { return f32x4.add(x, p); } @inline s(x: f32, p: f32): f32 { return x + p; } }


// Trigonometric functions lane by lane in float64 (AssemblyScript's Math, correctly range-reduced), rounded
// once to float32: no SIMD, but exact to the float32 result for every argument, as the reference backend.
@final class Sin {
  @inline v(x: v128, p: v128): v128 {
    let r = f32x4.splat(<f32>Math.sin(<f64>f32x4.extract_lane(x, 0)));
    r = f32x4.replace_lane(r, 1, <f32>Math.sin(<f64>f32x4.extract_lane(x, 1)));
    r = f32x4.replace_lane(r, 2, <f32>Math.sin(<f64>f32x4.extract_lane(x, 2)));
    return f32x4.replace_lane(r, 3, <f32>Math.sin(<f64>f32x4.extract_lane(x, 3)));
  }
  @inline s(x: f32, p: f32): f32 { return <f32>Math.sin(<f64>x); }
}
@final class Cos {
  @inline v(x: v128, p: v128): v128 {
    let r = f32x4.splat(<f32>Math.cos(<f64>f32x4.extract_lane(x, 0)));
    r = f32x4.replace_lane(r, 1, <f32>Math.cos(<f64>f32x4.extract_lane(x, 1)));
    r = f32x4.replace_lane(r, 2, <f32>Math.cos(<f64>f32x4.extract_lane(x, 2)));
    return f32x4.replace_lane(r, 3, <f32>Math.cos(<f64>f32x4.extract_lane(x, 3)));
  }
  @inline s(x: f32, p: f32): f32 { return <f32>Math.cos(<f64>x); }
}
@final class Tan {
  @inline v(x: v128, p: v128): v128 {
    let r = f32x4.splat(<f32>Math.tan(<f64>f32x4.extract_lane(x, 0)));
    r = f32x4.replace_lane(r, 1, <f32>Math.tan(<f64>f32x4.extract_lane(x, 1)));
    r = f32x4.replace_lane(r, 2, <f32>Math.tan(<f64>f32x4.extract_lane(x, 2)));
    return f32x4.replace_lane(r, 3, <f32>Math.tan(<f64>f32x4.extract_lane(x, 3)));
  }
  @inline s(x: f32, p: f32): f32 { return <f32>Math.tan(<f64>x); }
}
@final class Asin {
  @inline v(x: v128, p: v128): v128 {
    let r = f32x4.splat(<f32>Math.asin(<f64>f32x4.extract_lane(x, 0)));
    r = f32x4.replace_lane(r, 1, <f32>Math.asin(<f64>f32x4.extract_lane(x, 1)));
    r = f32x4.replace_lane(r, 2, <f32>Math.asin(<f64>f32x4.extract_lane(x, 2)));
    return f32x4.replace_lane(r, 3, <f32>Math.asin(<f64>f32x4.extract_lane(x, 3)));
  }
  @inline s(x: f32, p: f32): f32 { return <f32>Math.asin(<f64>x); }
}
@final class Acos {
  @inline v(x: v128, p: v128): v128 {
    let r = f32x4.splat(<f32>Math.acos(<f64>f32x4.extract_lane(x, 0)));
    r = f32x4.replace_lane(r, 1, <f32>Math.acos(<f64>f32x4.extract_lane(x, 1)));
    r = f32x4.replace_lane(r, 2, <f32>Math.acos(<f64>f32x4.extract_lane(x, 2)));
    return f32x4.replace_lane(r, 3, <f32>Math.acos(<f64>f32x4.extract_lane(x, 3)));
  }
  @inline s(x: f32, p: f32): f32 { return <f32>Math.acos(<f64>x); }
}
@final class Atan {
  @inline v(x: v128, p: v128): v128 {
    let r = f32x4.splat(<f32>Math.atan(<f64>f32x4.extract_lane(x, 0)));
    r = f32x4.replace_lane(r, 1, <f32>Math.atan(<f64>f32x4.extract_lane(x, 1)));
    r = f32x4.replace_lane(r, 2, <f32>Math.atan(<f64>f32x4.extract_lane(x, 2)));
    return f32x4.replace_lane(r, 3, <f32>Math.atan(<f64>f32x4.extract_lane(x, 3)));
  }
  @inline s(x: f32, p: f32): f32 { return <f32>Math.atan(<f64>x); }
}

const NEG = new Neg(); const EXP = new Exp(); const LOG = new Log(); const SQRT = new Sqrt(); const RSQRT = new Rsqrt();
const ABS = new Abs(); const SIGN = new Sign(); const SQUARE = new Square(); const RECIPROCAL = new Reciprocal();
const TANH = new Tanh(); const SIGMOID = new Sigmoid(); const RELU = new Relu(); const ERF = new Erf(); const GELU = new Gelu();
const GELU_TANH = new GeluTanh(); const LEAKY_RELU = new LeakyRelu(); const SCALE = new Scale(); const ADD_SCALAR = new AddScalar();
const SIN = new Sin(); const COS = new Cos(); const TAN = new Tan(); const ASIN = new Asin(); const ACOS = new Acos(); const ATAN = new Atan();

@inline function unaryLoop<Op>(op: Op, x: usize, out: usize, n: i32, param: f32): void {
  const pv = f32x4.splat(param);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const o = <usize>i << 2;
    v128.store(out + o, op.v(v128.load(x + o), pv));
    v128.store(out + o, op.v(v128.load(x + o, 16), pv), 16);
    v128.store(out + o, op.v(v128.load(x + o, 32), pv), 32);
    v128.store(out + o, op.v(v128.load(x + o, 48), pv), 48);
  }
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, op.v(v128.load(x + o), pv));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, op.s(load<f32>(x + o), param));
  }
}

/** Unary op codes follow UNARY_CODES in engine/backend/wasm/index.ts. powScalar (16) is powScalar(). */
export function unary(op: i32, x: usize, out: usize, n: i32, param: f32): void {
  switch (op) {
    case 0: unaryLoop<Neg>(NEG, x, out, n, param); break;
    case 1: unaryLoop<Exp>(EXP, x, out, n, param); break;
    case 2: unaryLoop<Log>(LOG, x, out, n, param); break;
    case 3: unaryLoop<Sqrt>(SQRT, x, out, n, param); break;
    case 4: unaryLoop<Rsqrt>(RSQRT, x, out, n, param); break;
    case 5: unaryLoop<Abs>(ABS, x, out, n, param); break;
    case 6: unaryLoop<Sign>(SIGN, x, out, n, param); break;
    case 7: unaryLoop<Square>(SQUARE, x, out, n, param); break;
    case 8: unaryLoop<Reciprocal>(RECIPROCAL, x, out, n, param); break;
    case 9: unaryLoop<Tanh>(TANH, x, out, n, param); break;
    case 10: unaryLoop<Sigmoid>(SIGMOID, x, out, n, param); break;
    case 11: unaryLoop<Relu>(RELU, x, out, n, param); break;
    case 12: unaryLoop<Erf>(ERF, x, out, n, param); break;
    case 13: unaryLoop<Gelu>(GELU, x, out, n, param); break;
    case 14: unaryLoop<GeluTanh>(GELU_TANH, x, out, n, param); break;
    case 15: unaryLoop<LeakyRelu>(LEAKY_RELU, x, out, n, param); break;
    case 17: unaryLoop<Scale>(SCALE, x, out, n, param); break;
    case 18: unaryLoop<AddScalar>(ADD_SCALAR, x, out, n, param); break;
    case 19: unaryLoop<Sin>(SIN, x, out, n, param); break;
    case 20: unaryLoop<Cos>(COS, x, out, n, param); break;
    case 21: unaryLoop<Tan>(TAN, x, out, n, param); break;
    case 22: unaryLoop<Asin>(ASIN, x, out, n, param); break;
    case 23: unaryLoop<Acos>(ACOS, x, out, n, param); break;
    case 24: unaryLoop<Atan>(ATAN, x, out, n, param); break;
    default: unreachable();
  }
}

/** x ** e elementwise (float64 pow with JavaScript's edge cases; fast paths for 2, -1, 1 and 3). */
export function powScalar(x: usize, out: usize, n: i32, e: f64): void {
  if (e == 2) { unaryLoop<Square>(SQUARE, x, out, n, 0); return; }
  if (e == -1) { unaryLoop<Reciprocal>(RECIPROCAL, x, out, n, 0); return; }
  if (e == 1) { memory.copy(out, x, <usize>n << 2); return; }
  if (e == 3) {
    // GELU's tanh form (GPT-2) cubes whole activations: x * x * x in float64 (x * x is exact there) instead of
    // the general pow, which is about 10x slower; same edge cases (NaN, +-Infinity, -0) as Math.pow.
    for (let i = 0; i < n; i++) {
      const o = <usize>i << 2;
      const v = <f64>load<f32>(x + o);
      store<f32>(out + o, <f32>(v * v * v));
    }
    return;
  }
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, <f32>powJs(<f64>load<f32>(x + o), e));
  }
}

// ---------------------------------------------------------------- binary

@final class Add { @inline v(a: v128, b: v128, p: v128): v128 { return f32x4.add(a, b); } @inline s(a: f32, b: f32, p: f32): f32 { return a + b; } }
@final class Sub { @inline v(a: v128, b: v128, p: v128): v128 { return f32x4.sub(a, b); } @inline s(a: f32, b: f32, p: f32): f32 { return a - b; } }
@final class Mul { @inline v(a: v128, b: v128, p: v128): v128 { return f32x4.mul(a, b); } @inline s(a: f32, b: f32, p: f32): f32 { return a * b; } }
@final class Div { @inline v(a: v128, b: v128, p: v128): v128 { return f32x4.div(a, b); } @inline s(a: f32, b: f32, p: f32): f32 { return a / b; } }
@final class Pow {
  @inline v(a: v128, b: v128, p: v128): v128 {
    let r = f32x4.splat(<f32>powJs(<f64>f32x4.extract_lane(a, 0), <f64>f32x4.extract_lane(b, 0)));
    r = f32x4.replace_lane(r, 1, <f32>powJs(<f64>f32x4.extract_lane(a, 1), <f64>f32x4.extract_lane(b, 1)));
    r = f32x4.replace_lane(r, 2, <f32>powJs(<f64>f32x4.extract_lane(a, 2), <f64>f32x4.extract_lane(b, 2)));
    return f32x4.replace_lane(r, 3, <f32>powJs(<f64>f32x4.extract_lane(a, 3), <f64>f32x4.extract_lane(b, 3)));
  }
  @inline s(a: f32, b: f32, p: f32): f32 { return <f32>powJs(<f64>a, <f64>b); }
}
// wasm min/max return NaN when either lane is NaN, as the reference does.
@final class Max { @inline v(a: v128, b: v128, p: v128): v128 { return f32x4.max(a, b); } @inline s(a: f32, b: f32, p: f32): f32 { return a != a || b != b ? NaN : a > b ? a : b; } }
@final class Min { @inline v(a: v128, b: v128, p: v128): v128 { return f32x4.min(a, b); } @inline s(a: f32, b: f32, p: f32): f32 { return a != a || b != b ? NaN : a < b ? a : b; } }
@final class Eq { @inline v(a: v128, b: v128, p: v128): v128 { return v128.and(f32x4.eq(a, b), f32x4.splat(1)); } @inline s(a: f32, b: f32, p: f32): f32 { return a == b ? 1 : 0; } }
@final class ReluGrad { @inline v(g: v128, x: v128, p: v128): v128 { return v128.and(g, f32x4.gt(x, f32x4.splat(0))); } @inline s(g: f32, x: f32, p: f32): f32 { return x > 0 ? g : 0; } }
@final class LeakyReluGrad {
  @inline v(g: v128, x: v128, p: v128): v128 { return v128.bitselect(g, f32x4.mul(g, p), f32x4.gt(x, f32x4.splat(0))); }
  @inline s(g: f32, x: f32, p: f32): f32 { return x > 0 ? g : g * p; }
}
@final class AbsGrad {
  @inline v(g: v128, x: v128, p: v128): v128 {
    const zero = f32x4.splat(0);
    return v128.or(v128.and(g, f32x4.gt(x, zero)), v128.and(f32x4.neg(g), f32x4.lt(x, zero)));
  }
  @inline s(g: f32, x: f32, p: f32): f32 { return x > 0 ? g : x < 0 ? -g : 0; }
}
@final class TanhGrad {
  @inline v(g: v128, y: v128, p: v128): v128 { return f32x4.mul(g, f32x4.sub(f32x4.splat(1), f32x4.mul(y, y))); }
  @inline s(g: f32, y: f32, p: f32): f32 { return g * (1 - y * y); }
}
@final class SigmoidGrad {
  @inline v(g: v128, y: v128, p: v128): v128 { return f32x4.mul(f32x4.mul(g, y), f32x4.sub(f32x4.splat(1), y)); }
  @inline s(g: f32, y: f32, p: f32): f32 { return g * y * (1 - y); }
}
@final class ErfGrad {
  @inline v(g: v128, x: v128, p: v128): v128 {
    let r = f32x4.splat(<f32>erfGrad64(<f64>f32x4.extract_lane(x, 0)));
    r = f32x4.replace_lane(r, 1, <f32>erfGrad64(<f64>f32x4.extract_lane(x, 1)));
    r = f32x4.replace_lane(r, 2, <f32>erfGrad64(<f64>f32x4.extract_lane(x, 2)));
    r = f32x4.replace_lane(r, 3, <f32>erfGrad64(<f64>f32x4.extract_lane(x, 3)));
    return f32x4.mul(g, r);
  }
  @inline s(g: f32, x: f32, p: f32): f32 { return <f32>(<f64>g * erfGrad64(<f64>x)); }
}
@final class GeluGrad {
  @inline v(g: v128, x: v128, p: v128): v128 {
    // Every |x| sqrt(1/2) below 1.25 (erfc64's cases without exp): float64 on two halves, same formula.
    const lo = f64Lo(x), hi = f64Hi(x);
    const c = f64x2.splat(SQRT_HALF_F64); // |-x sqrt(1/2)| = |x sqrt(1/2)|: the same test erfc64 makes
    if (allBelowF64x2(f64x2.mul(lo, c), 1.25) && allBelowF64x2(f64x2.mul(hi, c), 1.25)) {
      return f32Join(f64x2.mul(f64Lo(g), geluGradMidRangeF64x2(lo)), f64x2.mul(f64Hi(g), geluGradMidRangeF64x2(hi)));
    }
    let r = f32x4.splat(<f32>(<f64>f32x4.extract_lane(g, 0) * geluGrad64(<f64>f32x4.extract_lane(x, 0))));
    r = f32x4.replace_lane(r, 1, <f32>(<f64>f32x4.extract_lane(g, 1) * geluGrad64(<f64>f32x4.extract_lane(x, 1))));
    r = f32x4.replace_lane(r, 2, <f32>(<f64>f32x4.extract_lane(g, 2) * geluGrad64(<f64>f32x4.extract_lane(x, 2))));
    return f32x4.replace_lane(r, 3, <f32>(<f64>f32x4.extract_lane(g, 3) * geluGrad64(<f64>f32x4.extract_lane(x, 3))));
  }
  @inline s(g: f32, x: f32, p: f32): f32 { return <f32>(<f64>g * geluGrad64(<f64>x)); }
}
@final class GeluTanhGrad {
  @inline v(g: v128, x: v128, p: v128): v128 {
    return f32Join(f64x2.mul(f64Lo(g), geluTanhGradF64x2(f64Lo(x))), f64x2.mul(f64Hi(g), geluTanhGradF64x2(f64Hi(x))));
  }
  @inline s(g: f32, x: f32, p: f32): f32 { return <f32>(<f64>g * geluTanhGrad64(<f64>x)); }
}

const ADD = new Add(); const SUB = new Sub(); const MUL = new Mul(); const DIV = new Div(); const POW = new Pow();
const MAX = new Max(); const MIN = new Min(); const EQ = new Eq(); const RELU_GRAD = new ReluGrad();
const LEAKY_RELU_GRAD = new LeakyReluGrad(); const ABS_GRAD = new AbsGrad(); const TANH_GRAD = new TanhGrad();
const SIGMOID_GRAD = new SigmoidGrad(); const ERF_GRAD = new ErfGrad(); const GELU_GRAD = new GeluGrad();
const GELU_TANH_GRAD = new GeluTanhGrad();

/** out[0..n) = op(a[i*sa], b[i*sb]); SIMD when the strides are 0 or 1. */
@inline function binaryInner<Op>(op: Op, a: usize, sa: i32, b: usize, sb: i32, out: usize, n: i32, p: f32, pv: v128): void {
  let i = 0;
  if (sa == 1 && sb == 1) {
    for (; i + 8 <= n; i += 8) {
      const o = <usize>i << 2;
      v128.store(out + o, op.v(v128.load(a + o), v128.load(b + o), pv));
      v128.store(out + o, op.v(v128.load(a + o, 16), v128.load(b + o, 16), pv), 16);
    }
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(out + o, op.v(v128.load(a + o), v128.load(b + o), pv));
    }
    for (; i < n; i++) {
      const o = <usize>i << 2;
      store<f32>(out + o, op.s(load<f32>(a + o), load<f32>(b + o), p));
    }
  } else if (sa == 1 && sb == 0) {
    const bs = load<f32>(b);
    const bv = f32x4.splat(bs);
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(out + o, op.v(v128.load(a + o), bv, pv));
    }
    for (; i < n; i++) {
      const o = <usize>i << 2;
      store<f32>(out + o, op.s(load<f32>(a + o), bs, p));
    }
  } else if (sa == 0 && sb == 1) {
    const aS = load<f32>(a);
    const av = f32x4.splat(aS);
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(out + o, op.v(av, v128.load(b + o), pv));
    }
    for (; i < n; i++) {
      const o = <usize>i << 2;
      store<f32>(out + o, op.s(aS, load<f32>(b + o), p));
    }
  } else {
    for (; i < n; i++) {
      store<f32>(out + (<usize>i << 2), op.s(load<f32>(a + (<usize>(i * sa) << 2)), load<f32>(b + (<usize>(i * sb) << 2)), p));
    }
  }
}

function binaryLoop<Op>(op: Op, a: usize, b: usize, out: usize, desc: usize, p: f32): void {
  const rank = load<i32>(desc);
  const shape = desc + 4;
  const sA = shape + (<usize>rank << 2);
  const sB = sA + (<usize>rank << 2);
  const last = <usize>(rank - 1) << 2;
  const n = load<i32>(shape + last);
  const ia = load<i32>(sA + last);
  const ib = load<i32>(sB + last);
  let outer = 1;
  for (let d = 0; d < rank - 1; d++) {
    outer *= load<i32>(shape + (<usize>d << 2));
    store<i32>(IDX + (<usize>d << 2), 0);
  }
  const pv = f32x4.splat(p);
  let offA = 0, offB = 0;
  let po = out;
  const rowBytes = <usize>n << 2;
  for (let o = 0; o < outer; o++) {
    binaryInner<Op>(op, a + (<usize>offA << 2), ia, b + (<usize>offB << 2), ib, po, n, p, pv);
    po += rowBytes;
    for (let d = rank - 2; d >= 0; d--) {
      const dd = <usize>d << 2;
      const c = load<i32>(IDX + dd) + 1;
      const sa = load<i32>(sA + dd), sb = load<i32>(sB + dd), sz = load<i32>(shape + dd);
      offA += sa;
      offB += sb;
      if (c < sz) {
        store<i32>(IDX + dd, c);
        break;
      }
      offA -= sa * sz;
      offB -= sb * sz;
      store<i32>(IDX + dd, 0);
    }
  }
}

/** Binary op codes follow BINARY_CODES in engine/backend/wasm/index.ts. */
export function binary(op: i32, a: usize, b: usize, out: usize, desc: usize, param: f32): void {
  switch (op) {
    case 0: binaryLoop<Add>(ADD, a, b, out, desc, param); break;
    case 1: binaryLoop<Sub>(SUB, a, b, out, desc, param); break;
    case 2: binaryLoop<Mul>(MUL, a, b, out, desc, param); break;
    case 3: binaryLoop<Div>(DIV, a, b, out, desc, param); break;
    case 4: binaryLoop<Pow>(POW, a, b, out, desc, param); break;
    case 5: binaryLoop<Max>(MAX, a, b, out, desc, param); break;
    case 6: binaryLoop<Min>(MIN, a, b, out, desc, param); break;
    case 7: binaryLoop<Eq>(EQ, a, b, out, desc, param); break;
    case 8: binaryLoop<ReluGrad>(RELU_GRAD, a, b, out, desc, param); break;
    case 9: binaryLoop<LeakyReluGrad>(LEAKY_RELU_GRAD, a, b, out, desc, param); break;
    case 10: binaryLoop<AbsGrad>(ABS_GRAD, a, b, out, desc, param); break;
    case 11: binaryLoop<TanhGrad>(TANH_GRAD, a, b, out, desc, param); break;
    case 12: binaryLoop<SigmoidGrad>(SIGMOID_GRAD, a, b, out, desc, param); break;
    case 13: binaryLoop<ErfGrad>(ERF_GRAD, a, b, out, desc, param); break;
    case 14: binaryLoop<GeluGrad>(GELU_GRAD, a, b, out, desc, param); break;
    case 15: binaryLoop<GeluTanhGrad>(GELU_TANH_GRAD, a, b, out, desc, param); break;
    default: unreachable();
  }
}

/** out = cond ? a : b with all three broadcast (descriptor with three stride sets; cond is bytes). */
export function where(cond: usize, a: usize, b: usize, out: usize, desc: usize): void {
  const rank = load<i32>(desc);
  const shape = desc + 4;
  const sC = shape + (<usize>rank << 2);
  const sA = sC + (<usize>rank << 2);
  const sB = sA + (<usize>rank << 2);
  const last = <usize>(rank - 1) << 2;
  const n = load<i32>(shape + last);
  const ic = load<i32>(sC + last), ia = load<i32>(sA + last), ib = load<i32>(sB + last);
  let outer = 1;
  for (let d = 0; d < rank - 1; d++) {
    outer *= load<i32>(shape + (<usize>d << 2));
    store<i32>(IDX + (<usize>d << 2), 0);
  }
  let offC = 0, offA = 0, offB = 0;
  let po = out;
  for (let o = 0; o < outer; o++) {
    const pc = cond + <usize>offC, pa = a + (<usize>offA << 2), pb = b + (<usize>offB << 2);
    if (ic == 1 && ia == 1 && ib == 1) {
      for (let i = 0; i < n; i++) {
        const q = <usize>i << 2;
        store<f32>(po + q, load<u8>(pc + <usize>i) ? load<f32>(pa + q) : load<f32>(pb + q));
      }
    } else {
      for (let i = 0; i < n; i++) {
        store<f32>(po + (<usize>i << 2), load<u8>(pc + <usize>(i * ic)) ? load<f32>(pa + (<usize>(i * ia) << 2)) : load<f32>(pb + (<usize>(i * ib) << 2)));
      }
    }
    po += <usize>n << 2;
    for (let d = rank - 2; d >= 0; d--) {
      const dd = <usize>d << 2;
      const c = load<i32>(IDX + dd) + 1;
      const sc = load<i32>(sC + dd), sa = load<i32>(sA + dd), sb = load<i32>(sB + dd), sz = load<i32>(shape + dd);
      offC += sc; offA += sa; offB += sb;
      if (c < sz) {
        store<i32>(IDX + dd, c);
        break;
      }
      offC -= sc * sz; offA -= sa * sz; offB -= sb * sz;
      store<i32>(IDX + dd, 0);
    }
  }
}
