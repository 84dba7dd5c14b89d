/**
 * ONNX's narrow element types (float8 variants, float4e2m1, float8e8m0, int4/uint4, int2/uint2) and the
 * rounding of Cast to any type narrower than the run's floats (float16, bfloat16, float32 in a float64
 * run, and those). The engine holds their values in its own float / int32 tensors: every value of these
 * types is exact there, so decoding is exact, and Cast rounds a value onto the target type's grid
 * (round to nearest even, with the spec's saturation) while it stays in a wider engine tensor.
 */
import { DataType } from './proto';

interface MiniFloat {
  exp: number;
  mant: number;
  bias: number;
  max: number;
  /** Has infinities (IEEE-like: overflow without saturation gives inf). */
  inf: boolean;
  /** "fnuz": no negative zero, the one NaN is 0x80. */
  fnuz: boolean;
  /** No NaN or inf encodings at all: always saturates. */
  finiteOnly: boolean;
}

const MINIFLOATS: Record<number, MiniFloat> = {
  [DataType.FLOAT8E4M3FN]: { exp: 4, mant: 3, bias: 7, max: 448, inf: false, fnuz: false, finiteOnly: false },
  [DataType.FLOAT8E4M3FNUZ]: { exp: 4, mant: 3, bias: 8, max: 240, inf: false, fnuz: true, finiteOnly: false },
  [DataType.FLOAT8E5M2]: { exp: 5, mant: 2, bias: 15, max: 57344, inf: true, fnuz: false, finiteOnly: false },
  [DataType.FLOAT8E5M2FNUZ]: { exp: 5, mant: 2, bias: 16, max: 57344, inf: false, fnuz: true, finiteOnly: false },
  [DataType.FLOAT4E2M1]: { exp: 2, mant: 1, bias: 1, max: 6, inf: false, fnuz: false, finiteOnly: true },
  [DataType.FLOAT16]: { exp: 5, mant: 10, bias: 15, max: 65504, inf: true, fnuz: false, finiteOnly: false },
  [DataType.BFLOAT16]: { exp: 8, mant: 7, bias: 127, max: 3.3895313892515355e38, inf: true, fnuz: false, finiteOnly: false },
};

/** Narrow integer types: bit width and signedness. */
const NARROW_INTS: Record<number, { bits: number; signed: boolean }> = {
  [DataType.INT8]: { bits: 8, signed: true }, [DataType.UINT8]: { bits: 8, signed: false },
  [DataType.INT16]: { bits: 16, signed: true }, [DataType.UINT16]: { bits: 16, signed: false },
  [DataType.INT4]: { bits: 4, signed: true }, [DataType.UINT4]: { bits: 4, signed: false },
  [DataType.INT2]: { bits: 2, signed: true }, [DataType.UINT2]: { bits: 2, signed: false },
};

/** Bits per element of the packed narrow types (raw_data layout), or undefined for the others. */
export function packedBits(dataType: number): number | undefined {
  switch (dataType) {
    case DataType.FLOAT8E4M3FN: case DataType.FLOAT8E4M3FNUZ: case DataType.FLOAT8E5M2: case DataType.FLOAT8E5M2FNUZ: case DataType.FLOAT8E8M0:
      return 8;
    case DataType.INT4: case DataType.UINT4: case DataType.FLOAT4E2M1:
      return 4;
    case DataType.INT2: case DataType.UINT2:
      return 2;
    default:
      return undefined;
  }
}

export function isNarrowFloat(dataType: number): boolean {
  return dataType === DataType.FLOAT8E8M0 || (dataType in MINIFLOATS && dataType !== DataType.FLOAT16 && dataType !== DataType.BFLOAT16);
}

export function isNarrowInt(dataType: number): boolean {
  return dataType === DataType.INT4 || dataType === DataType.UINT4 || dataType === DataType.INT2 || dataType === DataType.UINT2;
}

/** The value of one element's bits (already unpacked: the low `packedBits` bits of `bits`). */
export function decodeNarrow(dataType: number, bits: number): number {
  if (dataType === DataType.FLOAT8E8M0) return bits === 255 ? NaN : 2 ** (bits - 127);
  const int = NARROW_INTS[dataType];
  if (int) return int.signed && bits >= 2 ** (int.bits - 1) ? bits - 2 ** int.bits : bits;
  const f = MINIFLOATS[dataType];
  const signBit = 1 << (f.exp + f.mant);
  const e = (bits >> f.mant) & ((1 << f.exp) - 1);
  const m = bits & ((1 << f.mant) - 1);
  if (f.fnuz && bits === signBit) return NaN;
  if (!f.fnuz && !f.finiteOnly) {
    const top = (1 << f.exp) - 1;
    if (f.inf && e === top) return m === 0 ? (bits & signBit ? -Infinity : Infinity) : NaN;
    if (!f.inf && e === top && m === (1 << f.mant) - 1) return NaN; // e4m3fn: S.1111.111
  }
  const mag = e === 0 ? (m / 2 ** f.mant) * 2 ** (1 - f.bias) : (1 + m / 2 ** f.mant) * 2 ** (e - f.bias);
  return bits & signBit ? -mag : mag;
}

/** Unpacks element i of little-endian packed data (low bits first) with `bits` bits per element. */
export function unpack(bytes: ArrayLike<number>, i: number, bits: number): number {
  if (bits === 8) return bytes[i] & 0xff;
  const bit = i * bits;
  return ((bytes[bit >> 3] & 0xff) >> (bit & 7)) & ((1 << bits) - 1);
}

/** floor(log2(a)) for a finite a > 0, exact at and around powers of two. */
function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  return e;
}

function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

function roundMiniFloat(v: number, f: MiniFloat, saturate: boolean): number {
  const sat = saturate || f.finiteOnly;
  if (Number.isNaN(v)) return f.finiteOnly ? -0 : NaN;
  if (v === 0) return f.fnuz ? 0 : v;
  const a = Math.abs(v);
  const sign = v < 0 ? -1 : 1;
  const overflow = sat ? sign * f.max : f.inf ? sign * Infinity : NaN;
  if (a === Infinity) return overflow;
  const e = Math.max(exponentOf(a), 1 - f.bias);
  const q = 2 ** (e - f.mant);
  const r = roundHalfEven(a / q) * q;
  if (r > f.max) return overflow;
  if (r === 0) return f.fnuz ? 0 : sign * 0;
  return sign * r;
}

function roundE8M0(v: number, saturate: boolean, mode: string): number {
  if (Number.isNaN(v)) return NaN;
  const a = Math.abs(v);
  if (a === Infinity) return saturate ? 2 ** 127 : NaN;
  if (a < 2 ** -127) return 2 ** -127;
  const e = exponentOf(a);
  let k = e;
  if (a !== 2 ** e) {
    if (mode === 'up') k = e + 1;
    else if (mode === 'nearest') k = a / 2 ** e >= 1.5 ? e + 1 : e;
  }
  if (k > 127) return saturate ? 2 ** 127 : NaN;
  return 2 ** Math.max(k, -127);
}

/** Wraps an integer into a narrow integer type's range (two's complement), as numpy's astype does. */
function wrapInt(v: number, bits: number, signed: boolean): number {
  const m = 2 ** bits;
  let r = ((v % m) + m) % m;
  if (signed && r >= m / 2) r -= m;
  return r;
}

export interface CastOptions {
  /** Cast's `saturate` (float8 targets; default 1). */
  saturate: boolean;
  /** Cast's `round_mode` (float8e8m0 targets; default 'up'). */
  roundMode: string;
}

/**
 * The function that maps a value onto the grid of `to`, or null when the engine's representation of
 * `to` already holds every value the cast produces (float32 in a float32 run, double, int32, int64...).
 * Float-to-int truncation happens before (`convert`); this only narrows.
 */
export function narrowing(to: number, runIsFloat64: boolean, options: CastOptions): ((v: number) => number) | null {
  if (to === DataType.FLOAT) return runIsFloat64 ? Math.fround : null;
  if (to === DataType.FLOAT8E8M0) return (v) => roundE8M0(v, options.saturate, options.roundMode);
  const f = MINIFLOATS[to];
  if (f) {
    const saturate = to === DataType.FLOAT16 || to === DataType.BFLOAT16 ? false : options.saturate;
    return (v) => roundMiniFloat(v, f, saturate);
  }
  const int = NARROW_INTS[to];
  if (int) return (v) => wrapInt(v, int.bits, int.signed);
  return null;
}
